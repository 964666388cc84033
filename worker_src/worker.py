"""The worker loop: fetch a batch of jobs, have each executed, deliver its result, acknowledge.

    broker.receive (long poll, up to 10) -> for each job: executor.execute -> result
        -> flush: results to reply queues (batched) or S3, then broker.delete

All SQS I/O goes through the broker (broker.py), all job work through the executor
(executor.py, whose job functions run in a work horse); this loop only decides. Results
are delivered and messages acknowledged by the Worker's `Delivering` part (delivery.py): a
message is deleted only after its result is delivered. A job that can never succeed (bad input)
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
from typing import Any

from . import wire
from .aws import error_text
from .broker import Broker, Message
from .capacity import BacklogSignal
from .config import WorkerConfig
from .delivery import Delivering, Held, Stats
from .executor import Executor
from .lifecycle import Lifecycle
from .protection import ScaleInProtection
from .store import Store

log = logging.getLogger("worker")

# Results wait at most this long for others to share a batched send.
FLUSH_AFTER_SECONDS = 0.2
# A batch holds about this much work: slow jobs are taken a few at a time, so that
# another worker finds the rest in the queue instead of waiting behind this one.
BATCH_SECONDS = 1.0


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker(Delivering):
    """Receives jobs, has each executed, decides what becomes of each message."""

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
        self.stats = Stats()
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._job_seconds = 0.0  # moving average of one job's run time
        self._held: list[Held] = []
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
                    log.warning("receive failed (%s); retrying in 1 s", error_text(exc))
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
            log.warning("work horse not started (%s); the first job starts it", error_text(exc))

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
                            error_text(exc), delay)
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
        batch = sorted((Held(m) for m in messages), key=lambda h: -h.message.receive_count)
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

    def _take_cancels(self, controls: list[Held], batch: list[Held]) -> None:
        """Cancel messages first: a job of this batch that one names never starts."""
        in_hand = {h.job.job_id for h in batch if h.job is not None}
        for held in controls:
            held.dead_letter_reason = self.lifecycle.take_cancel(held.message, in_hand)
            held.state = "done"  # deleted with the batch's next acknowledgement

    def _decode(self, held: Held) -> None:
        try:
            held.job = wire.decode_job(held.message.body)
        except wire.WireError as exc:
            held.unreadable = exc

    def _store_stand_in(self, held: Held) -> None:
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
                        error_text(exc))

    def _handle_alone(self, held: Held) -> None:
        """`handle`, whatever it raises concerning this message alone."""
        try:
            self.handle(held)
        except Exception as exc:
            held.result = None
            self._failed(held, error_text(exc))

    def _failed(self, held: Held, reason: str) -> None:
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

    def handle(self, held: Held) -> None:
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
            self._failed(held, error_text(exc))
            return
        held.result = held.execution.result
        if not held.result.ok:
            self.stats.by_code[held.result.error_code] += 1
        if held.result.error_code == wire.CANCELLED:
            self.lifecycle.clean_up(job)
        held.state = "done"
