"""Throughput and scale-out: jobs per second with 1 and 2 workers, beside the emulator's own rate.

    .venv/bin/python -m bench.throughput            # full run (about 2 minutes)
    .venv/bin/python -m bench.throughput --quick    # smoke run (about 30 s)

The local stack (the CDK template deployed into moto on 127.0.0.1) and 1, then 2, real worker
processes (`python -m worker_src`). For each worker count, in this order:

- raw: the emulator's batch message rate on a queue of its own holding DEPTH messages:
  receive 10, delete_message_batch them, send_message_batch 10 new ones; one thread, no job code.
  A message through this loop costs what one message of a job costs (send, receive, delete).
  A job needs two such messages (the job and its result), so half the raw rate is the
  best a job pipeline of the same depth can do per client.
- stats: Client.submit / Client.wait from one thread, at most DEPTH jobs in flight (topped up
  10 at a time), 100 integers per job.
- images: 1 MP photo-like RGB JPEGs (q90, generated here): Client.submit_files (uploads 8 at a
  time), at most 40 in flight; outputs left in S3 (the CLI row downloads them).
- 12 MP images (full run only): the same with 4000×3000 JPEGs, where the worker's own
  compute, not the emulator, dominates a job.
- CLI: `python -m client equalize IMG... -o DIR` as a subprocess (interpreter start, imports,
  stack lookup, uploads, jobs, downloads: the user's wall time).

Queues stay shallow: the request queue never holds more than DEPTH jobs (50 here); moto's every
SQS call slows as a queue deepens (receive of 10: 11 ms at depth 11, 438 ms at depth 1,000).
The emulator runs in this process: the client's own work competes with it for one GIL.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import (
    ROOT,
    WorkerProcess,
    local_stack,
    machine_line,
    make_photo,
    markdown_table,
    quiet_emulator,
    stats_args,
)
from worker_src import wire

BATCH = 10  # jobs per send_message_batch
STATS_DEPTH = 50
IMAGE_DEPTH = 40  # 2 workers x a batch of 10 each x 2, so neither waits for the client
TARGET_STATS_SHARE_OF_RAW = 0.5


@dataclass(frozen=True)
class Sizes:
    stats_jobs: int
    image_jobs: int
    cli_images: int
    raw_seconds: float
    big_image_jobs: int = 0

    @classmethod
    def full(cls) -> Sizes:
        return cls(stats_jobs=500, image_jobs=60, cli_images=20, raw_seconds=5.0,
                   big_image_jobs=20)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(stats_jobs=20, image_jobs=4, cli_images=2, raw_seconds=1.0)


@dataclass(frozen=True)
class Row:
    workload: str
    workers: int
    jobs: int  # messages for the raw row
    depth: int
    seconds: float
    here_cpu: float | None = None  # CPU seconds of this process (emulator, library client) + CLI
    worker_cpu: float | None = None  # CPU seconds of the worker processes

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds


@dataclass(frozen=True)
class Phase:
    workers: int
    raw: Row
    stats: Row
    images: Row
    big_images: Row | None
    cli: Row


class CpuMeter:
    """CPU seconds used by this process (with waited-for children) and by the workers."""

    def __init__(self, worker_pids: list[int]) -> None:
        self.worker_pids = worker_pids

    def read(self) -> tuple[float, float]:
        times = os.times()
        here = times.user + times.system + times.children_user + times.children_system
        return here, sum(_process_cpu(pid) for pid in self.worker_pids)

    def timed(self, row: Callable[[], Row]) -> Row:
        here_before, workers_before = self.read()
        measured = row()
        here_after, workers_after = self.read()
        return dataclasses.replace(measured, here_cpu=here_after - here_before,
                                   worker_cpu=workers_after - workers_before)


def _process_cpu(pid: int) -> float:
    """utime + stime of a live process, from /proc (Linux); 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_rate(stack: Any, depth: int, seconds: float, body: str) -> Row:
    """Messages per second through send_message_batch + receive 10 + delete_message_batch."""
    sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
    url = sqs.create_queue(QueueName=f"bench-raw-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    entries = [{"Id": str(i), "MessageBody": body} for i in range(BATCH)]
    try:
        for _ in range(depth // BATCH):
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
        moved = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=BATCH,
                                           WaitTimeSeconds=1).get("Messages", [])
            if not messages:
                raise RuntimeError("the raw queue ran dry")
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages)])
            sqs.send_message_batch(QueueUrl=url, Entries=entries[:len(messages)])
            moved += len(messages)
        elapsed = time.perf_counter() - started
    finally:
        sqs.delete_queue(QueueUrl=url)
    return Row("emulator raw: send batch + receive 10 + delete batch (messages)", 0, moved,
               depth, elapsed)


def drive(client: Any, submit: Callable[[Any, int], list[str]], total: int, depth: int,
          timeout: float = 600.0) -> float:
    """Run `total` jobs with at most `depth` in flight; return the seconds it took."""
    outstanding: set[str] = set()
    submitted = done = 0
    started = time.perf_counter()
    deadline = time.monotonic() + timeout

    def room() -> bool:
        return submitted < total and len(outstanding) + BATCH <= depth

    while done < total:
        while room():
            count = min(BATCH, total - submitted)
            outstanding.update(submit(client, count))
            submitted += count
        for result in client.wait(sorted(outstanding), timeout=deadline - time.monotonic()):
            if not result.ok:
                raise RuntimeError(f"job failed: {result.error_code}: {result.error_message}")
            outstanding.discard(result.job_id)
            done += 1
            if room():
                break  # top up before waiting for the rest
    return time.perf_counter() - started


def run_cli(stack: Any, images: list[Path], out_dir: Path) -> float:
    env = stack.worker_environment()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "client", "equalize", *map(str, images), "-o", str(out_dir),
         "--stack", stack.stack_name, "--endpoint-url", stack.endpoint_url],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    written = list(out_dir.glob("*-equalized.jpg"))
    if done.returncode != 0 or len(written) != len(images):
        raise RuntimeError(f"the CLI failed ({done.returncode}, {len(written)} outputs): "
                           f"{done.stderr[-2000:]}")
    return elapsed


def measure_phase(stack: Any, running: list[WorkerProcess], sizes: Sizes, images: list[Path],
                  big_images: list[Path], tmp_dir: Path) -> Phase:
    """Measure with the workers now running."""
    worker_count = len(running)
    meter = CpuMeter([worker.process.pid for worker in running])
    rng = random.Random(worker_count)
    body = wire.encode_job(wire.Job(wire.new_job_id(), "stats", stats_args(rng), None,
                                    time.time()))

    def submit_stats(client: Any, count: int) -> list[str]:
        return client.submit([("stats", stats_args(rng)) for _ in range(count)])

    def submitter(paths: list[Path]) -> Callable[[Any, int], list[str]]:
        cycle = itertools.cycle(paths)
        return lambda client, count: client.submit_files(
            "equalize", [next(cycle) for _ in range(count)])

    raw = meter.timed(lambda: raw_rate(stack, STATS_DEPTH, sizes.raw_seconds, body))
    with stack.client() as client:
        drive(client, submit_stats, BATCH, BATCH)  # warm-up: reply queue, connections
        stats = meter.timed(lambda: Row(
            "`stats` jobs (library)", worker_count, sizes.stats_jobs, STATS_DEPTH,
            drive(client, submit_stats, sizes.stats_jobs, STATS_DEPTH)))
        image_row = meter.timed(lambda: Row(
            "`equalize` 1 MP JPEG (library: upload + job)", worker_count, sizes.image_jobs,
            IMAGE_DEPTH, drive(client, submitter(images), sizes.image_jobs, IMAGE_DEPTH)))
        big_row = None
        if sizes.big_image_jobs:
            big_row = meter.timed(lambda: Row(
                "`equalize` 12 MP JPEG (library: upload + job)", worker_count,
                sizes.big_image_jobs, IMAGE_DEPTH,
                drive(client, submitter(big_images), sizes.big_image_jobs, IMAGE_DEPTH)))
    cli_out = tmp_dir / f"cli-{worker_count}"
    cli = meter.timed(lambda: Row(
        "`python -m client equalize` 1 MP JPEGs (CLI, with downloads)", worker_count,
        sizes.cli_images, sizes.cli_images, run_cli(stack, images[:sizes.cli_images], cli_out)))
    return Phase(worker_count, raw=dataclasses.replace(raw, workers=worker_count), stats=stats,
                 images=image_row, big_images=big_row, cli=cli)


def measure(stack: Any, sizes: Sizes, max_workers: int = 2) -> list[Phase]:
    """One phase per worker count 1..max_workers, adding a worker between phases.

    Workers are only added, never stopped between phases: a worker killed during its long poll
    leaves the poll open in the emulator, which then takes up to 10 jobs and hides them for the
    visibility timeout (120 s).
    """
    phases = []
    running: list[WorkerProcess] = []
    with tempfile.TemporaryDirectory(prefix="wqw-bench-throughput-") as tmp:
        tmp_dir = Path(tmp)
        count = min(20, max(sizes.image_jobs, sizes.cli_images))
        images = [make_photo(tmp_dir / f"photo-{i:02d}.jpg", 1000, 1000, seed=i)
                  for i in range(count)]
        big_images = [make_photo(tmp_dir / f"big-{i}.jpg", 4000, 3000, seed=100 + i)
                      for i in range(min(4, sizes.big_image_jobs))]
        try:
            for _ in range(max_workers):
                running.append(WorkerProcess(stack))
                phases.append(measure_phase(stack, running, sizes, images, big_images, tmp_dir))
        finally:
            for worker in running:
                worker.stop()
    return phases


def render(phases: list[Phase]) -> str:
    rows: list[list[Any]] = []
    for phase in phases:
        for row in (phase.raw, phase.stats, phase.images, phase.big_images, phase.cli):
            if row is None:
                continue
            share = "" if row is phase.raw else f"{row.rate / phase.raw.rate:.2f}"
            rows.append([row.workload, row.workers, row.jobs, row.depth, f"{row.seconds:.2f}",
                         f"{row.rate:.1f}", share, _cpu(row.here_cpu), _cpu(row.worker_cpu)])
    rows.append(["Celery + SQS broker, 500-task backlog, default settings (quoted, not "
                 "measured)", "", 500, 500, "", "7.3", "", "", ""])
    rows.append(["Celery + SQS broker, 500-task backlog, tuned (quoted, not measured)", "",
                 500, 500, "", "39", "", "", ""])
    table = markdown_table(["workload", "workers", "jobs (raw: messages)", "queue depth ≤",
                            "seconds", "per second", "÷ raw", "CPU s: emulator + client",
                            "CPU s: workers"], rows)
    return "\n\n".join([
        "### Throughput", table,
        "(`÷ raw`: jobs per second over the emulator's raw message rate measured just before, "
        "in the same phase; a job is two messages, so 0.5 is the pipeline's floor-level share. "
        "CPU s: CPU time used during the row by this process (the emulator and the library "
        "client, or the CLI subprocess) and by the worker processes; wall seconds × 2 is all "
        "the machine has.)",
        "### Targets", "\n".join(targets(phases)),
    ])


def targets(phases: list[Phase]) -> list[str]:
    lines = []
    for phase in phases:
        share = phase.stats.rate / phase.raw.rate
        state = ("met" if share >= TARGET_STATS_SHARE_OF_RAW
                 else f"MISSED by {TARGET_STATS_SHARE_OF_RAW / share:.2f}×")
        lines.append(f"- `stats` jobs/s ÷ raw messages/s, {phase.workers} worker(s): "
                     f"{share:.2f} (target ≥ {TARGET_STATS_SHARE_OF_RAW:g}): {state}")
    by_workers = {phase.workers: phase for phase in phases}
    if 1 in by_workers and 2 in by_workers:
        for what in ("images", "big_images", "cli"):
            one, two = getattr(by_workers[1], what), getattr(by_workers[2], what)
            if one is None or two is None:
                continue
            speedup = two.rate / one.rate
            state = "met" if speedup > 1 else "MISSED"
            lines.append(f"- 2 workers ÷ 1 worker, {one.workload}: {speedup:.2f}× "
                         f"(target > 1): {state}")
    return lines


def _cpu(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="20 stats jobs, 4 images, 2 via the CLI, 1 s raw loop")
    args = parser.parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes.full()
    quiet_emulator()
    print(f"starting the local stack ({machine_line()}) ...", file=sys.stderr)
    with local_stack("bench-throughput") as stack:
        phases = measure(stack, sizes)
    print(render(phases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
