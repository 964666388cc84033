"""The wire format's lifecycle messages: a job's running state, and cancels with their answers.

Beside the job and the result (wire.py), three message types carry a `type` field:

    worker -> the job's reply queue, for a job running longer than about a second:
    {"version": 1, "type": "running", "job_id": "<uuid>", "worker": "host:pid",
     "started_at": 1764219000.5, "elapsed_s": 3.1, "fraction": 0.42}   (fraction optional)

    client -> the requests queue (after putting the marker cancels/<job_id> in S3):
    {"version": 1, "type": "cancel", "job_ids": ["<uuid>", ...],
     "reply_to": "https://sqs.../<stack>-reply-<random>" | null, "sent_at": 1764219001.0}

    worker -> the cancel's reply_to, one per job id named:
    {"version": 1, "type": "cancel_answer", "job_id": "<uuid>", "outcome": "cancelled",
     "worker": "host:pid", "message": "..."}

A job message has no `type`. An old client reads a `running` or `cancel_answer` message as
a result that lacks its fields and drops it, as it drops any message that is not a result.
docs/wire-format.md documents them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from . import wire

RUNNING, CANCEL, CANCEL_ANSWER = "running", "cancel", "cancel_answer"
TYPES = (RUNNING, CANCEL, CANCEL_ANSWER)
# A cancel names at most this many jobs (about 4 KB of ids).
MAX_CANCEL_IDS = 100

# Outcomes of a cancel, as the worker that took the cancel message saw them.
CANCELLED = "cancelled"  # in its hands, not started: it will never run (its result follows)
FINISHED = "finished"  # it had finished there before the cancel came: its result is kept
RECORDED = "recorded"  # not seen there: answered `cancelled` when a worker takes it
OUTCOMES = (CANCELLED, FINISHED, RECORDED)


@dataclass(frozen=True)
class Running:
    """A job has been running for `elapsed_s` on `worker`; `fraction` of it done, if known."""

    job_id: str
    worker: str
    started_at: float
    elapsed_s: float
    fraction: float | None = None


@dataclass(frozen=True)
class Cancel:
    job_ids: tuple[str, ...]
    reply_to: str | None
    sent_at: float


@dataclass(frozen=True)
class CancelAnswer:
    job_id: str
    outcome: str
    worker: str
    message: str


def message_type(text: str | bytes) -> str | None:
    """The `type` of a lifecycle message; None for anything else (a job, a result, junk).

    Read within the wire's limits (digits, depth), and only when the text names a `type`.
    """
    mark = '"type"' if isinstance(text, str) else b'"type"'
    if not isinstance(text, (str, bytes)) or mark not in text:
        return None
    try:
        body = wire.parse_json(text)
    except ValueError:
        return None
    kind = body.get("type") if isinstance(body, dict) else None
    return kind if kind in TYPES else None


def encode_running(running: Running) -> str:
    body: dict[str, Any] = {"version": wire.WIRE_VERSION, "type": RUNNING,
                            "job_id": running.job_id, "worker": running.worker,
                            "started_at": running.started_at,
                            "elapsed_s": round(running.elapsed_s, 3)}
    if running.fraction is not None:
        body["fraction"] = round(running.fraction, 4)
    return json.dumps(body, separators=(",", ":"))


def decode_running(text: str | bytes) -> Running:
    body = _load(text, RUNNING, {"job_id", "worker", "started_at", "elapsed_s"}, {"fraction"})
    _uuid(body["job_id"])
    if not isinstance(body["worker"], str):
        raise wire.WireError("worker must be a string")
    started_at, elapsed = _number(body, "started_at"), _number(body, "elapsed_s")
    fraction = _number(body, "fraction") if "fraction" in body else None
    if fraction is not None and not 0 <= fraction <= 1:
        raise wire.WireError("fraction must be between 0 and 1")
    return Running(body["job_id"], body["worker"], started_at, elapsed, fraction)


def encode_cancel(cancel: Cancel) -> str:
    return json.dumps({"version": wire.WIRE_VERSION, "type": CANCEL,
                       "job_ids": list(cancel.job_ids), "reply_to": cancel.reply_to,
                       "sent_at": cancel.sent_at}, separators=(",", ":"))


def decode_cancel(text: str | bytes) -> Cancel:
    body = _load(text, CANCEL, {"job_ids", "reply_to", "sent_at"}, set())
    ids = body["job_ids"]
    if not isinstance(ids, list) or not 0 < len(ids) <= MAX_CANCEL_IDS:
        raise wire.WireError(f"job_ids must be a list of 1 to {MAX_CANCEL_IDS} job ids")
    for job_id in ids:
        _uuid(job_id)
    if body["reply_to"] is not None and not isinstance(body["reply_to"], str):
        raise wire.WireError("reply_to must be a queue URL or null")
    return Cancel(tuple(ids), body["reply_to"], _number(body, "sent_at"))


def encode_answer(answer: CancelAnswer) -> str:
    return json.dumps({"version": wire.WIRE_VERSION, "type": CANCEL_ANSWER,
                       "job_id": answer.job_id, "outcome": answer.outcome,
                       "worker": answer.worker, "message": answer.message},
                      separators=(",", ":"))


def decode_answer(text: str | bytes) -> CancelAnswer:
    body = _load(text, CANCEL_ANSWER, {"job_id", "outcome", "worker", "message"}, set())
    _uuid(body["job_id"])
    if body["outcome"] not in OUTCOMES:
        raise wire.WireError(f"outcome must be one of {', '.join(OUTCOMES)}")
    if not isinstance(body["worker"], str) or not isinstance(body["message"], str):
        raise wire.WireError("worker and message must be strings")
    return CancelAnswer(body["job_id"], body["outcome"], body["worker"], body["message"])


def _load(text: str | bytes, kind: str, required: set[str], optional: set[str]) -> dict:
    try:
        body = wire.parse_json(text)
    except ValueError as exc:
        raise wire.WireError(f"the {kind} message is not valid JSON: {exc}") from None
    if not isinstance(body, dict) or body.get("type") != kind:
        raise wire.WireError(f"not a {kind} message")
    if body.get("version") != wire.WIRE_VERSION:
        raise wire.WireError(f"unsupported wire version {body.get('version')!r}; this side "
                             f"speaks {wire.WIRE_VERSION}")
    missing = sorted(required - body.keys())
    unknown = sorted(body.keys() - required - optional - {"version", "type"})
    if missing:
        raise wire.WireError(f"the {kind} message lacks the field(s) {', '.join(missing)}")
    if unknown:
        raise wire.WireError(f"the {kind} message has unknown field(s) "
                             f"{wire.shown(', '.join(unknown))}")
    return body


def _uuid(value: Any) -> None:
    if not wire._is_uuid(value):
        raise wire.WireError(f"a job id must be a UUID string, got {wire.shown(value)}")


def _number(body: dict, name: str) -> float:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise wire.WireError(f"{name} must be a number")
    return float(value)
