"""Latency: one `stats` job's round trip on the local stack, beside the same SQS calls timed bare.

    .venv/bin/python -m bench.latency            # full run: 200 jobs (about 40 s)
    .venv/bin/python -m bench.latency --quick    # smoke run: 20 jobs

The local stack (the CDK template deployed into moto on 127.0.0.1) and one real worker process
(`python -m worker_src`, idle in its 20 s long poll between jobs). A round trip is
Client.submit() of one job plus Client.wait() for its result, one job at a time, with a Client
that has already created its reply queue (what the CLI does per job after its set-up).

The floor is the same SQS calls on the same emulator with nothing else in between, timed in one
thread on two queues of their own: send_message_batch (1 job) to a request queue, receive it,
send_message_batch (1 result) to a reply queue, receive that, delete_message_batch on both.
This sequential floor is what the target is measured against. In the real system some of
those calls overlap (the worker's receive is already waiting when the job is sent, and its
delete runs while the client receives), so a second, pipelined floor is shown too: a bare
echo loop in a process of its own (receive, send_message_batch the reply, delete_message_batch,
no job code) answers the bench's send_message_batch; the bench long-polls the reply and deletes
it. Job and floor rounds alternate, so machine noise hits all alike. Every queue holds at most
one message (shallow).
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench._common import (
    ROOT,
    local_stack,
    machine_line,
    markdown_table,
    percentile,
    quiet_emulator,
    stats_args,
    workers,
)
from worker_src import wire

TARGET_RATIO = 3.0
ECHO_STOP = "stop"
FLOOR_CALLS = ("send job", "receive job", "send result", "receive result", "delete job",
               "delete result")


@dataclass(frozen=True)
class Latency:
    jobs: list[float]  # seconds per round trip
    floor: list[float]  # seconds per bare round of SQS calls, one after another
    pipelined: list[float]  # seconds per round through the bare echo process
    floor_calls: dict[str, list[float]]  # seconds per call, by FLOOR_CALLS name
    worker_run: list[float]  # the worker's own run_s per job

    def ratio(self, fraction: float, floor: list[float] | None = None) -> float:
        return percentile(self.jobs, fraction) / percentile(floor or self.floor, fraction)


class Floor:
    """The bare SQS calls of one job, on queues no worker reads."""

    def __init__(self, stack: Any) -> None:
        self.endpoint_url = stack.endpoint_url
        self.environment = stack.worker_environment()
        self.sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
        suffix = uuid.uuid4().hex[:8]
        self.urls = {name: self.sqs.create_queue(QueueName=f"bench-floor-{name}-{suffix}")[
            "QueueUrl"] for name in ("requests", "replies", "echo-requests", "echo-replies")}
        self.echo = subprocess.Popen(
            [sys.executable, "-m", "bench.latency", "--echo", self.endpoint_url,
             self.urls["echo-requests"], self.urls["echo-replies"]],
            cwd=ROOT, env=self.environment, stdin=subprocess.DEVNULL)

    def round(self, job_body: str, result_body: str) -> tuple[float, list[float]]:
        """The six calls one after another; the total and each call's time."""
        times = []

        def timed(function: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            response = function(**kwargs)
            times.append(time.perf_counter() - started)
            return response

        started = time.perf_counter()
        timed(self.sqs.send_message_batch, QueueUrl=self.urls["requests"],
              Entries=[{"Id": "0", "MessageBody": job_body}])
        [job] = timed(self.sqs.receive_message, QueueUrl=self.urls["requests"],
                      MaxNumberOfMessages=10, WaitTimeSeconds=20,
                      MessageSystemAttributeNames=["ApproximateReceiveCount"])["Messages"]
        timed(self.sqs.send_message_batch, QueueUrl=self.urls["replies"],
              Entries=[{"Id": "0", "MessageBody": result_body}])
        [reply] = timed(self.sqs.receive_message, QueueUrl=self.urls["replies"],
                        MaxNumberOfMessages=10, WaitTimeSeconds=20)["Messages"]
        timed(self.sqs.delete_message_batch, QueueUrl=self.urls["requests"],
              Entries=[{"Id": "0", "ReceiptHandle": job["ReceiptHandle"]}])
        timed(self.sqs.delete_message_batch, QueueUrl=self.urls["replies"],
              Entries=[{"Id": "0", "ReceiptHandle": reply["ReceiptHandle"]}])
        return time.perf_counter() - started, times

    def pipelined_round(self, job_body: str) -> float:
        """Send to the echo process, long-poll its reply, delete it."""
        started = time.perf_counter()
        self.sqs.send_message_batch(QueueUrl=self.urls["echo-requests"],
                                    Entries=[{"Id": "0", "MessageBody": job_body}])
        messages: list[dict[str, Any]] = []
        for _ in range(3):  # bounded: an empty 20 s poll means the echo process is gone
            messages = self.sqs.receive_message(QueueUrl=self.urls["echo-replies"],
                                                MaxNumberOfMessages=10,
                                                WaitTimeSeconds=20).get("Messages", [])
            if messages:
                break
        if not messages:
            raise RuntimeError("the echo process did not answer")
        self.sqs.delete_message_batch(
            QueueUrl=self.urls["echo-replies"],
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                     for i, m in enumerate(messages)])
        return time.perf_counter() - started

    def close(self) -> None:
        self.sqs.send_message(QueueUrl=self.urls["echo-requests"], MessageBody=ECHO_STOP)
        try:
            self.echo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.echo.kill()
            self.echo.wait()
        for url in self.urls.values():
            self.sqs.delete_queue(QueueUrl=url)


def echo(endpoint_url: str, requests_url: str, replies_url: str) -> int:
    """The bare worker: answer every message with its own body until ECHO_STOP (or 60 s idle)."""
    import boto3

    sqs = boto3.Session().client("sqs", endpoint_url=endpoint_url)
    idle_polls = 0
    while idle_polls < 3:
        messages = sqs.receive_message(QueueUrl=requests_url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=20).get("Messages", [])
        idle_polls = 0 if messages else idle_polls + 1
        if not messages:
            continue
        entries = [{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(messages)]
        sqs.send_message_batch(QueueUrl=replies_url, Entries=entries)
        sqs.delete_message_batch(QueueUrl=requests_url,
                                 Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                          for i, m in enumerate(messages)])
        if any(m["Body"] == ECHO_STOP for m in messages):
            return 0
    return 0


def measure(stack: Any, *, jobs: int, warmup: int = 10) -> Latency:
    rng = random.Random(3)
    floor = Floor(stack)
    job_times: list[float] = []
    floor_times: list[float] = []
    pipelined: list[float] = []
    floor_calls: dict[str, list[float]] = {name: [] for name in FLOOR_CALLS}
    worker_run: list[float] = []
    try:
        with workers(stack, 1), stack.client() as client:
            for i in range(warmup + jobs):
                args = stats_args(rng)
                started = time.perf_counter()
                [job_id] = client.submit([("stats", args)])
                [result] = list(client.wait([job_id], timeout=60))
                elapsed = time.perf_counter() - started
                if not result.ok:
                    raise RuntimeError(f"job failed: {result.error_code}: {result.error_message}")
                job_body = wire.encode_job(wire.Job(job_id, "stats", args, None, time.time()))
                floor_elapsed, calls = floor.round(job_body, wire.encode_result(result))
                pipelined_elapsed = floor.pipelined_round(job_body)
                if i < warmup:
                    continue
                job_times.append(elapsed)
                worker_run.append(result.timing.get("run_s", 0.0))
                floor_times.append(floor_elapsed)
                pipelined.append(pipelined_elapsed)
                for name, seconds in zip(FLOOR_CALLS, calls, strict=True):
                    floor_calls[name].append(seconds)
    finally:
        floor.close()
    return Latency(job_times, floor_times, pipelined, floor_calls, worker_run)


def render(latency: Latency) -> str:
    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.1f}"

    def row(label: str, values: list[float]) -> list[str]:
        return [label, ms(percentile(values, .5)), ms(percentile(values, .95)),
                f"{latency.ratio(.5, values):.2f}×", f"{latency.ratio(.95, values):.2f}×"]

    n = len(latency.jobs)
    rows = [
        row(f"`stats` job round trip, 1 worker (measured, {n} jobs)", latency.jobs),
        row(f"floor: the same 6 SQS calls bare, one after another (measured, {n} rounds)",
            latency.floor),
        row(f"pipelined floor: bare echo process, no job code (measured, {n} rounds)",
            latency.pipelined),
        ["Celery + SQS broker, DynamoDB result backend, polling 5 ms (quoted, not measured)",
         "16.8", "", "", ""],
        ["Celery + SQS broker, DynamoDB result backend, default polling (quoted)", "517", "",
         "", ""],
        ["Celery + SQS broker, file result backend, one machine only (quoted)", "9.3", "", "",
         ""],
        ["the original prototype, fixed sleep (quoted)", "4260", "", "", ""],
    ]
    table = markdown_table(["round trip", "p50 ms", "p95 ms", "job p50 / this p50",
                            "job p95 / this p95"], rows)
    calls = markdown_table(
        ["floor call", "p50 ms", "p95 ms"],
        [[name, ms(percentile(values, .5)), ms(percentile(values, .95))]
         for name, values in latency.floor_calls.items()]
        + [["(the worker's own run time of the job, from its result)",
            ms(percentile(latency.worker_run, .5)), ms(percentile(latency.worker_run, .95))]])
    ratio = latency.ratio(.5)
    verdict = "met" if ratio <= TARGET_RATIO else f"MISSED by {ratio / TARGET_RATIO:.2f}×"
    return "\n\n".join([
        "### Latency of one `stats` job", table, "### The floor, call by call", calls,
        "### Target",
        f"- p50 round trip / p50 floor: {ratio:.2f} (target ≤ {TARGET_RATIO:g}): {verdict}; "
        f"against the pipelined floor: {latency.ratio(.5, latency.pipelined):.2f}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 jobs instead of 200")
    parser.add_argument("--jobs", type=int, default=None, help="jobs (default: 200, quick: 20)")
    parser.add_argument("--echo", nargs=3, metavar=("ENDPOINT", "REQUESTS", "REPLIES"),
                        help=argparse.SUPPRESS)  # the pipelined floor's echo process
    args = parser.parse_args(argv)
    if args.echo:
        return echo(*args.echo)
    jobs = args.jobs or (20 if args.quick else 200)
    quiet_emulator()
    print(f"starting the local stack ({machine_line()}) ...", file=sys.stderr)
    with local_stack("bench-latency") as stack:
        latency = measure(stack, jobs=jobs)
    print(render(latency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
