"""Requests and dollars per job: every SQS and S3 request of the client and the worker.

    .venv/bin/python -m bench.request_cost            # full run (about 2 minutes)
    .venv/bin/python -m bench.request_cost --quick    # smoke run (about 30 s)

The local stack (the CDK template deployed into moto on 127.0.0.1) with one real worker process:
`python -m bench._counted_worker` is `worker_src.__main__.main()` with botocore event hooks that
log each HTTP request it sends. The client is client.api.Client (as the CLI uses it), hooked the
same way. Each run uses a fresh Client (its own reply queue: list, create, delete) against an
idle worker, so per-run set-up is included. A worker request belongs to a run when its response
came back between the run's first request and the moment the worker had deleted every job;
the long poll that was waiting when the run began is therefore counted (it delivered the first
jobs), the next idle one is not.

A second batch of `stats` jobs has a cancel in flight: right after submitting, the client
cancels the batch's last job (client.lifecycle.request_cancel: a marker PUT and a cancel
message); its per-job figures next to the batch without one show what a cancel costs, and the
batch without one shows that the lifecycle (running words, cancel checks) costs a short job
nothing (docs/cancel.md).

Charges: SQS $0.40 per million requests (each started 64 KiB of payload is one request);
S3 PUT/COPY/POST/LIST $5 and GET/HEAD $0.40 per million; storage and transfer not included.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import (
    SQS_BILLING_CHUNK,
    Charges,
    Request,
    RequestRecorder,
    WorkerProcess,
    dollars_per_million_jobs,
    local_stack,
    machine_line,
    make_photo,
    markdown_table,
    quiet_emulator,
    read_request_log,
    stats_args,
    wait_until_acknowledged,
)
from client import lifecycle

TARGET_SQS_PER_JOB = 1.0
TARGET_DOLLARS_PER_MILLION = 0.50
TARGET_IDLE_RECEIVES_PER_MINUTE = 3.0
# Each job: 1/10 of a send batch, a receive, a reply batch, a delete batch (worker), a reply
# receive and a delete batch (client).
FLOOR_SQS_PER_JOB = 0.6
# What the lifecycle (running words, cancels) may add per job that is not cancelled (issue 18),
# over the 0.6-0.65 SQS requests per job measured before it.
TARGET_REQUESTS_PER_JOB = 0.65 + 0.1


@dataclass(frozen=True)
class Run:
    label: str
    jobs: int
    client: list[Request]
    worker: list[Request]

    @property
    def charges(self) -> Charges:
        return Charges.of(self.client + self.worker)

    def per_job(self) -> dict[str, float]:
        charges = self.charges
        return {"sqs": charges.sqs_requests / self.jobs,
                "sqs_billed": charges.sqs_billed / self.jobs,
                "s3_put": charges.s3_put / self.jobs, "s3_get": charges.s3_get / self.jobs,
                "dollars_per_million": 1e6 * charges.dollars() / self.jobs}


@dataclass(frozen=True)
class Idle:
    window_s: float
    receives: list[Request]  # ReceiveMessage requests the idle worker started in the window

    def per_minute(self) -> float | None:
        """From the mean interval between consecutive receives (None: fewer than two)."""
        if len(self.receives) < 2:
            return None
        starts = sorted(r.started for r in self.receives)
        return 60.0 * (len(starts) - 1) / (starts[-1] - starts[0])


@dataclass(frozen=True)
class Report:
    runs: list[Run]
    idle: Idle
    largest_sqs_payload: int
    cancelled: Run | None = None  # the batch with a cancel in flight (one of `runs`)


def idle_window(seconds: float) -> tuple[float, float]:
    """Leave the worker alone for `seconds`; return the window (read the log later: a request
    is logged when its response is back, 20 s after a long poll starts)."""
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def idle_receives(worker_log: Path, window: tuple[float, float]) -> Idle:
    start, end = window
    receives = [r for r in read_request_log(worker_log)
                if r.operation == "ReceiveMessage" and start <= r.started <= end]
    return Idle(end - start, receives)


def measure_run(stack: Any, worker_log: Path, label: str, jobs: int,
                submit: Any, after_wait: Any = None, timeout: float = 120.0,
                cancelled_ok: bool = False) -> Run:
    """Submit with a fresh Client, wait for every result, close; collect both sides' requests."""
    recorder = RequestRecorder()
    start = time.time()
    client = stack.client()
    recorder.attach(client.sqs)
    recorder.attach(client.s3)
    try:
        job_ids = submit(client)
        results = list(client.wait(job_ids, timeout=timeout))
        failed = [r for r in results if not r.ok
                  and not (cancelled_ok and r.error_code == "cancelled")]
        if failed:
            raise RuntimeError(f"{label}: {len(failed)} job(s) failed, e.g. "
                               f"{failed[0].error_code}: {failed[0].error_message}")
        if after_wait is not None:
            after_wait(client, results)
    finally:
        client.close()
    wait_until_acknowledged(stack)
    time.sleep(0.3)  # the worker logs its last delete when the response is back
    end = time.time()
    worker = [r for r in read_request_log(worker_log) if start <= r.ended <= end]
    return Run(label, jobs, recorder.requests, worker)


def stats_run(stack: Any, worker_log: Path, jobs: int, rng: random.Random) -> Run:
    batch = [("stats", stats_args(rng)) for _ in range(jobs)]
    label = f"{jobs} `stats` job" + ("s" if jobs > 1 else "")
    return measure_run(stack, worker_log, label, jobs, lambda client: client.submit(batch))


def cancel_run(stack: Any, worker_log: Path, jobs: int, rng: random.Random) -> Run:
    batch = [("stats", stats_args(rng)) for _ in range(jobs)]

    def submit(client: Any) -> list[str]:
        job_ids = client.submit(batch)
        lifecycle.request_cancel(client, job_ids[-1:])
        return job_ids

    return measure_run(stack, worker_log, f"{jobs} `stats` jobs, a cancel of one in flight",
                       jobs, submit, cancelled_ok=True)


def equalize_run(stack: Any, worker_log: Path, images: list[Path], out_dir: Path) -> Run:
    def download(client: Any, results: list[Any]) -> None:
        for result in results:
            key = result.value["output_key"]
            client.download_output(key, out_dir / key.replace("/", "_"))

    label = f"{len(images)} `equalize` jobs, 256×256 JPEG, outputs downloaded"
    return measure_run(stack, worker_log, label, len(images),
                       lambda client: client.submit_files("equalize", images), download)


def measure(stack: Any, *, quick: bool, idle_seconds: float) -> Report:
    rng = random.Random(5)
    with tempfile.TemporaryDirectory(prefix="wqw-bench-requests-") as tmp:
        tmp_dir = Path(tmp)
        worker_log = tmp_dir / "worker-requests.jsonl"
        images = [make_photo(tmp_dir / f"small-{i}.jpg", 256, 256, seed=i)
                  for i in range(2 if quick else 10)]
        worker = WorkerProcess(stack, request_log=worker_log)
        try:
            window = idle_window(idle_seconds)
            runs = [stats_run(stack, worker_log, 1, rng),
                    stats_run(stack, worker_log, 10 if quick else 100, rng),
                    cancel_run(stack, worker_log, 10 if quick else 100, rng),
                    equalize_run(stack, worker_log, images, tmp_dir)]
            # The last poll of the window was answered by the first run's job at the latest.
            idle = idle_receives(worker_log, window)
        finally:
            worker.stop()
    sqs = [r for run in runs for r in run.client + run.worker if r.service == "sqs"]
    return Report(runs, idle, max(r.payload_bytes for r in sqs), cancelled=runs[2])


# ---- the tables --------------------------------------------------------------------------

def breakdown(requests: list[Request]) -> str:
    counts = Counter(f"{r.service}:{r.operation}" for r in requests)
    return ", ".join(f"{name} ×{n}" for name, n in sorted(counts.items()))


def render(report: Report) -> str:
    rows: list[list[Any]] = []
    for run in report.runs:
        client = Charges.of(run.client).sqs_requests
        worker = Charges.of(run.worker).sqs_requests
        per_job = run.per_job()
        rows.append([run.label, run.jobs, client, worker, f"{per_job['sqs']:.2f}",
                     f"{per_job['s3_put']:.2f}", f"{per_job['s3_get']:.2f}",
                     f"{per_job['dollars_per_million']:.2f}"])
    rows.append(["floor: batches of 10 both ways, no per-run set-up (computed)", "", "", "",
                 f"{FLOOR_SQS_PER_JOB:.2f}", "0", "0",
                 f"{dollars_per_million_jobs(FLOOR_SQS_PER_JOB):.2f}"])
    rows.append(["Celery + SQS broker, 100 tasks (quoted in issue 5, not measured)", 100, "", "",
                 "2.22", "", "", f"{dollars_per_million_jobs(2.22):.2f} (SQS only)"])
    requests_table = markdown_table(
        ["run", "jobs", "SQS client", "SQS worker", "SQS req/job", "S3 PUT/job", "S3 GET/job",
         "$ per million jobs"], rows)

    idle = report.idle
    rate = idle.per_minute()
    idle_rows = [
        [f"our worker, idle {idle.window_s:.0f} s (measured)", len(idle.receives),
         sum(r.messages for r in idle.receives),
         "n/a (window under two polls)" if rate is None else f"{rate:.2f}"],
        ["Celery worker + SQS broker (quoted, not measured)", "", "", "5.3"],
        ["the original prototype (quoted, not measured)", "", "", "≈ 21,600 (≈ 360/s)"],
    ]
    idle_table = markdown_table(
        ["idle worker", "receive requests", "messages received", "receives per minute"],
        idle_rows)

    breakdown_table = markdown_table(
        ["run", "client requests", "worker requests"],
        [[run.label, breakdown(run.client), breakdown(run.worker)] for run in report.runs])

    billed_note = ("every SQS payload was under 64 KiB, so each request is billed as one"
                   if report.largest_sqs_payload <= SQS_BILLING_CHUNK else
                   f"largest SQS payload {report.largest_sqs_payload} bytes: billed in 64 KiB "
                   f"chunks in the $ column")
    return "\n\n".join([
        "### Requests and request charges per job", requests_table,
        f"({billed_note}; the worker's idle long poll that delivered the first job is counted.)",
        "### Idle worker", idle_table,
        "(receive requests the worker started within the window; receives per minute from the "
        "mean interval between consecutive ones; long poll 20 s.)",
        "### Requests by operation", breakdown_table,
        "### Targets", "\n".join(targets(report)),
    ])


def targets(report: Report) -> list[str]:
    batch = max(report.runs[:2], key=lambda run: run.jobs)
    per_job = batch.per_job()
    rate = report.idle.per_minute()
    lines = [
        _verdict(f"SQS requests per job, {batch.label}", per_job["sqs"], TARGET_SQS_PER_JOB),
        _verdict(f"$ per million jobs, {batch.label}", per_job["dollars_per_million"],
                 TARGET_DOLLARS_PER_MILLION),
    ]
    if rate is None:
        lines.append(f"- idle receives per minute: not measured (window "
                     f"{report.idle.window_s:g} s; needs > 20 s)")
    else:
        lines.append(_verdict("idle receive requests per minute", rate,
                              TARGET_IDLE_RECEIVES_PER_MINUTE))
    return lines + lifecycle_targets(report, batch)


def lifecycle_targets(report: Report, batch: Run) -> list[str]:
    """What running words and cancels add: nothing to a job nobody cancels (issue 18)."""
    per_job = batch.per_job()
    requests = per_job["sqs"] + per_job["s3_put"] + per_job["s3_get"]
    lines = [_verdict(f"SQS + S3 requests per job that is not cancelled, {batch.label}",
                      requests, TARGET_REQUESTS_PER_JOB) if batch.jobs >= 100 else
             "- SQS + S3 requests per job that is not cancelled: judged on a batch of 100 only"]
    if report.cancelled is not None:
        extra = _requests(report.cancelled) - _requests(batch)
        lines.append(f"- a cancel in flight: {extra:+d} requests for the whole batch "
                     f"({extra / report.cancelled.jobs:+.2f} per job of it)")
    return lines


def _requests(run: Run) -> int:
    charges = run.charges
    return charges.sqs_requests + charges.s3_put + charges.s3_get


def _verdict(what: str, value: float, limit: float) -> str:
    state = "met" if value <= limit else f"MISSED by {value / limit:.2f}×"
    return f"- {what}: {value:.2f} (target ≤ {limit:g}): {state}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="10 stats jobs instead of 100, 2 images, idle window 3 s")
    parser.add_argument("--idle-seconds", type=float, default=None,
                        help="idle window (default: 65, quick: 3)")
    args = parser.parse_args(argv)
    idle_seconds = args.idle_seconds or (3.0 if args.quick else 65.0)
    quiet_emulator()
    print(f"starting the local stack ({machine_line()}) ...", file=sys.stderr)
    with local_stack("bench-requests") as stack:
        report = measure(stack, quick=args.quick, idle_seconds=idle_seconds)
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
