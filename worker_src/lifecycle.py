"""A job's life on the worker: word that a long job started, its progress, and cancels.

    short job (< STARTED_AFTER_SECONDS): nothing beyond its result, no extra request
    long job: a `running` message to its reply queue after a second, then one every
              TICK_SECONDS, each tick also checking the job's cancel marker (one HEAD)
    cancel message (client -> requests queue): its job ids are remembered; a job of the
              batch in hand or of a later batch is answered `cancelled` without running
    a job whose cancel this worker may have missed (it waited long in the queue, behind a
              slow job in this worker's hands, or was received right after a slow batch
              while the worker was not receiving): its marker is checked once before it starts

docs/cancel.md says why this is the cheapest way SQS and S3 allow, and what it costs.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import contract, registry, wire
from . import wire_lifecycle as lw
from .aws import error_text
from .broker import Broker, Message, QueueGone
from .store import Store

log = logging.getLogger("worker")

# A job running longer than this tells its client that it started.
STARTED_AFTER_SECONDS = 1.0
# Then a word at most this often; each tick also looks for the job's cancel marker, so a
# running job stops within about this long (plus the kill) of its cancel.
TICK_SECONDS = 2.0
# A running job's word is also kept in S3 (running/<job_id>.json: `result JOB_ID` for jobs
# nobody waits for, `status`'s count of running jobs), rewritten at most this often (a PUT
# is billed like 12.5 SQS requests) and deleted when the job ends (DELETE is not billed).
STORED_STATE_SECONDS = contract.RUNNING_REWRITE_SECONDS
# A job that waited longer than this in the queue, or in this worker's hands without the
# worker receiving, may have a cancel this worker has not seen: its marker is checked.
QUEUED_CHECK_SECONDS = 5.0
HELD_CHECK_SECONDS = 1.0
# A batch received this soon after the previous one ended followed it without a wait:
# the queue had a backlog, and a cancel sent while the last batch ran may be left in it.
BACKLOG_GAP_SECONDS = 0.5
# Job ids remembered (cancels named, jobs finished here), the oldest forgotten first.
REMEMBERED = 10_000


class Watch:
    """One running job: its progress (reported by the job), its cancel (set by a tick)."""

    def __init__(self, job: wire.Job, identity: str, started_after: float) -> None:
        self.job = job
        self.identity = identity
        self.started_at = time.time()
        self._started = time.monotonic()
        self.next_tick = self._started + started_after
        self.fraction: float | None = None
        self.cancel = threading.Event()
        self.words = 0  # running messages sent
        self.last_stored: float | None = None
        # A tick holds it while it speaks for the job; the job's end waits for it.
        self.lock = threading.Lock()
        self.ended = False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def reported(self, fraction: Any) -> None:
        """The work horse's on_progress: the child's report, in the parent."""
        if isinstance(fraction, (int, float)) and math.isfinite(fraction):
            self.fraction = min(1.0, max(0.0, float(fraction)))

    def cancelled_message(self) -> str:
        return (f"cancelled while running, after {self.elapsed:.1f} s on {self.identity}; "
                f"its inputs are deleted")

    def running(self) -> lw.Running:
        return lw.Running(self.job.job_id, self.identity, self.started_at, self.elapsed,
                          self.fraction)


class Lifecycle:
    """Started and progress words for the running job, and the cancels this worker knows."""

    def __init__(self, broker: Broker, store: Store, identity: str, *,
                 started_after: float = STARTED_AFTER_SECONDS,
                 tick_seconds: float = TICK_SECONDS) -> None:
        self.broker = broker
        self.store = store
        self.identity = identity
        self.started_after = started_after
        self.tick_seconds = tick_seconds
        self._cancels: OrderedDict[str, float] = OrderedDict()
        self._finished: OrderedDict[str, str] = OrderedDict()
        self._changed = threading.Condition()
        self._current: Watch | None = None
        self._ticker: threading.Thread | None = None
        self.marker_checks = 0  # HEAD requests made, for tests and the log
        self._batch_started = 0.0
        self._last_batch: tuple[float, float] | None = None  # (ended at, lasted)
        self._blind = 0.0  # how long the worker was not receiving before this batch

    # ---- batches -----------------------------------------------------------------------

    def batch_started(self) -> None:
        now = time.time()
        last = self._last_batch
        self._blind = last[1] if last and now - last[0] < BACKLOG_GAP_SECONDS else 0.0
        self._batch_started = now

    def batch_ended(self) -> None:
        now = time.time()
        self._last_batch = (now, now - self._batch_started)

    # ---- cancel messages ---------------------------------------------------------------

    @staticmethod
    def is_control(message: Message) -> bool:
        return lw.message_type(message.body) == lw.CANCEL

    def take_cancel(self, message: Message, in_hand: set[str]) -> str | None:
        """Remember a cancel's job ids; answer its sender for each (one batched send).

        `in_hand`: the ids of the jobs of the batch this worker holds, none started yet.
        Returns why the message is unreadable (it goes to the dead-letter queue), or None.
        """
        try:
            cancel = lw.decode_cancel(message.body)
        except wire.WireError as exc:
            log.warning("unreadable cancel message %s: %s", message.message_id, exc.message)
            return f"{wire.BAD_INPUT}: {exc.message}"
        answers = []
        for job_id in cancel.job_ids:
            _remember(self._cancels, job_id, time.time())
            if job_id in in_hand:
                outcome, text = lw.CANCELLED, "in this worker's hands, not started: it never runs"
            elif self._finished.get(job_id) == wire.CANCELLED:
                outcome, text = lw.CANCELLED, "cancelled here already (its cancel marker)"
            elif job_id in self._finished:
                outcome = lw.FINISHED
                text = f"it had finished here ({self._finished[job_id]}): its result is kept"
            else:
                outcome = lw.RECORDED
                text = ("not seen by this worker: it is answered cancelled when a worker "
                        "takes it, if it is still queued")
            answers.append(lw.encode_answer(lw.CancelAnswer(job_id, outcome, self.identity,
                                                            text)))
        log.info("cancel of %d job(s) taken", len(cancel.job_ids))
        if cancel.reply_to and self.broker.reply_allowed(cancel.reply_to):
            self._send(cancel.reply_to, answers)
        return None

    def cancelled_before_start(self, job: wire.Job, message: Message,
                               received_at: float) -> str | None:
        """Why `job` must not run (a cancel this worker knows or finds now), else None."""
        if job.job_id in self._cancels:
            return "cancelled while queued: it never ran"
        now = time.time()
        sent_at = message.sent_at if message.sent_at is not None else job.submitted_at
        may_have_missed = (message.receive_count > 1
                           or received_at - sent_at > QUEUED_CHECK_SECONDS
                           or now - received_at > HELD_CHECK_SECONDS
                           or self._blind > HELD_CHECK_SECONDS)
        if may_have_missed and self._marked(job.job_id):
            _remember(self._cancels, job.job_id, now)
            return "cancelled while queued: it never ran"
        return None

    def _marked(self, job_id: str) -> bool:
        self.marker_checks += 1
        try:
            return self.store.exists(contract.cancel_key(job_id))
        except Exception as exc:  # a cancel missed is a job that runs: no reason to fail it
            log.warning("could not look for job %s's cancel marker (%s)", job_id, error_text(exc))
            return False

    def clean_up(self, job: wire.Job) -> None:
        """Delete a cancelled job's inputs (every key under inputs/<job_id>/ that it names)."""
        prefix = contract.input_prefix(job.job_id)
        keys = [value for value in (job.args or {}).values()
                if isinstance(value, str) and value.startswith(prefix)]
        if job.args_key and job.args_key.startswith(prefix):
            keys.append(job.args_key)
        if keys:
            try:
                self.store.delete(keys)
            except Exception as exc:
                log.warning("job %s: inputs left to expire (%s)", job.job_id, error_text(exc))

    def finished(self, job_id: str, outcome: str) -> None:
        _remember(self._finished, job_id, outcome)

    # ---- the running job -----------------------------------------------------------------

    @contextmanager
    def watch(self, job: wire.Job) -> Iterator[Watch]:
        """Watch `job` while it runs: words after a second, cancel checks on each tick."""
        watch = Watch(job, self.identity, self.started_after)
        if job.job_id in self._cancels:
            watch.cancel.set()
        with self._changed:
            self._start_ticker()
            self._current = watch
            self._changed.notify()
        try:
            yield watch
        finally:
            with self._changed:
                self._current = None
                self._changed.notify()
            with watch.lock:  # no word after this point: a late one would outlive the job
                watch.ended = True
            if watch.last_stored is not None:
                try:
                    self.store.delete([contract.running_key(job.job_id)])
                except Exception as exc:  # it goes stale: `status` counts fresh ones only
                    log.warning("job %s: running state left (%s)", job.job_id, error_text(exc))

    def _start_ticker(self) -> None:
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick_loop, name="lifecycle",
                                            daemon=True)
            self._ticker.start()

    def _tick_loop(self) -> None:
        while True:
            with self._changed:
                watch = self._current
                if watch is None:
                    self._changed.wait()
                    continue
                delay = watch.next_tick - time.monotonic()
                if delay > 0:
                    self._changed.wait(delay)
                    continue
                watch.next_tick = time.monotonic() + self.tick_seconds
            try:
                with watch.lock:
                    if not watch.ended:
                        self.tick(watch)
            except Exception:
                log.exception("lifecycle tick failed; ticking on")

    def tick(self, watch: Watch) -> None:
        """Tell the job's client how far it is; look for its cancel."""
        job = watch.job
        if not watch.cancel.is_set() and (job.job_id in self._cancels
                                          or self._marked(job.job_id)):
            log.info("job %s: cancel found while running; stopping it", job.job_id)
            watch.cancel.set()
            return
        body = lw.encode_running(watch.running())
        if job.reply_to is not None and self.broker.reply_allowed(job.reply_to):
            self._send(job.reply_to, [body])
        if watch.last_stored is None or time.monotonic() - watch.last_stored \
                >= STORED_STATE_SECONDS:
            watch.last_stored = time.monotonic()
            try:
                self.store.put(contract.running_key(job.job_id), body.encode(),
                               "application/json")
            except Exception as exc:
                log.warning("job %s: running state not stored (%s)", job.job_id, error_text(exc))
        watch.words += 1

    def _send(self, queue_url: str, bodies: list[str]) -> None:
        try:
            self.broker.send_results(queue_url, bodies)
        except QueueGone:
            pass  # its client is gone; the result goes to S3 when it comes
        except Exception as exc:
            log.warning("could not send %d lifecycle word(s) (%s)", len(bodies), error_text(exc))


def throttled(report: Any, every: float = 0.2) -> registry.Progress:
    """A progress callback for a child: at most one message per `every` seconds."""
    last = [0.0]

    def progress(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] >= every or fraction >= 1:
            last[0] = now
            report(fraction)

    return progress


def _remember(memory: OrderedDict, key: str, value: Any) -> None:
    memory[key] = value
    memory.move_to_end(key)
    while len(memory) > REMEMBERED:
        memory.popitem(last=False)
