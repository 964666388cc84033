"""--check: the simulator against real worker processes where both exist.

A backlog of 12 MP `equalize` jobs on the local stack (moto on 127.0.0.1) is drained by 1, 2 and
4 worker processes already running (launch time 0), and simulated with the emulator's SQS call
time measured in the same run. Two service times: the one-worker run's (what independent
instances would see: the simulation proper), and each run's own (the queue, batch and flush
mechanics alone, with this shared 2-core machine's contention taken as measured). The
one-worker run also gives the worker's time per job outside fetch, run and store.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench._common import local_stack, markdown_table, quiet_emulator, workers
from bench.scaling.policy import Fleet
from bench.scaling.world import Job, Simulation, World

KIND = "equalize"
MEGAPIXELS = 12
TOLERANCE = 0.20


def call_seconds(stack: object) -> float:
    """Median time of one SQS call on the emulator (an empty receive, no wait)."""
    sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
    url = stack.outputs["RequestQueueUrl"]
    samples = []
    for _ in range(20):
        started = time.perf_counter()
        sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


@dataclass(frozen=True)
class Drain:
    seconds: float
    run_times: list[float]  # each job's fetch + run + store, as its worker measured them
    call: float  # one SQS call on the emulator
    emulator_cpu: float  # CPU seconds of this process (emulator and client) per job
    load: float  # the machine's 1-minute load average at the end


def drain_once(count: int, jobs: int, image: Path) -> Drain:
    """Drain `jobs` with `count` workers."""
    from worker_src import registry, wire

    with local_stack(f"scaling-check-{count}") as stack:
        call = call_seconds(stack)
        with workers(stack, count), stack.client() as client:
            ids = [wire.new_job_id() for _ in range(jobs)]
            main_input = registry.get_kind(KIND).main_input
            with ThreadPoolExecutor(max_workers=8) as pool:
                keys = list(pool.map(lambda i: client.upload(i, image.name, image), ids))
            # Uploaded first, then submitted at once: the backlog is all there at the start.
            started, cpu = time.perf_counter(), time.process_time()
            client.submit([(KIND, {main_input: key}) for key in keys], job_ids=ids)
            results = list(client.wait(ids, timeout=900))
            drained = time.perf_counter() - started
            cpu = time.process_time() - cpu
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} job(s) failed: {failed[0].error_message}")
    steps = ("fetch_s", "run_s", "store_s")
    return Drain(drained, [sum(r.timing.get(k, 0.0) for k in steps) for r in results], call,
                 cpu / jobs,
                 os.getloadavg()[0])


def simulated(count: int, jobs: int, service: float, call: float) -> float:
    """Drain time of the same backlog with `count` workers, each job taking `service`."""
    from worker_src.config import WorkerConfig
    from worker_src.worker import BATCH_SECONDS, FLUSH_AFTER_SECONDS

    world = World(launch_seconds=0.0,
                  wait_seconds=WorkerConfig.__dataclass_fields__["wait_seconds"].default,
                  batch_seconds=BATCH_SECONDS, flush_seconds=FLUSH_AFTER_SECONDS,
                  sqs_call_seconds=call, credits=False)
    fleet = Fleet(label=f"{count} workers", service="ec2", min_size=count, max_size=count,
                  desired=count, protects_busy=True, group_metrics=frozenset(),
                  default_warmup=None, default_cooldown=300.0, visibility_timeout=120.0)
    backlog = [Job(0.0, KIND, service, 0.0) for _ in range(jobs)]
    outcome = Simulation(fleet, world, backlog, surge=(0.0, 0.0), horizon=3600.0).run()
    return outcome.drained_at


def run_check(quick: bool) -> str:
    from bench.image import Case, make_image

    quiet_emulator()
    counts, jobs = ((1, 2), 40) if quick else ((1, 2, 4), 200)
    cores = os.cpu_count() or 1
    rows, base, overhead = [], 0.0, 0.0
    with tempfile.TemporaryDirectory(prefix="wqw-scaling-check-") as folder:
        image = make_image(Path(folder) / "photo.jpg", Case(MEGAPIXELS, "RGB", "JPEG"))
        for count in counts:
            drain = drain_once(count, jobs, image)
            own = statistics.median(drain.run_times)
            if count == counts[0]:
                # One worker alone: the job's service time, and the worker's time per job
                # outside fetch, run and store (decoding, the result, the log line) that the
                # simulation's SQS calls do not account for.
                base = own
                overhead = max(0.0, (drain.seconds - simulated(1, jobs, own, drain.call)) / jobs)
            aws = simulated(count, jobs, base + overhead, drain.call)
            mechanics = simulated(count, jobs, own + overhead, drain.call)
            rows.append([str(count), f"{drain.seconds:.1f}", f"{own * 1000:.0f}",
                         f"{drain.emulator_cpu * 1000:.0f}", f"{drain.call * 1000:.1f}",
                         f"{drain.load:.1f}", f"{aws:.1f}", diff(aws, drain.seconds),
                         f"{mechanics:.1f}", diff(mechanics, drain.seconds)])
    table = markdown_table(
        ["workers", "measured drain s", "median job ms", "emulator+client CPU ms/job",
         "SQS call ms", "load average", "simulated, 1-worker service s", "vs measured",
         "simulated, this run's service s", "vs measured"], rows)
    return (f"### Check: {jobs} `equalize` jobs of {MEGAPIXELS} MP drained on the local stack "
            f"({cores} cores)\n\n{table}\n\n(job: fetch_s + run_s + store_s, each job's own "
            f"time as its worker measured it. Both simulations add {overhead * 1000:.0f} ms a "
            f"job, the one-worker run's time outside them, so their first row matches by "
            f"construction. Launch time 0; within {TOLERANCE:.0%} counts as agreeing.)")


def diff(simulated_seconds: float, measured: float) -> str:
    change = simulated_seconds / measured - 1
    return f"{change:+.0%}" + ("" if abs(change) <= TOLERANCE else " (outside 20 %)")
