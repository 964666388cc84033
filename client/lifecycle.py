"""A job's life seen from the client: running words, a job's state, and cancels.

    client.running[job_id]          the latest `running` word of a pending job
    job_state(client, job_id)       done / running / queued, from S3 (`result JOB_ID`)
    cancel(client, job_ids)         the marker, the cancel message, and what became of each job

docs/cancel.md says how a cancel reaches the worker and what it costs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from worker_src import contract, wire
from worker_src import wire_lifecycle as lw

from . import bucket
from .errors import ClientFailure, UsageError, aws_call

# States of a job, as the CLI's --json and the web page name them.
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
# What a cancel found, per job.
REQUESTED, FINISHED = "requested", "finished"
# How long `cancel` waits to learn what became of each job.
CANCEL_WAIT_SECONDS = 15.0


def result_state(result: wire.Result) -> str:
    if result.ok:
        return DONE
    return CANCELLED if result.error_code == wire.CANCELLED else FAILED


def take_word(client: Any, body: str) -> None:
    """A reply-queue message that is not a result: keep what it says of this client's jobs."""
    kind = lw.message_type(body)
    try:
        if kind == lw.RUNNING:
            running = lw.decode_running(body)
            if running.job_id in client._pending:
                client.running[running.job_id] = running
        elif kind == lw.CANCEL_ANSWER:
            answer = lw.decode_answer(body)
            client.cancel_answers[answer.job_id] = answer
    except wire.WireError:
        return  # not a word for this client


def running_text(running: lw.Running, now: float | None = None) -> str:
    """'running 12 s (since 14:02:07) on host:pid, 42%' (from the worker's start stamp)."""
    elapsed = max(running.elapsed_s, (now or time.time()) - running.started_at)
    since = time.strftime("%H:%M:%S", time.localtime(running.started_at))
    text = f"running {elapsed:.0f} s (since {since}) on {running.worker}"
    return text + (f", {100 * running.fraction:.0f}%" if running.fraction is not None else "")


# ---- a job's state from S3 ----------------------------------------------------------------

def job_state(client: Any, job_id: str) -> dict[str, Any]:
    """{"state": done|failed|cancelled|running|queued, ...} of a job nobody waits for."""
    check_ids([job_id])
    try:
        result = client.fetch_result(job_id)
        return {"job_id": job_id, "state": result_state(result), "result": result}
    except ClientFailure:
        pass
    word = _read(client, contract.running_key(job_id))
    if word is not None:
        try:
            return {"job_id": job_id, "state": RUNNING, "running": lw.decode_running(word)}
        except wire.WireError:
            pass
    cancelling = _read(client, contract.cancel_key(job_id)) is not None
    return {"job_id": job_id, "state": QUEUED, "cancel_requested": cancelling}


def _read(client: Any, key: str, limit: int = 64 * 1024) -> bytes | None:
    """A small object's bytes (at most `limit`), or None if it is not there."""
    return bucket.read_object(client.s3, client.stack.bucket, key, limit)


# ---- cancel ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class CancelOutcome:
    job_id: str
    outcome: str  # cancelled | finished | requested
    message: str

    def document(self) -> dict[str, str]:
        return {"job_id": self.job_id, "outcome": self.outcome, "message": self.message}


def check_ids(job_ids: Iterable[str]) -> list[str]:
    ids = list(dict.fromkeys(job_ids))
    bad = [job_id for job_id in ids if not wire._is_uuid(job_id)]
    if bad:
        raise UsageError(f"{bad[0]!r} is not a job id (a UUID such as "
                         f"0b7f3c1e-5a4d-4e8b-9c2f-1d6a7b8c9d0e)")
    return ids


def request_cancel(client: Any, job_ids: list[str]) -> None:
    """Put each job's cancel marker, then tell the workers (answers to this client's queue).

    The marker comes first: a worker that checks it after the message was taken
    elsewhere must find it.
    """
    now = time.time()
    for job_id in job_ids:
        aws_call(client.s3.put_object, Bucket=client.stack.bucket,
                 Key=contract.cancel_key(job_id),
                 Body=json.dumps({"requested_at": now}).encode(),
                 ContentType="application/json")
    reply_to = client.reply_queue()
    for start in range(0, len(job_ids), lw.MAX_CANCEL_IDS):
        ids = tuple(job_ids[start:start + lw.MAX_CANCEL_IDS])
        aws_call(client.sqs.send_message, QueueUrl=client.stack.request_queue_url,
                 MessageBody=lw.encode_cancel(lw.Cancel(ids, reply_to, now)))


def cancel(client: Any, job_ids: Iterable[str],
           wait_seconds: float = CANCEL_WAIT_SECONDS) -> list[CancelOutcome]:
    """Cancel jobs; what became of each, as far as could be learned within `wait_seconds`.

    A job with a stored result had finished: nothing is sent for it. For the others a
    worker answers (or a cancelled job's result, always stored, shows up in S3).
    """
    ids = check_ids(job_ids)
    known: dict[str, CancelOutcome] = {}
    for job_id in ids:
        stored = _stored(client, job_id)
        if stored is not None:
            known[job_id] = stored
    asked = [job_id for job_id in ids if job_id not in known]
    if asked:
        request_cancel(client, asked)
    deadline = time.monotonic() + wait_seconds
    while True:
        for job_id in asked:
            if job_id in known:
                continue
            answer = client.cancel_answers.get(job_id)
            stored = _stored(client, job_id)
            if stored is not None:
                known[job_id] = stored
            elif answer is not None and answer.outcome == lw.FINISHED:
                known[job_id] = CancelOutcome(job_id, FINISHED,
                                              f"had already finished: {answer.message}")
            elif answer is not None and answer.outcome == lw.CANCELLED:
                known[job_id] = CancelOutcome(job_id, CANCELLED, answer.message)
        if len(known) == len(ids) or time.monotonic() >= deadline:
            break
        client.receive_results(wait_seconds=1)
    for job_id in asked:
        if job_id not in known:
            answer = client.cancel_answers.get(job_id)
            seen = f" ({answer.message})" if answer is not None else ""
            known[job_id] = CancelOutcome(
                job_id, REQUESTED, f"cancel requested; no worker has this job in hand yet{seen}"
                f": if it is queued it is answered cancelled when a worker takes it (an id "
                f"that was never submitted, or whose result was delivered long ago, stays "
                f"like this)")
    return [known[job_id] for job_id in ids]


def _stored(client: Any, job_id: str) -> CancelOutcome | None:
    try:
        result = client.fetch_result(job_id)
    except (ClientFailure, wire.WireError):
        return None
    if result_state(result) == CANCELLED:
        return CancelOutcome(job_id, CANCELLED, result.error_message or "cancelled")
    state = "ok" if result.ok else f"failed: {result.error_code}"
    return CancelOutcome(job_id, FINISHED, f"had already finished ({state}): its result is kept")


# ---- running now (status) -------------------------------------------------------------------

def running_now(client: Any, now: float | None = None) -> int:
    """Jobs running now: running/ records rewritten within twice their interval (one LIST).

    A worker keeps one for each job that runs longer than a second and deletes it at the
    end; a record left by a worker that died goes stale and is not counted.
    """
    now = time.time() if now is None else now
    response = aws_call(client.s3.list_objects_v2, Bucket=client.stack.bucket,
                        Prefix=contract.RUNNING, MaxKeys=1000)
    fresh = 2 * contract.RUNNING_REWRITE_SECONDS + 5
    return sum(1 for item in response.get("Contents", [])
               if now - item["LastModified"].timestamp() <= fresh)
