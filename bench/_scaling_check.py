"""--check: the simulator against real worker processes where both exist.

A backlog of 12 MP `equalize` jobs on the local stack (moto on 127.0.0.1) is drained by 1, 2 and
4 worker processes already running (launch time 0). The same backlog is then simulated with the
service time and the emulator's SQS call time measured in the same run: once as independent
instances (as on AWS), once with every worker sharing this machine's cores (as here).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench._common import local_stack, markdown_table, quiet_emulator, workers
from bench._scaling_policy import Fleet
from bench._scaling_world import Job, Simulation, World

MEGAPIXELS = 12
TOLERANCE = 0.20


def _call_seconds(stack: object) -> float:
    """Median time of one SQS call on the emulator (an empty receive, no wait)."""
    sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
    url = stack.outputs["RequestQueueUrl"]
    samples = []
    for _ in range(20):
        started = time.perf_counter()
        sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def drain_once(count: int, jobs: int, image: Path) -> tuple[float, list[float], float]:
    """(drain seconds, each job's run_s, SQS call seconds) with `count` workers."""
    from client.api import output_key_for
    from worker_src import wire

    with local_stack(f"scaling-check-{count}") as stack:
        call = _call_seconds(stack)
        with workers(stack, count), stack.client() as client:
            ids = [wire.new_job_id() for _ in range(jobs)]
            with ThreadPoolExecutor(max_workers=8) as pool:
                keys = list(pool.map(lambda i: client.upload_input(i, image), ids))
            started = time.perf_counter()
            client.submit([("equalize", {"input_key": k, "output_key": output_key_for(k)})
                           for k in keys], job_ids=ids)
            results = list(client.wait(ids, timeout=900))
            drained = time.perf_counter() - started
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} job(s) failed: {failed[0].error_message}")
    return drained, [r.timing["run_s"] for r in results], call


def simulated(count: int, jobs: int, service: float, call: float, cores: int | None) -> float:
    from worker_src.config import WorkerConfig
    from worker_src.worker import BATCH_SECONDS, FLUSH_AFTER_SECONDS

    world = World(launch_seconds=0.0,
                  wait_seconds=WorkerConfig.__dataclass_fields__["wait_seconds"].default,
                  batch_seconds=BATCH_SECONDS, flush_seconds=FLUSH_AFTER_SECONDS,
                  sqs_call_seconds=call, credits=False, host_cores=cores)
    fleet = Fleet(label=f"{count} workers", service="ec2", min_size=count, max_size=count,
                  desired=count, protects_busy=True, group_metrics=frozenset(),
                  default_warmup=None, default_cooldown=300.0, visibility_timeout=120.0)
    backlog = [Job(0.0, "equalize", service, 0.0) for _ in range(jobs)]
    outcome = Simulation(fleet, world, backlog, surge=(0.0, 0.0), horizon=3600.0).run()
    return outcome.drained_at


def run_check(quick: bool) -> str:
    from bench.image import Case, make_image

    quiet_emulator()
    counts, jobs = ((1, 2), 40) if quick else ((1, 2, 4), 200)
    cores = os.cpu_count() or 1
    rows, service = [], None
    with tempfile.TemporaryDirectory(prefix="wqw-scaling-check-") as folder:
        image = make_image(Path(folder) / "photo.jpg", Case(MEGAPIXELS, "RGB", "JPEG"))
        for count in counts:
            drained, run_times, call = drain_once(count, jobs, image)
            median_run = statistics.median(run_times)
            service = service or median_run  # one worker alone: the job's own service time
            alone = simulated(count, jobs, service, call, None)
            shared = simulated(count, jobs, service, call, cores)
            rows.append([str(count), f"{drained:.1f}", f"{median_run * 1000:.0f}",
                         f"{call * 1000:.1f}", f"{alone:.1f}", _diff(alone, drained),
                         f"{shared:.1f}", _diff(shared, drained)])
    table = markdown_table(
        ["workers", "measured drain s", "median run_s ms", "SQS call ms",
         "simulated, own CPU each s", "vs measured", f"simulated, {cores} shared cores s",
         "vs measured"], rows)
    return (f"### Check: {jobs} `equalize` jobs of {MEGAPIXELS} MP drained on the local stack\n\n"
            f"{table}\n\n(service time in the simulation: the median run_s with one worker, "
            f"{service * 1000:.0f} ms; launch time 0; within {TOLERANCE:.0%} counts as agreeing)")


def _diff(simulated_seconds: float, measured: float) -> str:
    change = simulated_seconds / measured - 1
    return f"{change:+.0%}" + ("" if abs(change) <= TOLERANCE else " (outside 20 %)")
