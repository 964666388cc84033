"""Helpers of the reliability suite: fault plans, worker processes, tracked clients, figures."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from skimage import exposure, util

from client import api
from client.local import LocalStack, terminate
from client.worker_process import WORKER_COMMAND
from worker_src import wire, wire_lifecycle
from worker_src.contract import Env

ROOT = Path(__file__).resolve().parents[2]
FAULTY_WORKER = [sys.executable, "-m", "tests.reliability.faulty_worker"]
REAL_WORKER = list(WORKER_COMMAND)
STACK_NAME = "wqw-reliability"  # the one local stack of the package (conftest.py)
VISIBILITY_TIMEOUT = 4  # seconds; the stack's queue and the workers' heartbeat use it

# The table's rows, in this order; docs/reliability.md describes each.
SCENARIOS = (
    "worker killed mid-job",
    "duplicate delivery",
    "graceful stop",
    "long jobs",
    "transient failures",
    "concurrency",
    "bad input",
    "client-side faults",
)
COLUMNS = ("runs", "jobs", "lost", "misrouted", "duplicated", "worker crashes", "faults injected")
# The hostile-input table (docs/reliability.md): its rows and columns.
HOSTILE_ROWS = ("fuzzer: generated and mutated messages (in-memory loop)",
                "hostile messages, one batch with good jobs", "over a limit in the work horse")
HOSTILE_COLUMNS = ("inputs tried", "answered", "dead-lettered", "lost", "workers stalled")


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll `predicate` until it returns something true or `timeout` passes (then its value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class Recorder:
    """Per-scenario figures of the suite; written as a markdown table."""

    def __init__(self) -> None:
        self.rows: dict[str, Counter] = {}
        self.hostile_rows: dict[str, Counter] = {}
        self.notes: list[str] = []

    def add_hostile(self, row: str, counts: dict[str, int]) -> None:
        """Figures of the hostile-input table, by HOSTILE_COLUMNS name."""
        if row not in HOSTILE_ROWS:
            raise ValueError(f"unknown hostile-input row {row!r}")
        if not set(counts) <= set(HOSTILE_COLUMNS):
            raise ValueError(f"unknown column(s) {sorted(set(counts) - set(HOSTILE_COLUMNS))}")
        self.hostile_rows.setdefault(row, Counter()).update(counts)

    def add(self, scenario: str, *, runs: int = 1, jobs: int = 0, lost: int = 0,
            misrouted: int = 0, duplicated: int = 0, crashes: int = 0, faults: int = 0) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}")
        row = self.rows.setdefault(scenario, Counter())
        row.update({"runs": runs, "jobs": jobs, "lost": lost, "misrouted": misrouted,
                    "duplicated": duplicated, "worker crashes": crashes,
                    "faults injected": faults})

    def note(self, text: str) -> None:
        self.notes.append(text)

    def markdown(self) -> str:
        lines = ["| scenario | " + " | ".join(COLUMNS) + " |",
                 "| --- |" + " ---: |" * len(COLUMNS)]
        total: Counter = Counter()
        for scenario in SCENARIOS:
            if scenario in self.rows:
                row = self.rows[scenario]
                total.update(row)
                lines.append(f"| {scenario} | " + " | ".join(str(row[c]) for c in COLUMNS)
                             + " |")
        lines.append("| **all** | " + " | ".join(f"**{total[c]}**" for c in COLUMNS) + " |")
        text = "\n".join(lines) + "\n"
        if self.hostile_rows:
            text += "\nHostile input:\n\n" + markdown_rows(
                self.hostile_rows, HOSTILE_ROWS, HOSTILE_COLUMNS, "hostile input")
        if self.notes:
            text += "\nMeasured in this run:\n\n" + "".join(f"- {n}\n" for n in self.notes)
        return text

    def write(self, path: Path) -> None:
        Path(path).write_text(self.markdown(), encoding="utf-8")


def markdown_rows(rows: dict[str, Counter], order: tuple[str, ...], columns: tuple[str, ...],
                  first: str) -> str:
    """A markdown table of counters: one row per name in `order` present, and a total."""
    lines = [f"| {first} | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    total: Counter = Counter()
    for name in order:
        if name in rows:
            total.update(rows[name])
            lines.append(f"| {name} | " + " | ".join(str(rows[name][c]) for c in columns) + " |")
    lines.append("| **all** | " + " | ".join(f"**{total[c]}**" for c in columns) + " |")
    return "\n".join(lines) + "\n"


class Faults:
    """A fault plan, the claims on its budgets and the event log, shared by faulty workers."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.plan = directory / "plan.json"
        self.state = directory / "state"
        self.events_path = directory / "events.jsonl"
        self.state.mkdir(exist_ok=True)
        self.set([])

    def env(self) -> dict[str, str]:
        return {"WQW_FAULT_PLAN": str(self.plan), "WQW_FAULT_STATE": str(self.state),
                "WQW_FAULT_EVENTS": str(self.events_path)}

    def set(self, rules: list[dict[str, Any]]) -> None:
        """Replace the plan; running workers pick it up at their next step."""
        ids = [rule["id"] for rule in rules]
        if len(ids) != len(set(ids)):
            raise ValueError("rule ids must be unique")
        temporary = self.plan.with_suffix(".tmp")
        temporary.write_text(json.dumps({"rules": rules}))
        os.replace(temporary, self.plan)

    def events(self, event: str | None = None, **match: Any) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        rows = [json.loads(line) for line in self.events_path.read_text().splitlines() if line]
        return [r for r in rows if (event is None or r["event"] == event)
                and all(r.get(k) == v for k, v in match.items())]

    def injected(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Faults that were applied (delays are not faults)."""
        return [e for e in self.events("fault") if e["action"] != "delay" and e["t"] >= since]

    def starts(self, job: str) -> list[dict[str, Any]]:
        return self.events("start", job=job)


# A long poll cut short by SIGTERM stays open in the emulator until its wait ends, and takes
# (for nobody) a message that arrives meanwhile. Test workers poll briefly, so one stopped
# while idle cannot take the next test's first message.
TEST_WORKER_ENV = {"WQW_WAIT_SECONDS": "1"}


def spawn_worker(stack: LocalStack, log: Path, env: dict[str, str] | None = None,
                 command: list[str] | None = None) -> subprocess.Popen:
    """An unsupervised worker process (tests signal it and read its exit code)."""
    env = {**TEST_WORKER_ENV, Env.READY_FILE: str(log.with_suffix(".ready")), **(env or {})}
    with open(log, "ab") as output:
        process = stack.worker_process(command or FAULTY_WORKER, env, output)
    process.ready_file = Path(env[Env.READY_FILE])  # type: ignore[attr-defined]
    return process


def stop_process(*processes: subprocess.Popen | None, timeout: float = 30) -> list[int]:
    """SIGTERM the processes still running, wait for them; their exit codes.

    A worker is signalled only once it has started (or after `timeout`): one still
    importing dies of the signal (-15) before its handler exists, which would pass
    for a crash. Its handlers are installed before it writes its ready file.
    """
    running = [p for p in processes if p is not None and p.poll() is None]
    wait_until(lambda: all(started(p) for p in running), timeout)
    terminate(running, timeout)
    if running:
        time.sleep(float(TEST_WORKER_ENV["WQW_WAIT_SECONDS"]) + 0.2)  # their last polls end
    return [p.returncode for p in processes if p is not None]


def started(process: subprocess.Popen) -> bool:
    """True once a spawned worker polls (or has exited, or was not spawned by spawn_worker)."""
    ready = getattr(process, "ready_file", None)
    return ready is None or ready.exists() or process.poll() is not None


def stop_workers(stack: LocalStack) -> list[int]:
    """Stop the stack's supervised workers and let their last long polls end."""
    codes = stack.stop_workers()
    time.sleep(float(TEST_WORKER_ENV["WQW_WAIT_SECONDS"]) + 0.2)
    return codes


@dataclass
class Outcome:
    """What a client got for the jobs it waited on."""

    results: dict[str, wire.Result] = field(default_factory=dict)
    yielded: Counter = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)

    @property
    def duplicated(self) -> int:
        return sum(n - 1 for n in self.yielded.values() if n > 1)


class TrackedClient:
    """A Client that also counts every raw result its reply queue delivers."""

    def __init__(self, client: api.Client) -> None:
        self.client = client
        self.submitted: set[str] = set()
        self.deliveries: Counter = Counter()
        self.raw: dict[str, list[str]] = {}  # job id -> every result body delivered
        client.sqs.meta.events.register("after-call.sqs.ReceiveMessage", self._seen)

    def _seen(self, parsed: dict[str, Any], **_kwargs: Any) -> None:
        for message in parsed.get("Messages", []):
            if wire_lifecycle.message_type(message["Body"]) is not None:
                continue  # a long job's running word, not a result (docs/cancel.md)
            try:
                job = json.loads(message["Body"]).get("job_id")
            except (ValueError, AttributeError):
                job = "<not a result>"
            self.deliveries[job] += 1
            self.raw.setdefault(job, []).append(message["Body"])

    @property
    def misrouted(self) -> int:
        return sum(n for job, n in self.deliveries.items() if job not in self.submitted)

    def submit(self, jobs: Iterable[tuple[str, dict[str, Any]]], **kwargs: Any) -> list[str]:
        ids = self.client.submit(jobs, **kwargs)
        self.submitted.update(ids)
        return ids

    def submit_files(self, kind: str, images: list[Path]) -> list[str]:
        ids = self.client.submit_files(kind, images)
        self.submitted.update(ids)
        return ids

    def collect(self, job_ids: Iterable[str], timeout: float) -> Outcome:
        outcome = Outcome()
        try:
            for result in self.client.wait(list(job_ids), timeout):
                outcome.yielded[result.job_id] += 1
                outcome.results[result.job_id] = result
        except api.WaitTimeout as exc:
            outcome.lost = list(exc.missing)
        return outcome

    def close(self) -> None:
        self.client.close()


def queue_depth(stack: LocalStack, url: str) -> int:
    sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(v) for v in attributes.values())


def drain(stack: LocalStack, timeout: float = 3 * VISIBILITY_TIMEOUT,
          queue_output: str = "RequestQueueUrl") -> int:
    """Delete every message of a queue (the request queue unless another stack output names
    it), waiting out in-flight ones; the count.

    (PurgeQueue would do, but SQS and the emulator allow it once a minute.)
    """
    sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
    queue = stack.outputs[queue_output]
    deleted = 0
    deadline = time.monotonic() + timeout
    while queue_depth(stack, queue) and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=1).get("Messages", []):
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            deleted += 1
    return deleted


def dead_letters(stack: LocalStack) -> list[dict[str, Any]]:
    """Every message in the dead-letter queue (they become visible again shortly after)."""
    sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
    found: dict[str, dict[str, Any]] = {}
    for _ in range(10):
        messages = sqs.receive_message(
            QueueUrl=stack.outputs["DeadLetterQueueUrl"], MaxNumberOfMessages=10,
            MessageAttributeNames=["All"], VisibilityTimeout=1).get("Messages", [])
        if not messages:
            break
        for message in messages:
            found[message["MessageId"]] = message
    return list(found.values())


def reply_queues(stack: LocalStack) -> list[str]:
    sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
    return sqs.list_queues(QueueNamePrefix=stack.outputs["ReplyQueuePrefix"]).get(
        "QueueUrls", [])


# ---- images -------------------------------------------------------------------------

def low_contrast(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pixels = rng.normal(120, 12, shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_png(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def equalized(pixels: np.ndarray) -> np.ndarray:
    """The contract's reference: skimage's equalize_hist, as img_as_ubyte converts it."""
    return util.img_as_ubyte(exposure.equalize_hist(pixels))


def output_pixels(stack: LocalStack, key: str) -> np.ndarray:
    s3 = stack.session().client("s3", endpoint_url=stack.endpoint_url)
    body = s3.get_object(Bucket=stack.outputs["BucketName"], Key=key)["Body"].read()
    return np.asarray(Image.open(io.BytesIO(body)))


def equalize_input(client: TrackedClient, folder: Path, shape: tuple[int, ...], seed: int,
                   job_id: str | None = None) -> tuple[str, dict[str, str], np.ndarray]:
    """A low-contrast PNG uploaded for a job: the job id (new unless given), the equalize
    arguments that name it, and its pixels."""
    job_id = job_id or wire.new_job_id()
    pixels = low_contrast(shape, seed)
    path = write_png(folder / f"{job_id}.png", pixels)
    return job_id, {"image": client.client.upload(job_id, path.name, path)}, pixels


def is_equalized(stack: LocalStack, key: str, pixels: np.ndarray) -> bool:
    """Whether the output at `key` is the reference equalization of `pixels`."""
    return np.array_equal(output_pixels(stack, key), equalized(pixels))
