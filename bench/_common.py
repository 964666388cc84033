"""Shared by the queue benchmarks: the local stack, real worker processes, request counting.

Everything talks to the emulator on 127.0.0.1 only (client.local.LocalStack binds there and the
workers get AWS_ENDPOINT_URL pointing at it).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from client.worker_process import WORKER_COMMAND

ROOT = Path(__file__).resolve().parent.parent

# Request charges (us-east-1 list prices): SQS standard queue, S3 Standard.
SQS_PRICE = 0.40 / 1e6
S3_PUT_PRICE = 5.00 / 1e6  # PUT, COPY, POST, LIST
S3_GET_PRICE = 0.40 / 1e6  # GET, HEAD, SELECT and every other request but DELETE
S3_PUT_TIER = {"PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart",
               "UploadPartCopy", "CompleteMultipartUpload", "ListObjects", "ListObjectsV2",
               "ListObjectVersions", "ListMultipartUploads", "ListParts", "PostObject"}
S3_FREE = {"DeleteObject", "DeleteObjects", "AbortMultipartUpload"}
# SQS bills each started 64 KiB of a request's payload as one request.
SQS_BILLING_CHUNK = 64 * 1024

REQUEST_LOG_ENV = "WQW_BENCH_REQUEST_LOG"


# ---- counting requests ----------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """One HTTP request an AWS client sent (a retry is a request of its own)."""

    started: float  # time.time() at send
    ended: float  # time.time() when the response (or error) came back
    service: str  # "sqs", "s3", ...
    operation: str  # "ReceiveMessage", ...
    payload_bytes: int  # the larger of request and response body
    messages: int  # messages a ReceiveMessage returned; 0 otherwise

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, line: str) -> Request:
        return cls(**json.loads(line))


class RequestRecorder:
    """Records every request of the clients attached to it (botocore event hooks)."""

    def __init__(self, sink: Any = None) -> None:
        self.requests: list[Request] = []
        self._sink = sink  # a text file that gets one JSON line per request, or None
        self._lock = threading.Lock()
        self._local = threading.local()

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-send", self._before_send)
        client.meta.events.register("response-received", self._response_received)
        return client

    def _before_send(self, request: Any, **_kwargs: Any) -> None:
        body = request.body
        size = len(body) if isinstance(body, bytes | str) else 0
        self._local.sent = (time.time(), size)

    def _response_received(self, event_name: str, parsed_response: Any = None,
                           response_dict: Any = None, **_kwargs: Any) -> None:
        started, sent_bytes = getattr(self._local, "sent", (time.time(), 0))
        _, service, operation = event_name.split(".", 2)
        body = (response_dict or {}).get("body")
        received_bytes = len(body) if isinstance(body, bytes) else 0
        messages = len((parsed_response or {}).get("Messages", [])) if (
            operation == "ReceiveMessage") else 0
        record = Request(started, time.time(), service, operation,
                         max(sent_bytes, received_bytes), messages)
        with self._lock:
            self.requests.append(record)
            if self._sink is not None:
                self._sink.write(record.to_json() + "\n")
                self._sink.flush()

    def between(self, start: float, end: float) -> list[Request]:
        """Requests that came back within [start, end]."""
        with self._lock:
            return [r for r in self.requests if start <= r.ended <= end]


def read_request_log(path: Path) -> list[Request]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Request.from_json(line) for line in lines if line.strip()]


@dataclass(frozen=True)
class Charges:
    sqs_requests: int  # requests sent
    sqs_billed: int  # requests as billed (64 KiB chunks)
    s3_put: int
    s3_get: int

    @classmethod
    def of(cls, requests: list[Request]) -> Charges:
        sqs = [r for r in requests if r.service == "sqs"]
        s3 = [r for r in requests if r.service == "s3"]
        return cls(
            sqs_requests=len(sqs),
            sqs_billed=sum(max(1, math.ceil(r.payload_bytes / SQS_BILLING_CHUNK)) for r in sqs),
            s3_put=sum(1 for r in s3 if r.operation in S3_PUT_TIER),
            s3_get=sum(1 for r in s3 if r.operation not in S3_PUT_TIER | S3_FREE),
        )

    def dollars(self) -> float:
        return (self.sqs_billed * SQS_PRICE + self.s3_put * S3_PUT_PRICE
                + self.s3_get * S3_GET_PRICE)


def dollars_per_million_jobs(sqs_per_job: float, s3_put_per_job: float = 0.0,
                             s3_get_per_job: float = 0.0) -> float:
    return 1e6 * (sqs_per_job * SQS_PRICE + s3_put_per_job * S3_PUT_PRICE
                  + s3_get_per_job * S3_GET_PRICE)


# ---- the local stack and real worker processes ----------------------------------------------

@contextmanager
def local_stack(stack_name: str, context: dict[str, str] | None = None) -> Iterator[Any]:
    """The CDK template deployed into moto on 127.0.0.1, with no workers (WorkerProcess adds)."""
    from client.local import LocalStack

    stack = LocalStack(stack_name=stack_name, port=0, workers=0, context=context)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


class WorkerProcess:
    """`python -m worker_src` (or the counting wrapper around the same main()) on the stack."""

    def __init__(self, stack: Any, request_log: Path | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="wqw-bench-worker-")
        ready = Path(self._dir.name) / "ready"
        env = {"WQW_READY_FILE": str(ready)}
        command = WORKER_COMMAND
        if request_log is not None:
            env[REQUEST_LOG_ENV] = str(request_log)
            command = (sys.executable, "-m", "bench._counted_worker")
        self.log_path = Path(self._dir.name) / "worker.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = stack.worker_process(command, env, self._log)
        deadline = time.monotonic() + 60
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the worker did not start:\n" + self.log_tail())
            time.sleep(0.05)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        # SIGKILL: the benchmarks read nothing from a worker at exit, and a SIGTERM during an idle
        # long poll can take up to the full poll (20 s) to end the process.
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()
        self._dir.cleanup()


@contextmanager
def workers(stack: Any, count: int) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    try:
        for _ in range(count):
            started.append(WorkerProcess(stack))
        yield started
    finally:
        for worker in started:
            worker.stop()


def wait_until_acknowledged(stack: Any, timeout: float = 30.0) -> None:
    """Wait until the request queue holds no message (every job deleted by its worker)."""
    sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(QueueUrl=stack.outputs["RequestQueueUrl"],
                                              AttributeNames=names)["Attributes"]
        if all(attributes[name] == "0" for name in names):
            return
        time.sleep(0.05)
    raise RuntimeError(f"jobs still in the request queue after {timeout:g} s")


# ---- jobs and images ---------------------------------------------------------------------------

class DiskFile:
    """A registry.JobFile over a local file (the worker's S3File, without S3); counts opens."""

    def __init__(self, path: Path) -> None:
        self.path, self.name, self.key = path, path.name, f"inputs/bench/{path.name}"
        self.size = path.stat().st_size
        self.opened = 0

    def open(self) -> BinaryIO:
        self.opened += 1
        return open(self.path, "rb")  # noqa: SIM115 - the caller closes it

    def read(self) -> bytes:
        return self.path.read_bytes()

    def close(self) -> None:
        return None


def run_in_process(kind_name: str, args: dict[str, Any], files: dict[str, Path],
                   executor: Any = None) -> Any:
    """A kind's function in this process, as the executor calls it (arguments checked, the
    executor's limits) but without the work horse, whose CPU time is not this process's: the
    kind's Output. Pass an `executor` made before a clock starts (making one imports every kind).
    """
    from worker_src.executor import Executor
    from worker_src.registry import JobContext
    from worker_src.store import MemoryStore

    executor = executor or Executor(MemoryStore(), identity="bench")
    kind = executor.find_kind(kind_name)
    opened = {name: DiskFile(path) for name, path in files.items()}
    checked = kind.check_args({**args, **{name: file.name for name, file in opened.items()}})
    plain = {name: value for name, value in checked.items() if name not in opened}
    return executor.compute(kind, JobContext(plain, opened, executor.limits(kind)))


def stats_args(rng: random.Random, count: int = 100) -> dict[str, Any]:
    return {"numbers": [rng.randint(-10**6, 10**6) for _ in range(count)]}


def make_photo(path: Path, width: int, height: int, seed: int) -> Path:
    """A photo-like RGB JPEG (q90): smooth low-contrast gradients plus noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6.28, size=3)
    channels = [90 + 30 * np.sin(x / (width / (2 + i)) + phase[i])
                + 20 * np.cos(y / (height / (1.5 + i))) for i in range(3)]
    pixels = np.stack(channels, axis=-1) + rng.normal(0, 6, size=(height, width, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    image.save(path, "JPEG", quality=90)
    return path


def peak_rss_kib(pid: int | str = "self") -> int | None:
    """A process's peak resident memory (VmHWM, Linux /proc) in KiB; None where unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


# ---- numbers and tables --------------------------------------------------------------------------

def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction 0.5 = p50, 0.95 = p95)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in cells]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def machine_line() -> str:
    import platform

    return (f"{platform.node() or 'host'}: {os.cpu_count()} CPU(s), Python "
            f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}")


def quiet_emulator() -> None:
    """moto prints one line per resource type its CloudFormation skips; keep stderr readable."""
    import logging

    logging.getLogger("moto").setLevel(logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
