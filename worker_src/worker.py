"""The worker loop: receive a batch of jobs, run each, deliver its result, acknowledge.

    receive (long poll, up to 10) -> for each job: run -> result -> flush:
        send results to reply queues (batched) or S3, then delete the messages

A message is deleted only after its result is delivered. A job that can never
succeed (bad input) gets an error result at once. Any other failure leaves the
message to come back after a backoff; on its last allowed receive the client
gets an `internal` error result and the message is moved to the dead-letter
queue. While a message is held, a heartbeat keeps it invisible to other workers.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from . import wire
from .config import WorkerConfig
from .jobs._imaging import DEFAULT_MAX_PIXELS, equalize_image, output_content_type
from .jobs.stats import compute_stats
from .protection import ScaleInProtection

log = logging.getLogger("worker")

# Results wait at most this long for others to share a batched send.
FLUSH_AFTER_SECONDS = 0.2
# A batch holds about this much work: slow jobs are taken a few at a time, so that
# another worker finds the rest in the queue instead of waiting behind this one.
BATCH_SECONDS = 1.0
# Largest input object a worker downloads (the pixel limit is checked separately).
MAX_INPUT_BYTES = 200 * 1024 * 1024


@dataclass
class _Held:
    """A received message the worker has not acknowledged yet."""

    message: dict[str, Any]
    receive_count: int
    state: str = "pending"  # pending -> done -> acked, or pending -> retry
    result: wire.Result | None = None
    reply_to: str | None = None
    dead_letter_reason: str | None = None


@dataclass
class _Stats:
    processed: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    by_code: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Worker:
    def __init__(self, config: WorkerConfig, sqs: Any, s3: Any,
                 protection: ScaleInProtection | None = None) -> None:
        self.config = config
        self.sqs = sqs
        self.s3 = s3
        self.protection = protection or ScaleInProtection(None, None, None)
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.stats = _Stats()
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._job_seconds = 0.0  # moving average of one job's run time
        self._held: list[_Held] = []
        self._held_lock = threading.Lock()

    # ---- lifecycle -------------------------------------------------------

    def run(self) -> None:
        """Process jobs until stop() or a SIGTERM/SIGINT."""
        self._check_queue()
        if self.config.ready_file:
            self.config.ready_file.write_text(self.identity + "\n")
        log.info("worker %s polling %s", self.identity, self.config.request_queue_url)
        heartbeat = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        heartbeat.start()
        try:
            while not self._stopping.is_set():
                try:
                    messages = self._receive()
                except Exception as exc:  # keep receiving whatever happens
                    log.warning("receive failed (%s); retrying in 1 s", _describe(exc))
                    self._stopping.wait(1)
                    continue
                self.protection.set_busy(bool(messages))
                if messages:
                    try:
                        self.process_batch(messages)
                    except Exception:  # unheld messages come back after the visibility timeout
                        log.exception("a batch failed unexpectedly; receiving on")
        finally:
            # The heartbeat outlives a SIGTERM: the job in hand keeps its message until done.
            self._finished.set()
        self.protection.set_busy(False)
        log.info("worker %s stopped: %d jobs processed, errors by code %s, %d failed attempts, "
                 "%d dead-lettered", self.identity, self.stats.processed,
                 dict(self.stats.by_code), self.stats.failed_attempts, self.stats.dead_lettered)

    def stop(self) -> None:
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: finish the job in hand, take no new one; a second one stops at once.

        An idle long poll is left to end by itself (at most wait_seconds): a poll cut
        short may still take messages on the server side, hiding them until their
        visibility timeout. Whatever it returns after the signal is handed back at once.
        """
        def on_signal(signum: int, _frame: Any) -> None:
            if self._stopping.is_set():
                log.warning("%s again: stopping now; held jobs come back after their "
                            "visibility timeout", signal.Signals(signum).name)
                raise SystemExit(1)
            log.info("%s: finishing the job in hand, taking no new ones (a second signal "
                     "stops at once)", signal.Signals(signum).name)
            self._stopping.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _check_queue(self) -> None:
        """Wait until the request queue answers (no crash loop while AWS is unreachable)."""
        delay = 1.0
        while not self._stopping.is_set():
            try:
                self.sqs.get_queue_attributes(QueueUrl=self.config.request_queue_url,
                                              AttributeNames=["QueueArn"])
                return
            except Exception as exc:
                log.warning("request queue not reachable (%s); retrying in %.0f s",
                            _describe(exc), delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 60.0)

    def _receive(self) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.config.request_queue_url,
            MaxNumberOfMessages=self.batch_size(),
            WaitTimeSeconds=self.config.wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return response.get("Messages", [])

    def batch_size(self) -> int:
        """How many messages to take at once: 10 for fast jobs, fewer for slow ones."""
        if self._job_seconds * 10 <= BATCH_SECONDS:
            return 10
        return max(1, int(BATCH_SECONDS / self._job_seconds))

    # ---- one batch ---------------------------------------------------------

    def process_batch(self, messages: list[dict[str, Any]]) -> None:
        batch = [_Held(m, int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)))
                 for m in messages]
        # Jobs on their last allowed receive go first, each with a stand-in result in S3.
        batch.sort(key=lambda held: -held.receive_count)
        with self._held_lock:
            self._held.extend(batch)
        for held in batch:
            if self._last_chance(held):
                self._store_stand_in(held)
        oldest_unflushed: float | None = None
        try:
            for held in batch:
                # After a stop signal only jobs on their last receive still run: handed
                # back, SQS would dead-letter them unseen on the next receive.
                if self._stopping.is_set() and not self._last_chance(held):
                    break
                started = time.monotonic()
                self._handle(held)
                self._job_seconds += 0.3 * (time.monotonic() - started - self._job_seconds)
                if held.state == "done" and oldest_unflushed is None:
                    oldest_unflushed = time.monotonic()
                if (oldest_unflushed is not None
                        and time.monotonic() - oldest_unflushed >= FLUSH_AFTER_SECONDS):
                    self._flush(batch)
                    oldest_unflushed = None
            self._flush(batch)
        finally:
            self._release([h for h in batch if h.state == "pending"])
            with self._held_lock:
                self._held = [h for h in self._held if h not in batch]

    def _last_chance(self, held: _Held) -> bool:
        return held.receive_count >= self.config.max_receive_count

    def _store_stand_in(self, held: _Held) -> None:
        """Leave an error result in S3 that the real one overwrites.

        If this worker dies too, SQS moves the message to the dead-letter queue on
        its next receive without any worker seeing it; the client then finds this
        result instead of waiting in silence.
        """
        try:
            job_id = wire.decode_job(held.message["Body"]).job_id
        except wire.WireError:
            return  # unreadable: answered (if at all) when handled
        message = (f"the job was received {held.receive_count} times and every worker that "
                   f"held it stopped before finishing (it may crash or exhaust the worker); "
                   f"it is in the dead-letter queue")
        try:
            self._store_result(wire.error_result(job_id, wire.INTERNAL, message,
                                                 worker=self.identity,
                                                 attempt=held.receive_count))
        except Exception as exc:
            log.warning("could not store the stand-in result of job %s (%s)", job_id,
                        _describe(exc))

    def _handle(self, held: _Held) -> None:
        """Run one job; leave `held` done (result ready) or not done (retry later)."""
        try:
            job = wire.decode_job(held.message["Body"])
        except wire.WireError as exc:
            log.warning("unreadable job message %s: %s", held.message["MessageId"], exc.message)
            held.dead_letter_reason = f"{wire.BAD_INPUT}: {exc.message}"
            if exc.job_id:
                held.result = self._error(exc.job_id, exc.code, exc.message, held)
                held.reply_to = exc.reply_to if self._reply_allowed(exc.reply_to) else None
            held.state = "done"
            return

        started = time.time()
        if job.reply_to is not None and not self._reply_allowed(job.reply_to):
            held.result = self._error(
                job.job_id, wire.FORBIDDEN,
                f"reply queue {job.reply_to} is outside this stack: results go only to "
                f"queues named {self.config.reply_queue_prefix}* in the stack's account; "
                f"the result is stored in S3 instead", held)
            held.state = "done"
            return
        held.reply_to = job.reply_to
        try:
            value = self._run_job(job)
            held.result = wire.ok_result(job.job_id, value, **self._extra(job, started, held))
        except wire.JobError as exc:
            held.result = self._error(job.job_id, exc.code, exc.message, held,
                                      self._extra(job, started, held))
        except Exception as exc:
            self.stats.failed_attempts += 1
            reason = _describe(exc)
            if held.receive_count < self.config.max_receive_count:
                log.warning("job %s attempt %d failed (%s); it will be retried",
                            job.job_id, held.receive_count, reason)
                self._backoff(held)
                return
            log.error("job %s failed on its last attempt (%d): %s",
                      job.job_id, held.receive_count, reason)
            held.result = self._error(
                job.job_id, wire.INTERNAL,
                f"the job failed on all {held.receive_count} attempts; last error: {reason}",
                held, self._extra(job, started, held))
            held.dead_letter_reason = f"{wire.INTERNAL}: {reason}"
        held.state = "done"

    def _error(self, job_id: str, code: str, message: str, held: _Held,
               extra: dict[str, Any] | None = None) -> wire.Result:
        self.stats.by_code[code] += 1
        extra = extra or {"worker": self.identity, "attempt": held.receive_count}
        return wire.error_result(job_id, code, message, **extra)

    def _extra(self, job: wire.Job, started: float, held: _Held) -> dict[str, Any]:
        return {
            "timing": {"queued_s": round(max(0.0, started - job.submitted_at), 6),
                       "run_s": round(time.time() - started, 6)},
            "worker": self.identity,
            "attempt": held.receive_count,
        }

    # ---- the jobs ------------------------------------------------------------

    def _run_job(self, job: wire.Job) -> dict[str, Any]:
        args = job.args if job.args_key is None else self._load_args(job)
        if job.kind == "stats":
            _expect_keys(args, {"numbers"})
            return compute_stats(args["numbers"])
        if job.kind == "equalize":
            return self._equalize(job, args)
        raise wire.JobError(wire.BAD_INPUT, f"unknown job kind {job.kind!r}")

    def _load_args(self, job: wire.Job) -> dict[str, Any]:
        key = _own_key(job.args_key, f"inputs/{job.job_id}/", "args_key")
        args = json.loads(self._get_object(key))
        if not isinstance(args, dict):
            raise wire.JobError(wire.BAD_INPUT, f"{key} must hold a JSON object")
        return args

    def _equalize(self, job: wire.Job, args: dict[str, Any]) -> dict[str, Any]:
        _expect_keys(args, {"input_key", "output_key"})
        input_key = _own_key(args["input_key"], f"inputs/{job.job_id}/", "input_key")
        output_key = _own_key(args["output_key"], f"outputs/{job.job_id}/", "output_key")
        data = self._get_object(input_key)
        output = equalize_image(data, max_pixels=self.config.max_pixels or DEFAULT_MAX_PIXELS)
        self.s3.put_object(Bucket=self.config.bucket, Key=output_key, Body=output,
                           ContentType=output_content_type(output))
        return {"output_key": output_key, "bytes": len(output)}

    def _get_object(self, key: str) -> bytes:
        try:
            response = self.s3.get_object(Bucket=self.config.bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise wire.JobError(wire.NOT_FOUND,
                                    f"s3://{self.config.bucket}/{key} does not exist") from None
            raise
        if response["ContentLength"] > MAX_INPUT_BYTES:
            raise wire.JobError(wire.TOO_LARGE,
                                f"{key} is {response['ContentLength']} bytes; "
                                f"the limit is {MAX_INPUT_BYTES}")
        return response["Body"].read()

    # ---- delivering and acknowledging ------------------------------------------

    def _reply_allowed(self, queue_url: str | None) -> bool:
        if not queue_url:
            return False
        own = urlparse(self.config.request_queue_url).path.strip("/").split("/")
        theirs = urlparse(queue_url).path.strip("/").split("/")
        return (len(theirs) == 2 and theirs[0] == own[0]
                and theirs[1].startswith(self.config.reply_queue_prefix))

    def _flush(self, batch: list[_Held]) -> None:
        """Deliver the results of finished jobs, then delete their messages."""
        ready = [h for h in batch if h.state == "done"]
        if not ready:
            return
        by_queue: dict[str, list[_Held]] = defaultdict(list)
        for held in ready:
            if held.result is not None and held.reply_to:
                by_queue[held.reply_to].append(held)
            elif held.result is not None:
                try:
                    self._store_result(held.result)
                except Exception as exc:
                    self._mark_retry([held], exc)
        for queue_url, group in by_queue.items():
            self._send_results(queue_url, group)
        for held in ready:
            if self._last_chance(held) and held.reply_to and held.state == "done":
                try:  # replace the stand-in result; the client has the real one anyway
                    self._store_result(held.result)
                except Exception as exc:
                    log.warning("job %s: the stand-in result in S3 stays (%s)",
                                held.result.job_id, _describe(exc))
        for held in ready:
            if held.dead_letter_reason:
                self._dead_letter(held)
        acked = [h for h in ready if h.state == "done"]
        self._delete(acked)
        for held in acked:
            held.state = "acked"
            if held.result is not None:
                self.stats.processed += 1
                log.info("job %s %s (attempt %d)", held.result.job_id,
                         "ok" if held.result.ok else held.result.error_code, held.receive_count)

    def _send_results(self, queue_url: str, group: list[_Held]) -> None:
        for start in range(0, len(group), 10):
            chunk = group[start:start + 10]
            entries = [{"Id": str(i), "MessageBody": wire.encode_result(h.result)}
                       for i, h in enumerate(chunk)]
            try:
                response = self.sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
                failed = {int(f["Id"]) for f in response.get("Failed", [])}
            except Exception as exc:  # also a dropped connection, after the SDK's retries
                if not (isinstance(exc, ClientError) and _queue_missing(exc)):
                    self._mark_retry(chunk, exc)
                    continue
                log.info("reply queue %s is gone; storing results in S3", queue_url)
                failed = set(range(len(chunk)))
            for i in failed:
                try:
                    self._store_result(chunk[i].result)
                except Exception as exc:
                    self._mark_retry([chunk[i]], exc)

    def _store_result(self, result: wire.Result) -> None:
        self.s3.put_object(Bucket=self.config.bucket, Key=f"results/{result.job_id}.json",
                           Body=wire.encode_result(result).encode(),
                           ContentType="application/json")

    def _dead_letter(self, held: _Held) -> None:
        try:
            self.sqs.send_message(
                QueueUrl=self.config.dead_letter_queue_url,
                MessageBody=held.message["Body"],
                MessageAttributes={"error": {"DataType": "String",
                                             "StringValue": held.dead_letter_reason[:1000]}},
            )
            self.stats.dead_lettered += 1
        except Exception as exc:
            self._mark_retry([held], exc)

    def _mark_retry(self, helds: list[_Held], exc: Exception) -> None:
        log.warning("could not deliver %d result(s) (%s); the job(s) will be retried",
                    len(helds), _describe(exc))
        for held in helds:
            held.dead_letter_reason = None
            self._backoff(held)

    def _delete(self, helds: list[_Held]) -> None:
        for start in range(0, len(helds), 10):
            chunk = helds[start:start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": h.message["ReceiptHandle"]}
                       for i, h in enumerate(chunk)]
            try:
                response = self.sqs.delete_message_batch(
                    QueueUrl=self.config.request_queue_url, Entries=entries)
                for failure in response.get("Failed", []):
                    log.warning("delete failed for a message: %s", failure.get("Message"))
            except Exception as exc:  # the message comes back; the client ignores the duplicate
                log.warning("delete failed (%s); the job(s) may run again", _describe(exc))

    def _backoff(self, held: _Held) -> None:
        """Let the message come back after 2, 4, 8... seconds (capped)."""
        held.state = "retry"
        delay = min(self.config.visibility_timeout, 2 ** held.receive_count)
        self._change_visibility([held], delay)

    def _release(self, helds: list[_Held]) -> None:
        """Hand messages this worker will not process back to the queue at once."""
        if helds:
            self._change_visibility(helds, 0)

    def _change_visibility(self, helds: list[_Held], seconds: int) -> None:
        for start in range(0, len(helds), 10):
            entries = [{"Id": str(i), "ReceiptHandle": h.message["ReceiptHandle"],
                        "VisibilityTimeout": seconds}
                       for i, h in enumerate(helds[start:start + 10])]
            try:
                self.sqs.change_message_visibility_batch(
                    QueueUrl=self.config.request_queue_url, Entries=entries)
            except Exception as exc:
                log.warning("could not change visibility (%s)", _describe(exc))

    def _heartbeat(self) -> None:
        """Keep held messages invisible while this worker is alive."""
        interval = max(1.0, self.config.visibility_timeout / 3)
        while not self._finished.wait(interval):
            with self._held_lock:
                held = [h for h in self._held if h.state in ("pending", "done")]
            if held:
                self._change_visibility(held, self.config.visibility_timeout)


def _expect_keys(args: Any, keys: set[str]) -> None:
    if not isinstance(args, dict):
        raise wire.JobError(wire.BAD_INPUT, "args must be a JSON object")
    missing = sorted(keys - args.keys())
    unknown = sorted(args.keys() - keys)
    if missing:
        raise wire.JobError(wire.BAD_INPUT, f"missing argument(s): {', '.join(missing)}")
    if unknown:
        raise wire.JobError(wire.BAD_INPUT, f"unknown argument(s): {', '.join(unknown)}")


def _own_key(key: Any, prefix: str, name: str) -> str:
    if not isinstance(key, str) or not key.startswith(prefix) or len(key) == len(prefix):
        raise wire.JobError(wire.BAD_INPUT, f"{name} must be an S3 key under {prefix}")
    return key


def _queue_missing(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    return code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message')}"
    return f"{type(exc).__name__}: {exc}"
