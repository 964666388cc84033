"""What the simulation's workers do and what arrives: service times per job kind, the loads.

Service times are measured on this machine with the project's own job code (bench/image.py's
method (b): the registered kind's run, decode and encode included; the stats function) and
scaled to a t2.micro: CPU time times CPU_FACTOR, plus S3 transfer at T2_BANDWIDTH and
S3_REQUEST_SECONDS per request. docs/scaling.md says where each figure comes from.
"""

from __future__ import annotations

import math
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.scaling.world import Job, World
from worker_src import contract

# ---- the world's figures (estimates; see docs/scaling.md, "Assumptions") --------------------

# One t2.micro vCPU (a hyperthread of a Haswell/Broadwell Xeon, up to 3.3 GHz) against one core
# of this machine (a 2023 Xeon): single-threaded job code takes about this much longer there.
CPU_FACTOR = 1.5
# S3 from an instance in the same region: time to first byte per request, and the sustained
# bandwidth of a micro instance (0.06 Gbit/s baseline measured for t3.micro by cloudonaut's EC2
# network benchmark, us-east-1, 2018; AWS publishes only "low to moderate" for t2.micro).
S3_REQUEST_SECONDS = 0.030
T2_BANDWIDTH = 0.06e9 / 8  # bytes per second
# Launch to first receive (contract.LAUNCH_SECONDS): EC2 pending -> running ~20 s, boot to user
# data ~20 s, install.sh (swap file ~10 s, dnf ~45 s, CloudWatch agent ~5 s, venv + pip ~40 s:
# 16.5 s measured here with local wheels, times CPU_FACTOR, plus ~90 MB of wheels at
# T2_BANDWIDTH), worker start ~10 s.
LAUNCH_SECONDS = float(contract.LAUNCH_SECONDS)
# Start of a stopped warm-pool instance to first receive (contract.WARM_START_SECONDS): AWS's
# warm pool documentation and launch post quote "as little as 30 s" to serve from a stopped
# instance, a public CI stack measured 10-30 s; plus the worker's imports (~5 s here times
# CPU_FACTOR) and its first call to the queue.
WARM_SECONDS = float(contract.WARM_START_SECONDS)
INSTALL_CPU_SECONDS = 60.0
METRIC_DELAY_SECONDS = 60.0
SQS_CALL_SECONDS = 0.015
# us-east-1 Linux on-demand list price of a t2.micro (AWS EC2 pricing page).
T2_MICRO_DOLLARS_PER_HOUR = 0.0116
# Each instance's 10 GiB gp3 root volume, billed while it exists, running or stopped (the warm
# pool's instances pay only this): us-east-1 gp3 $0.08 per GB-month (AWS EBS pricing page).
VOLUME_DOLLARS_PER_HOUR = 10 * 0.08 / 730
# A running instance's public IPv4 address: $0.005 per hour (AWS VPC pricing, since February
# 2024); a stopped instance has none.
IPV4_DOLLARS_PER_HOUR = 0.005
HOURS_PER_MONTH = 730.0
PRICE_NOTE = ("t2.micro on-demand $0.0116/h, its public IPv4 address $0.005/h and its 10 GiB "
              "gp3 volume $0.80/month, us-east-1 (AWS list prices, 2025)")

KINDS = ("stats", "equalize 1 MP", "equalize 12 MP")
MIX = {"stats": 0.5, "equalize 1 MP": 0.4, "equalize 12 MP": 0.1}


@dataclass(frozen=True)
class Measured:
    """One kind's job on this machine: seconds of the job function, and S3 bytes in and out."""

    kind: str
    seconds: float
    cpu_seconds: float
    bytes_in: int
    bytes_out: int


@dataclass(frozen=True)
class Service:
    """One kind's job on a t2.micro: full-speed CPU seconds and seconds waiting on S3."""

    cpu: float
    io: float


def measure_kinds(quick: bool) -> dict[str, Measured]:
    """Time the worker's own job functions here (median of runs, wall and CPU time), in this
    process: a work horse's CPU time would not be counted."""
    from bench._common import run_in_process, stats_args
    from bench.image import Case, make_image
    from worker_src.executor import Executor
    from worker_src.jobs.stats import compute_stats
    from worker_src.store import MemoryStore

    runs = 1 if quick else 5
    numbers = stats_args(random.Random(1))["numbers"]
    found = {"stats": _timed("stats", lambda: compute_stats(numbers), runs, 0, 0)}
    executor = Executor(MemoryStore(), identity="bench")
    with tempfile.TemporaryDirectory(prefix="wqw-scaling-") as folder:
        for kind, megapixels in (("equalize 1 MP", 1), ("equalize 12 MP", 12)):
            path = make_image(Path(folder) / f"{megapixels}.jpg", Case(megapixels, "RGB", "JPEG"))

            def equalize(p: Path = path) -> Any:
                return run_in_process("equalize", {}, {"image": p}, executor)

            found[kind] = _timed(kind, equalize, runs, path.stat().st_size, len(equalize().data))
    return found


def _timed(kind: str, work: Callable[[], object], runs: int, bytes_in: int,
           bytes_out: int) -> Measured:
    work()  # warm: imports, first-call caches
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return Measured(kind, statistics.median(walls), statistics.median(cpus), bytes_in, bytes_out)


def on_t2_micro(measured: Measured) -> Service:
    transfers = (measured.bytes_in + measured.bytes_out) / T2_BANDWIDTH
    requests = 2 * S3_REQUEST_SECONDS if measured.bytes_in else 0.0
    # CPU time, not wall time: the job code is single-threaded and CPU-bound, and on this shared
    # machine wall time also counts other processes.
    return Service(cpu=measured.cpu_seconds * CPU_FACTOR, io=transfers + requests)


def aws_world(launch_seconds: float = LAUNCH_SECONDS,
              warm_seconds: float = WARM_SECONDS) -> World:
    from worker_src.config import WorkerConfig
    from worker_src.worker import BATCH_SECONDS, FLUSH_AFTER_SECONDS

    return World(launch_seconds=launch_seconds,
                 wait_seconds=WorkerConfig.__dataclass_fields__["wait_seconds"].default,
                 batch_seconds=BATCH_SECONDS, flush_seconds=FLUSH_AFTER_SECONDS,
                 sqs_call_seconds=SQS_CALL_SECONDS, metric_delay=METRIC_DELAY_SECONDS,
                 install_cpu_seconds=INSTALL_CPU_SECONDS, warm_seconds=warm_seconds)


# ---- the loads --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Load:
    name: str
    title: str
    rate: Callable[[float], float] | None  # jobs/s at time t, for Poisson loads
    duration: float  # seconds of arrivals
    surge: tuple[float, float]  # drain time is measured from surge[0], once surge[1] has passed
    burst: int = 0  # jobs all at t = 0 (of `kind`)
    peak_rate: float = 0.0
    settle: float = 3600.0  # simulated after the last arrival (instance-hours count to there)
    kind: str = "equalize 12 MP"
    # A steady load runs all month (its cost is scaled from the simulated span); a one-off
    # (burst, first job) happens once in a month that is otherwise idle.
    repeats: bool = True

    @property
    def horizon(self) -> float:
        return self.duration + self.settle

    def jobs(self, services: dict[str, Service], seed: int) -> list[Job]:
        rng = random.Random(seed)
        if self.burst:
            service = services[self.kind]
            return [Job(0.0, self.kind, service.cpu, service.io) for _ in range(self.burst)]
        jobs, t = [], 0.0
        kinds, weights = list(MIX), list(MIX.values())
        while True:  # a non-homogeneous Poisson process by thinning
            t += rng.expovariate(self.peak_rate)
            if t >= self.duration:
                return jobs
            if rng.random() * self.peak_rate <= self.rate(t):
                kind = rng.choices(kinds, weights)[0]
                jobs.append(Job(t, kind, services[kind].cpu, services[kind].io))


def loads(quick: bool) -> list[Load]:
    hour = 3600.0
    steady = 600.0 if quick else hour
    day = 2 * hour if quick else 24 * hour
    spike_at, spike_for = (300.0, 120.0) if quick else (1200.0, 300.0)
    found = [Load("burst", f"burst of {500 if quick else 1000} 12 MP images", None, 0.0,
                  (0.0, 0.0), burst=500 if quick else 1000, settle=hour, repeats=False),
             Load("first", "the first job into an idle stack (one stats job)", None, 0.0,
                  (0.0, 0.0), burst=1, settle=hour, kind="stats", repeats=False)]
    rates = (2.0,) if quick else (0.5, 2.0, 8.0)
    for rate in rates:
        found.append(Load(f"poisson-{rate:g}", f"Poisson {rate:g} jobs/s, mixed kinds",
                          lambda _t, r=rate: r, steady, (steady, steady), peak_rate=rate))
    low, peak = 0.2, 8.0
    found.append(Load(
        "daily", f"daily ramp {low:g} -> {peak:g} -> {low:g} jobs/s, mixed kinds",
        lambda t: low + (peak - low) * (1 - math.cos(2 * math.pi * t / day)) / 2, day,
        (day, day), peak_rate=peak))
    base = 2.0
    found.append(Load(
        "spike", f"{base:g} jobs/s with {10 * base:g} jobs/s for {spike_for / 60:g} min",
        lambda t: 10 * base if spike_at <= t < spike_at + spike_for else base, steady,
        (spike_at, spike_at + spike_for), peak_rate=10 * base))
    return found
