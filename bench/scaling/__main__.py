"""Scaling: the stack's own policy, simulated at loads no test machine can reach, against anchors.

    .venv/bin/python -m bench.scaling             # tables + docs/figures/scaling-*.png (~2 min)
    .venv/bin/python -m bench.scaling --quick     # smoke run: small loads, no figures
    .venv/bin/python -m bench.scaling --search    # also: BacklogScaling's props compared
    .venv/bin/python -m bench.scaling --check     # the simulator against real worker processes
    options: -c max_workers=10 (any app.py context), --figures DIR, --seed N

The policies come from synthesized templates: the stack's (app.py with the given context), the
default stack's (max_workers=1: one worker, no scaling), the AWS CDK QueueProcessingFargateService
default and AWS's target tracking on backlog per instance (bench/scaling/search.py). The
world's figures (launch time, S3, CPU credits, prices) are in bench/scaling/loads.py; service
times per job kind are measured here first. docs/scaling.md explains every assumption.
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
from bench.scaling.report import Row, figure, load_table
from bench.scaling.world import Simulation, World

FIGURES = ROOT / "docs" / "figures"
OURS = "ours (this stack)"


@dataclasses.dataclass(frozen=True)
class Policies:
    ours: Fleet
    default_stack: Fleet  # max_workers=1
    qpfs: Fleet
    tracking: Fleet

    def all(self) -> list[Fleet]:
        size = self.ours.max_size
        return [self.ours, self.qpfs, self.tracking,
                dataclasses.replace(self.default_stack, label="fixed 1 (default stack)"),
                fixed_pool(self.ours, size, f"fixed {size}")]


def parse_context(items: list[str]) -> dict[str, str]:
    context = {"max_workers": "10"}
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
    with tempfile.TemporaryDirectory(prefix="wqw-scaling-synth-") as folder, \
            ThreadPoolExecutor(max_workers=2) as pool:
        ours = pool.submit(synthesize, "wqw-scaling", context, Path(folder) / "ours")
        single = pool.submit(synthesize, "wqw-scaling", {**context, "max_workers": "1"},
                             Path(folder) / "single")
        qpfs = search.qpfs_template(max_workers)
        tracking = search.target_tracking_template(max_workers, target)
        return Policies(
            ours=read_fleet(ours.result(), OURS),
            default_stack=read_fleet(single.result(), "default stack"),
            qpfs=read_fleet(qpfs, "QPFS default"),
            tracking=read_fleet(tracking, f"AWS target tracking {target:g}/instance"))


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
    lines = [
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
                load: world_figures.Load, seed: int) -> str:
    """The burst under other launch times and metric delays: the two least certain figures."""
    jobs = load.jobs(services, seed)
    rows = []
    for launch in (60.0, world_figures.LAUNCH_SECONDS, 300.0):
        for delay in (world_figures.METRIC_DELAY_SECONDS, 180.0):
            world = dataclasses.replace(world_figures.aws_world(launch), metric_delay=delay)
            ours = Row.of(simulate(policies.ours, world, load, jobs, seed), load)
            qpfs = Row.of(simulate(policies.qpfs, world, load, jobs, seed), load)
            rows.append([f"{launch:.0f}", f"{delay:.0f}", f"{ours.drain:.0f}",
                         f"{qpfs.drain:.0f}", f"{qpfs.drain / ours.drain:.2f}x",
                         f"{ours.instance_hours:.2f}", f"{qpfs.instance_hours:.2f}"])
    return markdown_table(["launch s", "metric delay s", "ours: drain s", "QPFS: drain s",
                           "QPFS / ours", "ours: instance-h", "QPFS: instance-h"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small loads, no figures")
    parser.add_argument("--search", action="store_true", help="compare BacklogScaling props")
    parser.add_argument("--check", action="store_true",
                        help="drain a backlog on the local stack with 1, 2, 4 workers")
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
        outcomes = [simulate(f, world, load, jobs, args.seed) for f in policies.all()]
        rows = [Row.of(o, load) for o in outcomes]
        results[load.name] = {r.label: r for r in rows}
        print(load_table(load, len(jobs), rows) + "\n")
        if figures is not None:
            figure(load, outcomes, figures / f"scaling-{load.name}.png")
    print("### Targets (max_workers=" + context["max_workers"] + ")\n")
    print("\n".join(targets(results, policies)) + "\n")
    if not args.quick:
        print("### Sensitivity: the burst under other launch times and metric delays\n")
        print(sensitivity(policies, services, loads[0], args.seed) + "\n")
    if args.search:
        from bench.scaling.choice import search_table

        print(search_table(policies, services, world, loads, args.seed) + "\n")
    print(f"(total {time.monotonic() - started:.0f} s; command: python -m bench.scaling"
          f"{' --quick' if args.quick else ''}{' --search' if args.search else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
