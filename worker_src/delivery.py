"""Delivering a finished job's result and acknowledging its message (the worker's back end).

Results go to their reply queues (batched) or to S3; a message is deleted only after its
result is delivered, or dead-lettered with its reason; one whose result cannot be delivered
comes back after a backoff. `Delivering` is the part of the Worker (worker.py) that does
this; the loop there decides which messages are done.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

from . import metrics, wire
from .aws import error_text
from .broker import Broker, Message, QueueGone
from .config import WorkerConfig
from .contract import MessageAttribute
from .executor import Execution, Executor
from .lifecycle import Lifecycle
from .store import Store

log = logging.getLogger("worker")


@dataclass
class Held:
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
class Stats:
    """What the worker has done so far (its last log line says)."""

    processed: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    by_code: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Delivering:
    """The Worker's delivery and acknowledgement of the messages it holds."""

    config: WorkerConfig
    identity: str
    broker: Broker
    store: Store
    executor: Executor
    lifecycle: Lifecycle
    stats: Stats

    def _last_chance(self, held: Held) -> bool:
        return held.message.receive_count >= self.config.max_receive_count

    def _error(self, job_id: str, code: str, message: str, attempt: int) -> wire.Result:
        self.stats.by_code[code] += 1
        return wire.error_result(job_id, code, message, worker=self.identity, attempt=attempt)

    def _flush(self, batch: list[Held]) -> None:
        """Deliver the results of finished jobs, then delete their messages."""
        ready = [h for h in batch if h.state == "done"]
        if not ready:
            return
        by_queue: dict[str, list[Held]] = defaultdict(list)
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
                                held.result.job_id, error_text(exc))
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
                    log.warning("could not log job %s (%s)", held.result.job_id, error_text(exc))

    def _also_store(self, held: Held) -> bool:
        """Whether a result sent to a reply queue goes to S3 too: where a stale one may be.

        On a job's last receive the stand-in is there; a redriven job's old result was
        removed by the redrive, and `result JOB_ID` must find the new one.
        """
        return (self._last_chance(held) or MessageAttribute.REDRIVEN in held.message.attributes
                # whoever cancelled it reads it there (docs/cancel.md)
                or (held.result is not None and held.result.error_code == wire.CANCELLED))

    def finished(self, held: Held) -> None:
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

    def _send_results(self, queue_url: str, group: list[Held]) -> None:
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

    def _encoded(self, held: Held) -> str:
        """The result's message; one that cannot be written becomes an `internal` error."""
        try:
            return wire.encode_result(held.result)
        except Exception as exc:
            log.error("job %s: its result cannot be written (%s)", held.result.job_id,
                      error_text(exc))
            held.result = self._error(held.result.job_id, wire.INTERNAL,
                                      f"the job's result could not be written: {error_text(exc)}",
                                      held.message.receive_count)
            return wire.encode_result(held.result)

    def _store_or_retry(self, held: Held) -> None:
        self._encoded(held)  # one that cannot be written is replaced first
        try:
            self.store.put_result(held.result)
        except Exception as exc:
            self._mark_retry([held], exc)

    def _mark_retry(self, helds: list[Held], exc: Exception) -> None:
        log.warning("could not deliver %d result(s) (%s); the job(s) will be retried",
                    len(helds), error_text(exc))
        for held in helds:
            held.dead_letter_reason = None
            self._backoff(held)

    def _backoff(self, held: Held) -> None:
        """Let the message come back after 2, 4, 8... seconds (capped)."""
        held.state = "retry"
        delay = min(self.config.visibility_timeout, 2 ** held.message.receive_count)
        self.broker.change_visibility([held.message], delay)

    def _release(self, helds: list[Held]) -> None:
        """Hand messages this worker will not process back to the queue at once."""
        if helds:
            self.broker.change_visibility([h.message for h in helds], 0)
