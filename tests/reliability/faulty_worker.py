"""TEST ONLY: the real worker (`worker_src.__main__.main`) with faults injected from a plan.

    python -m tests.reliability.faulty_worker      (same environment as `python -m worker_src`)

Nothing here is imported by the worker itself. Faults are injected from outside: botocore
event hooks on every client the worker creates (HTTP-level errors, throttling, dropped
connections, delays, before the SDK's own retries see them), and subclasses of the worker's
override points (Executor.perform/open_files/compute, Worker.heartbeat) for points no AWS call
marks. Reading the inputs, `after_read` and `in_compute` happen inside the work horse (the
worker's child process, which runs each job sent to it): a kill at `in_compute` kills the
work horse, not the worker ("hog" allocates memory there); a kill at any other point kills
the worker (its work horse dies with it), wherever the point fires. The work horse learns the
job's receive count and the batch's from the job it is sent (`TracedJob`).

Environment:
  WQW_FAULT_PLAN    JSON file {"rules": [rule, ...]}, re-read whenever it changes. A rule:
      {"id": "k1",                  unique; its budget is claimed across processes
       "point": "before_read",      where (POINTS below)
       "action": "kill",            kill | delay | error | throttle | drop | raise | hog
       "jobs": ["<job id>", ...],   optional: only these jobs (default: any job)
       "attempt": 1,                optional: only on this receive count of the job
       "times": 1,                  optional: how often in all (default: unlimited)
       "max_batch_receive_count": 2,  optional: only while every message this worker holds
                                      has been received at most this often
       "seconds": 2.0,              delay
       "megabytes": 500,            hog (in_compute only)
       "status": 500, "code": "InternalError"}   error (throttle picks the service's own)
  WQW_FAULT_STATE   directory where rule budgets are claimed (one file per use)
  WQW_FAULT_EVENTS  JSON-lines file: every fault and every step of every job, for the tests
  WQW_FAULT_NO_HEARTBEAT=1   the worker never extends visibility (to force a redelivery race)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError

from worker_src import wire


@dataclass(frozen=True)
class TracedJob(wire.Job):
    """A job as the harness sends it to the work horse: with what the worker's injector knows."""

    receive_count: int | None = None
    batch_max: int = 0

# Where a fault can be injected, in the order a job meets them.
POINTS = (
    "receive_call",    # before-send of ReceiveMessage on the request queue (no job yet)
    "receive",         # ReceiveMessage returned the job
    "before_read",     # before-send of the S3 GetObject of the job's input
    "after_read",      # the input's bytes are read
    "before_compute",  # the job function starts
    "in_compute",      # inside the work horse, before the kind's function runs
    "after_compute",   # the job function returned
    "before_write",    # before-send of the S3 PutObject of the output
    "after_write",     # the output is in S3
    "before_reply",    # before-send of the result (reply queue, or S3 results/)
    "after_reply",     # the result is delivered, the message not yet deleted
    "dead_letter",     # before-send of SendMessage to the dead-letter queue
    "before_delete",   # before-send of DeleteMessageBatch
    "after_delete",    # the message is deleted
    "heartbeat",       # the heartbeat thread extended the visibility of held messages
)
SEND_ACTIONS = ("error", "throttle", "drop")


class _Response:
    """The raw part of a fake HTTP response (what botocore reads the body from)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_kwargs: Any) -> Any:
        yield self._body


class Injector:
    def __init__(self, plan: Path | None, state: Path | None, events: Path | None) -> None:
        self.plan_path, self.state, self.events = plan, state, events
        self.request_queue = os.environ.get("WQW_REQUEST_QUEUE_URL", "")
        self.dead_letter_queue = os.environ.get("WQW_DEAD_LETTER_QUEUE_URL", "")
        self._plan_stamp: int | None = None
        self._rules: list[dict[str, Any]] = []
        self._call = threading.local()  # the API call this thread is making
        self._lock = threading.Lock()
        self._receipts: dict[str, str] = {}  # receipt handle -> job id
        self._counts: dict[str, int] = {}  # job id -> receive count, latest
        self._batch_max = 0  # highest receive count among the messages held now
        self.job = threading.local()  # the job whose function runs in this thread
        self.worker_pid = os.getpid()  # the work horse is a child of it

    @classmethod
    def from_env(cls) -> Injector:
        def path(name: str) -> Path | None:
            return Path(os.environ[name]) if os.environ.get(name) else None
        return cls(path("WQW_FAULT_PLAN"), path("WQW_FAULT_STATE"), path("WQW_FAULT_EVENTS"))

    # ---- the record ---------------------------------------------------------------

    def log(self, event: str, **fields: Any) -> None:
        if self.events is None:
            return
        # "pid": the worker's, also for what happens in its work horse ("in_work_horse").
        where = {"pid": self.worker_pid, "in_work_horse": os.getpid() != self.worker_pid}
        line = json.dumps({"t": time.time(), **where, "event": event, **fields})
        fd = os.open(self.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    # ---- the plan -----------------------------------------------------------------

    def rules(self) -> list[dict[str, Any]]:
        if self.plan_path is None:
            return []
        try:
            stamp = self.plan_path.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        if stamp != self._plan_stamp:
            self._rules = json.loads(self.plan_path.read_text())["rules"]
            self._plan_stamp = stamp
        return self._rules

    def _matches(self, rule: dict[str, Any], point: str, jobs: list[str]) -> str | None:
        """The job `rule` applies to at `point` ("" for a job-less point), or None."""
        if rule["point"] != point:
            return None
        limit = rule.get("max_batch_receive_count")
        if limit is not None and self._batch_max > limit:
            return None
        candidates = jobs or [""]
        for job in candidates:
            if rule.get("jobs") is not None and job not in rule["jobs"]:
                continue
            if rule.get("attempt") is not None and self._counts.get(job) != rule["attempt"]:
                continue
            return job
        return None

    def _claim(self, rule: dict[str, Any]) -> bool:
        """Take one use of the rule's budget, atomically across all worker processes."""
        times = rule.get("times")
        if times is None or self.state is None:
            return True
        for use in range(times):
            try:
                fd = os.open(self.state / f"{rule['id']}.{use}",
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            os.close(fd)
            return True
        return False

    def fire(self, point: str, jobs: list[str], allowed: tuple[str, ...]) -> dict | None:
        """Apply the first rule that matches; return it when the caller must act on it."""
        for rule in self.rules():
            job = self._matches(rule, point, jobs)
            if job is None or rule["action"] not in allowed or not self._claim(rule):
                continue
            action = rule["action"]
            self.log("fault", rule=rule["id"], point=point, action=action, job=job or None,
                     attempt=self._counts.get(job))
            if action == "kill":
                if point != "in_compute":  # the worker dies, wherever the point fires
                    os.kill(self.worker_pid, signal.SIGKILL)
                os.kill(os.getpid(), signal.SIGKILL)
            if action == "delay":
                time.sleep(float(rule.get("seconds", 1)))
                continue
            return rule
        return None

    # ---- botocore hooks -------------------------------------------------------------

    def attach(self, client: Any) -> None:
        events = client.meta.events
        events.register("provide-client-params", self._remember)
        events.register("before-send", self._before_send)
        events.register("after-call", self._after_call)

    def _remember(self, params: dict[str, Any], event_name: str, **_kwargs: Any) -> None:
        _, service, operation = event_name.split(".")
        self._call.current = (service, operation, params)

    def _where(self, phase: str) -> tuple[str | None, list[str]]:
        """Which point of a job this call is, and the jobs it concerns."""
        service, operation, params = getattr(self._call, "current", (None, None, {}))
        if service == "s3" and operation in ("GetObject", "PutObject"):
            key = params.get("Key", "")
            folder, _, rest = key.partition("/")
            job = rest.split("/")[0].removesuffix(".json")
            point = {("GetObject", "inputs"): "read", ("PutObject", "outputs"): "write",
                     ("PutObject", "results"): "reply"}.get((operation, folder))
            return (f"{phase}_{point}" if point else None), [job]
        if service != "sqs":
            return None, []
        queue = params.get("QueueUrl")
        if operation == "ReceiveMessage" and queue == self.request_queue:
            return ("receive_call" if phase == "before" else None), []
        if operation == "SendMessageBatch" and queue not in (self.request_queue,
                                                              self.dead_letter_queue):
            return f"{phase}_reply", [_job_of(e["MessageBody"]) for e in params["Entries"]]
        if operation == "SendMessage" and queue == self.dead_letter_queue:
            return ("dead_letter" if phase == "before" else None), [_job_of(params["MessageBody"])]
        if operation in ("DeleteMessageBatch", "ChangeMessageVisibilityBatch"):
            with self._lock:
                jobs = [self._receipts.get(e["ReceiptHandle"], "") for e in params["Entries"]]
            if operation == "DeleteMessageBatch":
                return f"{phase}_delete", jobs
            beat = (threading.current_thread().name == "heartbeat"
                    and all(e["VisibilityTimeout"] > 0 for e in params["Entries"]))
            return ("heartbeat" if beat and phase == "after" else None), jobs
        return None, []

    def _before_send(self, request: Any, **_kwargs: Any) -> Any:
        point, jobs = self._where("before")
        if point is None:
            return None
        rule = self.fire(point, jobs, ("kill", "delay", *SEND_ACTIONS))
        if rule is None:
            return None
        if rule["action"] == "drop":
            raise ConnectionClosedError(endpoint_url=request.url)
        service = self._call.current[0]
        throttle = rule["action"] == "throttle"
        if service == "s3":
            status = 503 if throttle else rule.get("status", 500)
            code = "SlowDown" if throttle else rule.get("code", "InternalError")
            body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                    f"<Message>injected {code}</Message></Error>").encode()
            headers = {"Content-Type": "application/xml"}
        else:
            status = 400 if throttle else rule.get("status", 500)
            code = "ThrottlingException" if throttle else rule.get("code", "InternalError")
            body = json.dumps({"__type": f"com.amazonaws.sqs#{code}",
                               "message": f"injected {code}"}).encode()
            headers = {"Content-Type": "application/x-amz-json-1.0",
                       "x-amzn-query-error": f"{code};Receiver"}
        return AWSResponse(request.url, status, headers, _Response(body))

    def _after_call(self, parsed: dict[str, Any], **_kwargs: Any) -> None:
        service, operation, params = getattr(self._call, "current", (None, None, {}))
        if (service, operation) == ("sqs", "ReceiveMessage") and parsed.get("Messages"):
            self._received(parsed["Messages"])
            self.fire("receive", [_job_of(m["Body"]) for m in parsed["Messages"]], ("kill",
                                                                                  "delay"))
            return
        point, jobs = self._where("after")
        if point == "after_delete":
            self.log("deleted", jobs=jobs)
        elif point == "after_reply" and "Error" not in parsed:
            self.log("replied", jobs=jobs)
        elif point == "heartbeat":
            self.log("heartbeat", jobs=jobs)
        if point is not None:
            self.fire(point, jobs, ("kill", "delay"))

    def _received(self, messages: list[dict[str, Any]]) -> None:
        jobs, counts = [], []
        with self._lock:
            for message in messages:
                job = _job_of(message["Body"])
                count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
                self._receipts[message["ReceiptHandle"]] = job
                self._counts[job] = count
                jobs.append(job)
                counts.append(count)
            self._batch_max = max(counts)
        self.log("received", jobs=jobs, counts=counts)

    # ---- wrappers around the worker ------------------------------------------------------

    def install(self) -> None:
        """Wrap the one AWS client factory: every client the worker makes is watched."""
        from worker_src import aws

        injector = self
        original = aws.make_client

        def make_client(*args: Any, **kwargs: Any) -> Any:
            made = original(*args, **kwargs)
            injector.attach(made)
            return made

        aws.make_client = make_client

    def classes(self) -> dict[str, type]:
        """The worker's override points, subclassed to log steps and inject faults."""
        from worker_src.executor import Executor
        from worker_src.worker import Worker

        injector = self

        class FaultyExecutor(Executor):
            def execute(self, job: Any, attempt: int) -> Any:
                injector.job.current = job.job_id
                attempt_seen = injector._counts.get(job.job_id)
                injector.log("start", job=job.job_id, attempt=attempt_seen)
                try:
                    return super().execute(job, attempt)
                finally:
                    injector.log("finish", job=job.job_id, attempt=attempt_seen)

            def perform(self, job: Any, kind: Any) -> Any:
                jobs = [job.job_id]
                injector._raise_if(injector.fire("before_compute", jobs,
                                                 ("kill", "delay", "raise")))
                traced = TracedJob(**vars(job), receive_count=injector._counts.get(job.job_id),
                                   batch_max=injector._batch_max)
                computed = super().perform(traced, kind)
                injector._raise_if(injector.fire("after_compute", jobs,
                                                 ("kill", "delay", "raise")))
                return computed

            def in_work_horse(self, job: Any, progress: Any) -> Any:
                injector.job.current = job.job_id  # in the work horse: what the worker knew
                injector._counts[job.job_id] = job.receive_count
                injector._batch_max = job.batch_max
                return super().in_work_horse(job, progress)

            def open_files(self, job: Any, kind: Any, args: Any) -> Any:
                files = super().open_files(job, kind, args)
                injector._raise_if(injector.fire("after_read", [job.job_id],
                                                 ("kill", "delay", "raise")))
                return files

            def compute(self, kind: Any, ctx: Any) -> Any:
                rule = injector.fire("in_compute", [getattr(injector.job, "current", "")],
                                     ("kill", "delay", "raise", "hog"))
                if rule is not None and rule["action"] == "hog":
                    hoard = bytearray(int(rule["megabytes"]) * 1024 * 1024)
                    hoard[::4096] = b"x" * len(hoard[::4096])  # touched: resident
                injector._raise_if(rule if rule is not None and rule["action"] == "raise"
                                   else None)
                return super().compute(kind, ctx)

        class FaultyWorker(Worker):
            def heartbeat(self) -> None:
                if os.environ.get("WQW_FAULT_NO_HEARTBEAT") != "1":
                    super().heartbeat()

            def install_signal_handlers(self) -> None:
                super().install_signal_handlers()
                handler = signal.getsignal(signal.SIGTERM)

                def logged(signum: int, frame: Any) -> None:
                    injector.log("signal", signal=signal.Signals(signum).name)
                    handler(signum, frame)

                signal.signal(signal.SIGTERM, logged)

        return {"worker_class": FaultyWorker, "executor_class": FaultyExecutor}

    @staticmethod
    def _raise_if(rule: dict | None) -> None:
        if rule is not None:
            raise RuntimeError(f"injected failure ({rule['id']})")


def _job_of(body: str) -> str:
    try:  # bounded: a hostile body must not break the harness either
        job = wire.parse_json(body).get("job_id")
    except (ValueError, AttributeError):
        return ""
    return job if isinstance(job, str) else ""


def main() -> int:
    injector = Injector.from_env()
    injector.install()
    injector.log("started")
    from worker_src.__main__ import main as worker_main

    code = worker_main(**injector.classes())
    injector.log("exit", code=code)
    return code


if __name__ == "__main__":
    sys.exit(main())
