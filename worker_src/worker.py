"""The worker loop: fetch a batch of jobs, have each executed, deliver its result, acknowledge.

    broker.receive (long poll, up to 10) -> for each job: executor.execute -> result
        -> flush: results to reply queues (batched) or S3, then broker.delete

All SQS I/O goes through the broker (broker.py), all job work through the executor
(executor.py, whose job functions run in a work horse); this loop only decides. A message
is deleted only after its result is delivered. A job that can never succeed (bad input)
gets an error result at once. Any other failure leaves the message to come back after a
backoff; on its last allowed receive the client gets an `internal` error result and the
message is moved to the dead-letter queue. While a message is held, a heartbeat keeps it
invisible to others.

Each message is on its own: decoding is total (a job or wire.WireError), and every step
that concerns one message is guarded so that whatever it raises concerns that message
alone (it is retried or dead-lettered); no step holds or releases a batch because of one.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from . import metrics, wire
from .broker import Broker, Message, QueueGone, describe
from .capacity import BacklogSignal
from .config import WorkerConfig
from .contract import MessageAttribute
from .executor import Execution, Executor
from .lifecycle import Lifecycle
from .protection import ScaleInProtection
from .store import Store

log = logging.getLogger("worker")

# Results wait at most this long for others to share a batched send.
FLUSH_AFTER_SECONDS = 0.2
# A batch holds about this much work: slow jobs are taken a few at a time, so that
# another worker finds the rest in the queue instead of waiting behind this one.
BATCH_SECONDS = 1.0


@dataclass
class _Held:
    """A received message the worker has not acknowledged yet."""

    message: Message
    state: str = "pending"  # pending -> done -> acked, or pending -> retry
    job: wire.Job | None = None  # decoded, once
    unreadable: wire.WireError | None = None  # or why it could not be
    result: wire.Result | None = None
    execution: Execution | None = None
    reply_to: str | None = None
    dead_letter_reason: str | None = None
    received_at: float = field(default_factory=time.time)


@dataclass
class _Stats:
    processed: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    by_code: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    def __init__(self, config: WorkerConfig, broker: Broker, store: Store,
                 executor: Executor | None = None,
                 protection: ScaleInProtection | None = None,
                 backlog: BacklogSignal | None = None) -> None:
        self.config = config
        self.broker = broker
        self.store = store
        self.identity = worker_identity()
        self.executor = executor or Executor(store, identity=self.identity,
                                             max_pixels=config.max_pixels,
                                             memory_budget_bytes=config.memory_budget_bytes,
                                             time_limit_s=config.time_limit_s)
        self.protection = protection or ScaleInProtection(None, None, None)
        # Full batches in a row raise the group's capacity (capacity.py).
        self.backlog = backlog or BacklogSignal(None, None, None, "")
        self.lifecycle = Lifecycle(broker, store, self.identity)
        self.stats = _Stats()
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._job_seconds = 0.0  # moving average of one job's run time
        self._held: list[_Held] = []
        self._held_lock = threading.Lock()

    # ---- lifecycle -------------------------------------------------------

    def run(self) -> None:
        """Process jobs until stop() or a SIGTERM/SIGINT."""
        self._wait_for_queue()
        if self.config.ready_file:
            self.config.ready_file.write_text(self.identity + "\n")
        log.info("worker %s polling %s", self.identity, self.config.request_queue_url)
        self._start_work_horse()
        threading.Thread(target=self.heartbeat, name="heartbeat", daemon=True).start()
        try:
            while not self._stopping.is_set():
                try:
                    asked = self.batch_size()
                    messages = self.broker.receive(asked, self.config.wait_seconds)
                except Exception as exc:  # keep receiving whatever happens
                    log.warning("receive failed (%s); retrying in 1 s", describe(exc))
                    self._stopping.wait(1)
                    continue
                self.protection.set_busy(bool(messages))
                self.backlog.observe(len(messages), asked)
                if messages:
                    try:
                        self.process_batch(messages)
                    except Exception:  # unheld messages come back after the visibility timeout
                        log.exception("a batch failed unexpectedly; receiving on")
        finally:
            # The heartbeat outlives a SIGTERM: the job in hand keeps its message until done.
            self._finished.set()
            self.executor.close()
        self.protection.set_busy(False)
        log.info("worker %s stopped: %d jobs processed, errors by code %s, %d failed attempts, "
                 "%d dead-lettered", self.identity, self.stats.processed,
                 dict(self.stats.by_code), self.stats.failed_attempts, self.stats.dead_lettered)

    def stop(self) -> None:
        self._stopping.set()

    def _start_work_horse(self) -> None:
        """Fork the work horse before the first job (off its path); a job retries it."""
        try:
            self.executor.start()
        except Exception as exc:
            log.warning("work horse not started (%s); the first job starts it", describe(exc))

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

    def _wait_for_queue(self) -> None:
        """Wait until the request queue answers (no crash loop while AWS is unreachable)."""
        delay = 1.0
        while not self._stopping.is_set():
            try:
                self.broker.check()
                return
            except Exception as exc:
                log.warning("request queue not reachable (%s); retrying in %.0f s",
                            describe(exc), delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 60.0)

    def batch_size(self) -> int:
        """How many messages to take at once: 10 for fast jobs, fewer for slow ones."""
        if self._job_seconds * 10 <= BATCH_SECONDS:
            return 10
        return max(1, int(BATCH_SECONDS / self._job_seconds))

    def heartbeat(self) -> None:
        """Keep held messages invisible while this worker is alive."""
        interval = max(1.0, self.config.visibility_timeout / 3)
        while not self._finished.wait(interval):
            with self._held_lock:
                held = [h.message for h in self._held if h.state in ("pending", "done")]
            if held:
                self.broker.change_visibility(held, self.config.visibility_timeout)

    # ---- one batch ---------------------------------------------------------

    def process_batch(self, messages: list[Message]) -> None:
        # Jobs on their last allowed receive go first, each with a stand-in result in S3.
        batch = sorted((_Held(m) for m in messages), key=lambda h: -h.message.receive_count)
        self.lifecycle.batch_started()
        with self._held_lock:
            self._held.extend(batch)
        oldest_unflushed: float | None = None
        try:
            controls = [h for h in batch if self.lifecycle.is_control(h.message)]
            for held in batch:
                if held in controls:
                    continue
                self._decode(held)
                if self._last_chance(held):
                    self._store_stand_in(held)
            self._take_cancels(controls, batch)
            for held in batch:
                # After a stop signal only jobs on their last receive still run: handed
                # back, SQS would dead-letter them unseen on the next receive.
                if self._stopping.is_set() and not self._last_chance(held):
                    break
                if held.state != "pending":
                    continue
                started = time.monotonic()
                self._handle_alone(held)
                self._job_seconds += 0.3 * (time.monotonic() - started - self._job_seconds)
                if held.state == "done" and oldest_unflushed is None:
                    oldest_unflushed = time.monotonic()
                # Slow jobs (as slow as the wait itself) send each result at once.
                if oldest_unflushed is not None and (
                        time.monotonic() - oldest_unflushed >= FLUSH_AFTER_SECONDS
                        or self._job_seconds >= FLUSH_AFTER_SECONDS):
                    self._flush(batch)
                    oldest_unflushed = None
            self._flush(batch)
        finally:
            self.lifecycle.batch_ended()
            self._release([h for h in batch if h.state == "pending"])
            with self._held_lock:
                self._held = [h for h in self._held if h not in batch]

    def _take_cancels(self, controls: list[_Held], batch: list[_Held]) -> None:
        """Cancel messages first: a job of this batch that one names never starts."""
        in_hand = {h.job.job_id for h in batch if h.job is not None}
        for held in controls:
            held.dead_letter_reason = self.lifecycle.take_cancel(held.message, in_hand)
            held.state = "done"  # deleted with the batch's next acknowledgement

    def _last_chance(self, held: _Held) -> bool:
        return held.message.receive_count >= self.config.max_receive_count

    def _decode(self, held: _Held) -> None:
        try:
            held.job = wire.decode_job(held.message.body)
        except wire.WireError as exc:
            held.unreadable = exc

    def _store_stand_in(self, held: _Held) -> None:
        """Leave an error result in S3 that the real one overwrites.

        If this worker dies too, SQS moves the message to the dead-letter queue on
        its next receive without any worker seeing it; the client then finds this
        result instead of waiting in silence.
        """
        if held.job is None:
            return  # unreadable: answered (if at all) when handled
        job_id = held.job.job_id
        count = held.message.receive_count
        message = (f"the job was received {count} times and every worker that held it "
                   f"stopped before finishing (it may crash or exhaust the worker); it is "
                   f"in the dead-letter queue")
        try:
            self.store.put_result(wire.error_result(job_id, wire.INTERNAL, message,
                                                    worker=self.identity, attempt=count))
        except Exception as exc:
            log.warning("could not store the stand-in result of job %s (%s)", job_id,
                        describe(exc))

    def _handle_alone(self, held: _Held) -> None:
        """`handle`, whatever it raises concerning this message alone."""
        try:
            self.handle(held)
        except Exception as exc:
            held.result = None
            self._failed(held, describe(exc))

    def _failed(self, held: _Held, reason: str) -> None:
        """A failure that may pass: retried after a backoff; on the last receive, answered
        `internal` (if the job can be named) and dead-lettered with the reason."""
        self.stats.failed_attempts += 1
        attempt = held.message.receive_count
        job_id = held.job.job_id if held.job else None
        if not self._last_chance(held):
            log.warning("job %s (message %s) attempt %d failed (%s); it will be retried",
                        job_id, held.message.message_id, attempt, reason)
            self._backoff(held)
            return
        log.error("job %s (message %s) failed on its last attempt (%d): %s", job_id,
                  held.message.message_id, attempt, reason)
        if job_id is not None:
            held.result = self._error(job_id, wire.INTERNAL, f"the job failed on all {attempt} "
                                      f"attempts; last error: {reason}", attempt)
            held.reply_to = held.job.reply_to if self._allowed(held.job.reply_to) else None
        held.dead_letter_reason = f"{wire.INTERNAL}: {reason}"
        held.state = "done"

    def _allowed(self, queue_url: str | None) -> bool:
        try:
            return self.broker.reply_allowed(queue_url)
        except Exception:  # a broker that cannot tell: the result goes to S3
            return False

    def handle(self, held: _Held) -> None:
        """Run one job; leave `held` done (result ready) or not done (retry later)."""
        attempt = held.message.receive_count
        if held.job is None and held.unreadable is None:
            self._decode(held)
        if held.unreadable is not None:
            exc = held.unreadable
            log.warning("unreadable job message %s: %s", held.message.message_id, exc.message)
            held.dead_letter_reason = f"{wire.BAD_INPUT}: {exc.message}"
            if exc.job_id:
                held.result = self._error(exc.job_id, exc.code, exc.message, attempt)
                held.reply_to = exc.reply_to if self._allowed(exc.reply_to) else None
            held.state = "done"
            return
        job = held.job
        if job.reply_to is not None and not self._allowed(job.reply_to):
            held.result = self._error(
                job.job_id, wire.FORBIDDEN,
                f"reply queue {job.reply_to} is outside this stack: results go only to "
                f"queues named {self.config.reply_queue_prefix}* in the stack's account; "
                f"the result is stored in S3 instead", attempt)
            held.state = "done"
            return
        held.reply_to = job.reply_to
        cancelled = self.lifecycle.cancelled_before_start(job, held.message, held.received_at)
        if cancelled is not None:
            held.result = self._error(job.job_id, wire.CANCELLED, cancelled, attempt)
            self.lifecycle.clean_up(job)
            held.state = "done"
            return
        try:
            with self.lifecycle.watch(job) as watch:
                self.executor.watch = watch
                try:
                    held.execution = self.executor.execute(job, attempt)
                finally:
                    self.executor.watch = None
        except Exception as exc:
            self._failed(held, describe(exc))
            return
        held.result = held.execution.result
        if not held.result.ok:
            self.stats.by_code[held.result.error_code] += 1
        if held.result.error_code == wire.CANCELLED:
            self.lifecycle.clean_up(job)
        held.state = "done"

    def _error(self, job_id: str, code: str, message: str, attempt: int) -> wire.Result:
        self.stats.by_code[code] += 1
        return wire.error_result(job_id, code, message, worker=self.identity, attempt=attempt)

    # ---- delivering and acknowledging ------------------------------------------

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
                self._store_or_retry(held)
        for queue_url, group in by_queue.items():
            self._send_results(queue_url, group)
        for held in ready:
            if self._also_store(held) and held.reply_to and held.state == "done":
                try:  # replace the stand-in result; the client has the real one anyway
                    self.store.put_result(held.result)
                except Exception as exc:
                    log.warning("job %s: the stand-in result in S3 stays (%s)",
                                held.result.job_id, describe(exc))
        for held in ready:
            if held.dead_letter_reason and held.state == "done":
                try:
                    self.broker.dead_letter(held.message.body, held.dead_letter_reason)
                    self.stats.dead_lettered += 1
                except Exception as exc:
                    self._mark_retry([held], exc)
        acked = [h for h in ready if h.state == "done"]
        self.broker.delete([h.message for h in acked])
        for held in acked:
            held.state = "acked"
            if held.result is not None:
                self.stats.processed += 1
                try:
                    self.finished(held)
                except Exception as exc:  # a log line lost is no reason to stop the batch
                    log.warning("could not log job %s (%s)", held.result.job_id, describe(exc))

    def _also_store(self, held: _Held) -> bool:
        """Whether a result sent to a reply queue goes to S3 too: where a stale one may be.

        On a job's last receive the stand-in is there; a redriven job's old result was
        removed by the redrive, and `result JOB_ID` must find the new one.
        """
        return (self._last_chance(held) or MessageAttribute.REDRIVEN in held.message.attributes
                # whoever cancelled it reads it there (docs/cancel.md)
                or (held.result is not None and held.result.error_code == wire.CANCELLED))

    def finished(self, held: _Held) -> None:
        """A job's result is delivered and its message deleted: log it, and its metric line."""
        result = held.result
        self.lifecycle.finished(result.job_id, "ok" if result.ok else str(result.error_code))
        log.info("job %s %s (attempt %d)", result.job_id,
                 "ok" if result.ok else result.error_code, held.message.receive_count)
        if self.config.metric_namespace:
            execution = held.execution
            kind = execution.kind if execution else held.job.kind if held.job else None
            metrics.write(metrics.job_metrics(
                self.config.metric_namespace, metrics.kind_dimension(kind, self.executor.kinds),
                result, execution.input_bytes if execution else None))

    def _send_results(self, queue_url: str, group: list[_Held]) -> None:
        try:
            failed = self.broker.send_results(queue_url, [self._encoded(h) for h in group])
        except QueueGone:
            log.info("reply queue %s is gone; storing results in S3", queue_url)
            failed = set(range(len(group)))
        except Exception as exc:  # also a dropped connection, after the SDK's retries
            self._mark_retry(group, exc)
            return
        for index in sorted(failed):
            self._store_or_retry(group[index])

    def _encoded(self, held: _Held) -> str:
        """The result's message; one that cannot be written becomes an `internal` error."""
        try:
            return wire.encode_result(held.result)
        except Exception as exc:
            log.error("job %s: its result cannot be written (%s)", held.result.job_id,
                      describe(exc))
            held.result = self._error(held.result.job_id, wire.INTERNAL,
                                      f"the job's result could not be written: {describe(exc)}",
                                      held.message.receive_count)
            return wire.encode_result(held.result)

    def _store_or_retry(self, held: _Held) -> None:
        self._encoded(held)  # one that cannot be written is replaced first
        try:
            self.store.put_result(held.result)
        except Exception as exc:
            self._mark_retry([held], exc)

    def _mark_retry(self, helds: list[_Held], exc: Exception) -> None:
        log.warning("could not deliver %d result(s) (%s); the job(s) will be retried",
                    len(helds), describe(exc))
        for held in helds:
            held.dead_letter_reason = None
            self._backoff(held)

    def _backoff(self, held: _Held) -> None:
        """Let the message come back after 2, 4, 8... seconds (capped)."""
        held.state = "retry"
        delay = min(self.config.visibility_timeout, 2 ** held.message.receive_count)
        self.broker.change_visibility([held.message], delay)

    def _release(self, helds: list[_Held]) -> None:
        """Hand messages this worker will not process back to the queue at once."""
        if helds:
            self.broker.change_visibility([h.message for h in helds], 0)
