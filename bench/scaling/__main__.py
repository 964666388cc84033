"""Scaling: the stack's own policy, simulated at loads no test machine can reach, against anchors.

    .venv/bin/python -m bench.scaling             # tables + docs/figures/scaling-*.png (~2 min)
    .venv/bin/python -m bench.scaling --quick     # smoke run: small loads, no figures
    .venv/bin/python -m bench.scaling --search    # also: BacklogScaling's props compared
    .venv/bin/python -m bench.scaling --check     # the simulator against real worker processes
    .venv/bin/python -m bench.scaling --check-signals   # the capacity raise on the local stack
    options: -c min_workers=0 -c max_workers=10 (any app.py context), --figures DIR, --seed N

The policies come from synthesized templates: the stack's (app.py with the given context: a warm
pool, the client's and the workers' capacity raise, the alarm policy as backstop), the same
stack as it was before (min_workers=1, no warm pool, alarms only), the default stack's
(max_workers=1: one worker, no scaling), the AWS CDK QueueProcessingFargateService default and
AWS's target tracking on backlog per instance on SQS's 1-minute metrics and on a 10 s metric
(bench/scaling/search.py). The world's figures (launch and warm start times, S3, CPU credits,
prices) are in bench/scaling/loads.py; service times per job kind are measured here first.
docs/scaling.md explains every assumption.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench._common import ROOT, machine_line, markdown_table
from bench.scaling import loads as world_figures
from bench.scaling.policy import Fleet, fixed_pool, read_fleet
from bench.scaling.report import Row, figure, idle_dollars_per_hour, load_table
from bench.scaling.world import Simulation, World

FIGURES = ROOT / "docs" / "figures"
OURS = "ours (this stack)"
BEFORE = "before (alarms only, min 1)"


@dataclasses.dataclass(frozen=True)
class Policies:
    ours: Fleet
    before: Fleet  # the same maximum, min_workers=1, no pool, no capacity raise
    default_stack: Fleet  # max_workers=1
    qpfs: Fleet
    tracking: Fleet
    tracking_fast: Fleet  # the same on a 10 s metric

    def all(self) -> list[Fleet]:
        size = self.ours.max_size
        return [self.ours, self.before, self.qpfs, self.tracking, self.tracking_fast,
                dataclasses.replace(self.default_stack, label="fixed 1 (default stack)"),
                fixed_pool(self.ours, size, f"fixed {size}")]


def parse_context(items: list[str]) -> dict[str, str]:
    context = {"min_workers": "0", "max_workers": "10"}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: -c {item!r}: use KEY=VALUE")
        context[key] = value
    return context


def synthesize_policies(context: dict[str, str]) -> Policies:
    """app.py for the context and for max_workers=1 (subprocesses), the anchors in-process."""
    from bench.scaling import search as search
    from bench.scaling.choice import defaults
    from client.emulator_template import synthesize

    max_workers = int(context["max_workers"])
    # AWS's advice: a target of the acceptable backlog per instance. The construct's own
    # jobs_per_worker keeps the two comparable.
    target = float(defaults()["jobs_per_worker"])
    before = {**context, "min_workers": "1", "warm_pool_size": "0"}
    single = {**context, "min_workers": "1", "max_workers": "1"}
    with tempfile.TemporaryDirectory(prefix="wqw-scaling-synth-") as folder, \
            ThreadPoolExecutor(max_workers=2) as pool:
        found = {name: pool.submit(synthesize, "wqw-scaling", c, Path(folder) / name)
                 for name, c in (("ours", context), ("before", before), ("single", single))}
        qpfs = search.qpfs_template(max_workers)
        tracking = read_fleet(search.target_tracking_template(max_workers, target),
                              f"AWS target tracking {target:g}/instance, 60 s")
        return Policies(
            ours=read_fleet(found["ours"].result(), OURS),
            # The stack before issue 17: no capacity raise (its role could not call it), and
            # instances launched unprotected.
            before=dataclasses.replace(read_fleet(found["before"].result(), BEFORE),
                                       raises_capacity=False, launch_protected=False),
            default_stack=read_fleet(found["single"].result(), "default stack"),
            qpfs=read_fleet(qpfs, "QPFS default"),
            tracking=tracking,
            tracking_fast=search.high_resolution(
                tracking, f"AWS target tracking {target:g}/instance, 10 s"))


def simulate(fleet: Fleet, world: World, load: world_figures.Load, jobs: list[Any],
             seed: int) -> Any:
    return Simulation(fleet, world, jobs, surge=load.surge, horizon=load.horizon,
                      seed=seed).run()


def service_table(measured: dict[str, world_figures.Measured],
                  services: dict[str, world_figures.Service]) -> str:
    rows = [[kind, f"{m.seconds * 1000:.2f}", f"{m.cpu_seconds * 1000:.2f}",
             f"{m.bytes_in / 1e6:.2f} / {m.bytes_out / 1e6:.2f}",
             f"{services[kind].cpu * 1000:.1f}", f"{services[kind].io * 1000:.1f}",
             f"{(services[kind].cpu + services[kind].io) * 1000:.1f}",
             f"{world_figures.MIX[kind]:.0%}"] for kind, m in measured.items()]
    return markdown_table(["kind", "here: wall ms", "here: CPU ms", "S3 MB in / out",
                           "t2.micro: CPU ms", "t2.micro: S3 ms", "t2.micro: total ms",
                           "share of mixed loads"], rows)


def targets(results: dict[str, dict[str, Row]], policies: Policies) -> list[str]:
    burst = results["burst"]
    ours, qpfs = burst[OURS], burst[policies.qpfs.label]
    speed = qpfs.drain / ours.drain if ours.drain and qpfs.drain else float("nan")
    hours = ours.instance_hours / qpfs.instance_hours
    first = results["first"][OURS].first_answer or float("inf")
    idle = idle_dollars_per_hour(policies.ours) * world_figures.HOURS_PER_MONTH
    lines = [
        _target(f"first job into an idle stack (min_workers={policies.ours.min_size}) answered "
                f"after {first:.0f} s", "within 60 s", first <= 60),
        _target(f"an idle month costs {idle:.2f} USD ({policies.ours.min_size} running, "
                f"{policies.ours.warm_pool} stopped in the pool)", "at most 1 USD", idle <= 1),
        _target(f"burst drains {speed:.2f}x faster than the QPFS default ({ours.drain:.0f} s "
                f"vs {qpfs.drain:.0f} s)", "at least 2x", speed >= 2),
        _target(f"at {hours:.2f}x its instance-hours ({ours.instance_hours:.2f} vs "
                f"{qpfs.instance_hours:.2f})", "at most 1.1x", hours <= 1.1),
    ]
    if "poisson-2" in results:
        p95 = results["poisson-2"][OURS].p95
        lines.append(_target(f"p95 time in system at 2 jobs/s: {p95:.1f} s", "under 60 s",
                             p95 < 60))
    killed = sum(r[OURS].busy_terminated for r in results.values())
    lines.append(_target(f"busy instances terminated by scale-in, all loads: {killed}", "0",
                         killed == 0))
    single = policies.default_stack
    lines.append(_target(
        f"max_workers=1: {single.min_size}..{single.max_size} instance(s), "
        f"{len(single.alarms) + len(single.tracking)} scaling alarm(s)/policies",
        "exactly one, none", single.max_size == 1 and not single.scales))
    return lines


def _target(text: str, goal: str, met: bool) -> str:
    return f"- {text} (target {goal}): {'met' if met else 'MISSED'}"


def sensitivity(policies: Policies, services: dict[str, world_figures.Service],
                loads: dict[str, world_figures.Load], seed: int) -> str:
    """The burst and the first job under other launch and warm start times (the least certain
    figures)."""
    burst, first = loads["burst"], loads["first"]
    burst_jobs, first_jobs = burst.jobs(services, seed), first.jobs(services, seed)
    rows = []
    for launch in (60.0, world_figures.LAUNCH_SECONDS, 300.0):
        for warm in (20.0, world_figures.WARM_SECONDS, 90.0):
            world = world_figures.aws_world(launch, warm)
            ours = Row.of(simulate(policies.ours, world, burst, burst_jobs, seed), burst)
            qpfs = Row.of(simulate(policies.qpfs, world, burst, burst_jobs, seed), burst)
            answer = simulate(policies.ours, world, first, first_jobs, seed).first_answer
            rows.append([f"{launch:.0f}", f"{warm:.0f}", f"{answer:.0f}", f"{ours.drain:.0f}",
                         f"{qpfs.drain:.0f}", f"{qpfs.drain / ours.drain:.2f}x",
                         f"{ours.instance_hours:.2f}", f"{qpfs.instance_hours:.2f}"])
    return markdown_table(["launch s", "warm start s", "ours: first answer s",
                           "ours: burst drain s", "QPFS: drain s", "QPFS / ours",
                           "ours: instance-h", "QPFS: instance-h"], rows)


def pool_sizes(policies: Policies, services: dict[str, world_figures.Service],
               world: World, load: world_figures.Load, seed: int) -> str:
    """The burst with other warm pool sizes, and what each costs an idle month."""
    jobs = load.jobs(services, seed)
    qpfs = Row.of(simulate(policies.qpfs, world, load, jobs, seed), load)
    rows = []
    for size in sorted({0, 1, 2, 5, policies.ours.max_size, policies.ours.warm_pool}):
        fleet = dataclasses.replace(policies.ours, warm_pool=size)
        row = Row.of(simulate(fleet, world, load, jobs, seed), load, fleet)
        idle = idle_dollars_per_hour(fleet) * world_figures.HOURS_PER_MONTH
        mark = " (default)" if size == policies.ours.warm_pool else ""
        rows.append([f"{size}{mark}", f"{row.drain:.0f}", f"{qpfs.drain / row.drain:.2f}x",
                     f"{row.instance_hours / qpfs.instance_hours:.2f}x", f"{idle:.2f}"])
    return markdown_table(["warm_pool_size", "burst drain s", "faster than QPFS",
                           "instance-h vs QPFS", "idle month USD"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small loads, no figures")
    parser.add_argument("--search", action="store_true", help="compare BacklogScaling props")
    parser.add_argument("--check", action="store_true",
                        help="drain a backlog on the local stack with 1, 2, 4 workers")
    parser.add_argument("--check-signals", action="store_true",
                        help="a burst on the local stack following its group (1, 2, 4 workers "
                             "at most) against the simulated capacity raise")
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--figures", type=Path, default=None,
                        help=f"write PNGs here (default {FIGURES.relative_to(ROOT)}; "
                             f"none with --quick)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    if args.check:
        from bench.scaling.check import run_check

        print(run_check(quick=args.quick))
        return 0
    if args.check_signals:
        from bench.scaling.check_signals import run_check_signals

        print(run_check_signals(quick=args.quick))
        return 0

    started = time.monotonic()
    context = parse_context(args.context)
    figures = args.figures or (None if args.quick else FIGURES)
    print("measuring service times, synthesizing templates ...", file=sys.stderr)
    measured = world_figures.measure_kinds(args.quick)
    services = {kind: world_figures.on_t2_micro(m) for kind, m in measured.items()}
    policies = synthesize_policies(context)
    world = world_figures.aws_world()

    print(f"## Scaling simulation ({machine_line()})\n")
    print(f"Context {context}; {world_figures.PRICE_NOTE}; launch to first receive "
          f"{world.launch_seconds:.0f} s; metric delay {world.metric_delay:.0f} s.\n")
    print("### Service times per job (measured here, scaled to a t2.micro)\n")
    print(service_table(measured, services) + "\n")
    results: dict[str, dict[str, Row]] = {}
    loads = world_figures.loads(args.quick)
    for load in loads:
        print(f"simulating {load.name} ...", file=sys.stderr)
        jobs = load.jobs(services, args.seed)
        fleets = policies.all()
        outcomes = [simulate(f, world, load, jobs, args.seed) for f in fleets]
        rows = [Row.of(o, load, f) for o, f in zip(outcomes, fleets, strict=True)]
        results[load.name] = {r.label: r for r in rows}
        print(load_table(load, len(jobs), rows) + "\n")
        if figures is not None:
            figure(load, outcomes, figures / f"scaling-{load.name}.png")
    print(f"### Targets (min_workers={context['min_workers']}, "
          f"max_workers={context['max_workers']})\n")
    print("\n".join(targets(results, policies)) + "\n")
    by_name = {load.name: load for load in loads}
    print("### Warm pool size: the burst, and an idle month\n")
    print(pool_sizes(policies, services, world, by_name["burst"], args.seed) + "\n")
    if not args.quick:
        print("### Sensitivity: launch and warm start times\n")
        print(sensitivity(policies, services, by_name, args.seed) + "\n")
    if args.search:
        from bench.scaling.choice import search_table

        print(search_table(policies, services, world, loads, args.seed) + "\n")
    print(f"(total {time.monotonic() - started:.0f} s; command: python -m bench.scaling"
          f"{' --quick' if args.quick else ''}{' --search' if args.search else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
