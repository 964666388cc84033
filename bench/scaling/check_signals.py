"""--check-signals: the capacity raise and the warm start, simulated and on the local stack.

The local stack follows its Auto Scaling group (client/local_group.py): min_workers=0, and
max_workers 1, 2 or 4. A backlog of `equalize` jobs is uploaded, then sent as one run; the
client raises the group's desired capacity at once, the workers' full batches raise it too, and
each new instance's worker starts `START_DELAY` seconds after it appears (the warm start's
stand-in). Measured: the first answer and the drain, from the moment the run is sent and the
capacity raised (sending 400 jobs to the emulator takes seconds the simulation leaves out).
Simulated: the same fleet (no instance at rest, every start a warm start of START_DELAY plus
the worker's measured start-up, the same raise rule), with the service time of the one-worker
run (the simulation proper) and of each run itself (this machine's contention as measured).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench._common import WorkerProcess, markdown_table, quiet_emulator
from bench.scaling.check import TOLERANCE, call_seconds, diff
from bench.scaling.policy import Fleet
from bench.scaling.world import Job, Simulation, World

KIND = "equalize"
MEGAPIXELS = 1
START_DELAY = 3.0
# The follower looks at the group every 0.5 s: a new instance waits a quarter second on average.
FOLLOWER_LAG = 0.25


def measure(count: int, jobs: int, image: Path, log: Path) -> dict[str, float]:
    """Send `jobs` at once to a local stack that may grow to `count` workers from none."""
    from client.local import LocalStack
    from worker_src import registry, wire

    context = {"min_workers": "0", "max_workers": str(count)}
    with LocalStack(stack_name=f"signals-{count}", context=context, follow_group=True,
                    start_delay=START_DELAY, idle_seconds=600.0, worker_log=log) as stack:
        call = call_seconds(stack)
        with stack.client() as client:
            ids = [wire.new_job_id() for _ in range(jobs)]
            main_input = registry.get_kind(KIND).main_input
            with ThreadPoolExecutor(max_workers=8) as pool:
                keys = list(pool.map(lambda i: client.upload(i, image.name, image), ids))
            client.submit([(KIND, {main_input: key}) for key in keys], job_ids=ids)
            # From the end of the send and the client's raise: the simulation's t = 0 (all jobs
            # waiting, capacity raised). No worker exists before, so none has started early.
            sent = time.perf_counter()
            first = None
            results = []
            for result in client.wait(ids, timeout=900):
                first = first if first is not None else time.perf_counter() - sent
                results.append(result)
            drained = time.perf_counter() - sent
        most = max(s.running for s in stack.follower.samples)
        # The worker's own start-up (imports, first call), measured once the queue is empty:
        # a worker killed in its long poll before the run would have taken jobs with it.
        started_at = time.perf_counter()
        WorkerProcess(stack).stop()
        startup_seconds = time.perf_counter() - started_at
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} job(s) failed: {failed[0].error_message}")
    steps = ("fetch_s", "run_s", "store_s")
    service = statistics.median(sum(r.timing.get(k, 0.0) for k in steps) for r in results)
    return {"first": first, "drain": drained, "service": service, "call": call,
            "startup": startup_seconds, "most": most}


def simulated(count: int, jobs: int, service: float, call: float,
              warm: float) -> tuple[float, float]:
    """(first answer, drain) of the same run in the simulated world."""
    from worker_src.config import WorkerConfig
    from worker_src.worker import BATCH_SECONDS, FLUSH_AFTER_SECONDS

    world = World(launch_seconds=1e6, warm_seconds=warm,
                  wait_seconds=WorkerConfig.__dataclass_fields__["wait_seconds"].default,
                  batch_seconds=BATCH_SECONDS, flush_seconds=FLUSH_AFTER_SECONDS,
                  sqs_call_seconds=call, credits=False)
    fleet = Fleet(label=f"0..{count}", service="ec2", min_size=0, max_size=count, desired=0,
                  protects_busy=True, group_metrics=frozenset(), default_warmup=None,
                  default_cooldown=300.0, visibility_timeout=120.0, warm_pool=count,
                  raises_capacity=True)
    backlog = [Job(0.0, KIND, service, 0.0) for _ in range(jobs)]
    outcome = Simulation(fleet, world, backlog, surge=(0.0, 0.0), horizon=3600.0).run()
    return outcome.first_answer, outcome.drained_at


def run_check_signals(quick: bool) -> str:
    from bench.image import Case, make_image

    quiet_emulator()
    counts, jobs = ((1, 2), 160) if quick else ((1, 2, 4), 400)
    rows, base, overhead = [], 0.0, 0.0
    with tempfile.TemporaryDirectory(prefix="wqw-signals-") as folder:
        image = make_image(Path(folder) / "photo.jpg", Case(MEGAPIXELS, "RGB", "JPEG"))
        for count in counts:
            got = measure(count, jobs, image, Path(folder) / f"workers-{count}.log")
            warm = START_DELAY + FOLLOWER_LAG + got["startup"]
            if count == counts[0]:
                # As in --check: the one-worker run's job time, and its time per job outside
                # fetch, run and store that the simulation's SQS calls do not account for.
                base = got["service"]
                _, bare = simulated(1, jobs, base, got["call"], warm)
                overhead = max(0.0, (got["drain"] - bare) / jobs)
            first, drain = simulated(count, jobs, base + overhead, got["call"], warm)
            _, own = simulated(count, jobs, got["service"] + overhead, got["call"], warm)
            rows.append([str(count), str(got["most"]), f"{got['startup']:.1f}",
                         f"{got['first']:.1f}", f"{first:.1f}", diff(first, got["first"]),
                         f"{got['drain']:.1f}", f"{drain:.1f}", diff(drain, got["drain"]),
                         f"{got['service'] * 1000:.0f}", f"{own:.1f}",
                         diff(own, got["drain"])])
    table = markdown_table(
        ["max workers", "workers seen", "worker start-up s", "measured first answer s",
         "simulated", "vs measured", "measured drain s", "simulated (1-worker service)",
         "vs measured", "this run's median job ms", "simulated (this run's service)",
         "vs measured"], rows)
    return (f"### Check: the capacity raise from 0 workers, {jobs} `equalize` jobs of "
            f"{MEGAPIXELS} MP sent as one run to the local stack\n\n{table}\n\n(start delay "
            f"{START_DELAY:g} s, the warm start's stand-in, plus the worker's start-up measured "
            f"in the same run. Both simulations add {overhead * 1000:.0f} ms a job, the "
            f"one-worker run's time outside fetch, run and store, so their first drain matches "
            f"by construction; within {TOLERANCE:.0%} counts as agreeing.)")
