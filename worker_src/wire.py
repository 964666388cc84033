"""The wire format: the job and result messages that client and worker exchange.

This module is the one definition of both messages. The worker and the client
import it, the tests test it, and docs/wire-format.md with
docs/wire-format.schema.json documents it. Standard library only: the client
imports it with boto3 as its sole dependency.

A job (client -> requests queue):

    {"version": 1, "job_id": "<uuid4>", "kind": "stats",
     "args": {"numbers": [3, 1, 2]},
     "reply_to": "https://sqs.../<stack>-reply-<random>" | null,
     "submitted_at": 1764219000.123}

`args` may be replaced by `"args_key": "inputs/<job_id>/args.json"` when the
arguments do not fit in one SQS message; the worker then reads them from S3.
`reply_to` null means "nobody waits": the result goes to S3 only.

A result (worker -> reply queue, and/or S3 `results/<job_id>.json`):

    {"version": 1, "job_id": "<uuid4>", "ok": true, "value": {...},
     "timing": {"queued_s": 0.012, "run_s": 0.001}, "worker": "host:pid",
     "attempt": 1}
    {"version": 1, "job_id": "<uuid4>", "ok": false,
     "error": {"code": "bad_input", "message": "'x' is not an integer"}, ...}

Numbers in a result's value travel with every digit: the worker may put a
`decimal.Decimal` in a value, which `dumps` writes as a JSON number in full (no
exponent), and `decode_result` reads numbers with a fraction or exponent back as
`decimal.Decimal` (`json.loads(text, parse_float=Decimal)`), so nothing is rounded
to a float on either side. Integers are exact in JSON and in Python anyway.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

WIRE_VERSION = 1

# A kind's name (the registry in registry.py says which kinds a worker runs).
KIND_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")

# Stable error codes. Clients may branch on them; never rename one.
BAD_INPUT = "bad_input"  # the job can never succeed as sent
NOT_FOUND = "not_found"  # an S3 object the job names does not exist
TOO_LARGE = "too_large"  # the input exceeds what a worker may hold
FORBIDDEN = "forbidden"  # e.g. a reply queue outside the stack
INTERNAL = "internal"  # the worker failed on every allowed attempt
TIME_LIMIT = "time_limit"  # the job ran past its kind's time limit and was stopped
CANCELLED = "cancelled"  # a cancel stopped the job before it ran, or while it ran
ERROR_CODES = (BAD_INPUT, NOT_FOUND, TOO_LARGE, FORBIDDEN, INTERNAL, TIME_LIMIT, CANCELLED)

# SQS accepts message bodies up to 1 MiB; beyond this, args travel through S3.
MAX_MESSAGE_BYTES = 1024 * 1024

# The contract allows integers of any size. CPython 3.11 refuses to convert
# integers of more than 4300 digits to or from text unless this is lifted.
if sys.get_int_max_str_digits() != 0:
    sys.set_int_max_str_digits(0)


class JobError(Exception):
    """A job that cannot succeed: becomes an error result, never a retry."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message


class WireError(JobError):
    """A message that does not follow this format.

    Carries whatever could be read of the job (its id, its reply queue) so the
    worker can still tell the sender what was wrong.
    """

    def __init__(
        self, message: str, job_id: str | None = None, reply_to: str | None = None
    ) -> None:
        super().__init__(BAD_INPUT, message)
        self.job_id = job_id
        self.reply_to = reply_to


@dataclass(frozen=True)
class Job:
    job_id: str
    kind: str
    args: dict[str, Any] | None
    reply_to: str | None
    submitted_at: float
    args_key: str | None = None


@dataclass(frozen=True)
class Result:
    job_id: str
    ok: bool
    value: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    timing: dict[str, float] = field(default_factory=dict)
    worker: str | None = None
    attempt: int | None = None


def dumps(value: Any, **options: Any) -> str:
    """JSON text as json.dumps writes it, with each finite Decimal as a JSON number in full.

    The standard library cannot write a number it does not know as a number, so each
    Decimal goes out as a placeholder string unique to this call, then replaced.
    """
    numbers: list[str] = []
    mark = f"\x00{uuid.uuid4().hex}:"

    def number(item: Any) -> str:
        if isinstance(item, Decimal) and item.is_finite():
            numbers.append(format(item, "f"))
            return f"{mark}{len(numbers) - 1}"
        raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")

    text = json.dumps(value, default=number, **options)
    if not numbers:
        return text
    placeholder = re.compile(re.escape(json.dumps(mark)[:-1]) + r'(\d+)"')
    return placeholder.sub(lambda match: numbers[int(match.group(1))], text)


def loads(text: str | bytes) -> Any:
    """JSON text read without loss: numbers with a fraction or exponent as Decimal."""
    return json.loads(text, parse_float=Decimal)


def new_job_id() -> str:
    return str(uuid.uuid4())


def encode_job(job: Job) -> str:
    body: dict[str, Any] = {
        "version": WIRE_VERSION,
        "job_id": job.job_id,
        "kind": job.kind,
        "reply_to": job.reply_to,
        "submitted_at": job.submitted_at,
    }
    if job.args_key is not None:
        body["args_key"] = job.args_key
    else:
        body["args"] = job.args
    return json.dumps(body, separators=(",", ":"))


def decode_job(text: str | bytes) -> Job:
    """Parse and validate a job message; raise WireError saying what is wrong."""
    body = _load_object(text, "job")
    job_id = body.get("job_id") if _is_uuid(body.get("job_id")) else None
    reply_to = body.get("reply_to") if isinstance(body.get("reply_to"), str) else None

    def fail(message: str) -> WireError:
        return WireError(message, job_id=job_id, reply_to=reply_to)

    _check_version(body, fail)
    _check_fields(body, {"version", "job_id", "kind", "reply_to", "submitted_at"},
                  {"args", "args_key"}, fail)
    if job_id is None:
        raise fail(f"job_id must be a UUID string, got {body['job_id']!r}")
    kind = body["kind"]
    if not isinstance(kind, str) or not KIND_NAME.fullmatch(kind):
        raise fail(f"kind must be a job kind's name (lower-case letters, digits, _), "
                   f"got {kind!r}")
    if body["reply_to"] is not None and not isinstance(body["reply_to"], str):
        raise fail("reply_to must be a queue URL or null")
    submitted_at = body["submitted_at"]
    if isinstance(submitted_at, bool) or not isinstance(submitted_at, (int, float)):
        raise fail("submitted_at must be a number of seconds since the epoch")
    has_args, has_key = "args" in body, "args_key" in body
    if has_args == has_key:
        raise fail("a job carries exactly one of 'args' and 'args_key'")
    if has_args and not isinstance(body["args"], dict):
        raise fail("args must be a JSON object")
    if has_key and not isinstance(body["args_key"], str):
        raise fail("args_key must be an S3 key")
    return Job(
        job_id=job_id,
        kind=kind,
        args=body.get("args"),
        reply_to=reply_to,
        submitted_at=float(submitted_at),
        args_key=body.get("args_key"),
    )


def encode_result(result: Result) -> str:
    body: dict[str, Any] = {
        "version": WIRE_VERSION,
        "job_id": result.job_id,
        "ok": result.ok,
    }
    if result.ok:
        body["value"] = result.value
    else:
        body["error"] = {"code": result.error_code, "message": result.error_message}
    body["timing"] = result.timing
    if result.worker is not None:
        body["worker"] = result.worker
    if result.attempt is not None:
        body["attempt"] = result.attempt
    return dumps(body, separators=(",", ":"))


def decode_result(text: str | bytes) -> Result:
    """Parse and validate a result message; raise WireError saying what is wrong."""
    body = _load_object(text, "result", exact=True)
    if isinstance(body.get("timing"), dict):
        body["timing"] = {key: float(value) if isinstance(value, Decimal) else value
                          for key, value in body["timing"].items()}

    def fail(message: str) -> WireError:
        return WireError(message)

    _check_version(body, fail)
    outcome = "value" if body.get("ok") is True else "error"
    _check_fields(body, {"version", "job_id", "ok", outcome},
                  {"timing", "worker", "attempt"}, fail)
    if not _is_uuid(body["job_id"]):
        raise fail("job_id must be a UUID string")
    if not isinstance(body["ok"], bool):
        raise fail("ok must be true or false")
    if body["ok"]:
        if not isinstance(body["value"], dict):
            raise fail("value must be a JSON object")
        return Result(job_id=body["job_id"], ok=True, value=body["value"],
                      timing=body.get("timing") or {}, worker=body.get("worker"),
                      attempt=body.get("attempt"))
    error = body["error"]
    if not (isinstance(error, dict) and isinstance(error.get("code"), str)
            and isinstance(error.get("message"), str)):
        raise fail("error must be an object with a string code and message")
    return Result(job_id=body["job_id"], ok=False, error_code=error["code"],
                  error_message=error["message"], timing=body.get("timing") or {},
                  worker=body.get("worker"), attempt=body.get("attempt"))


def ok_result(job_id: str, value: dict[str, Any], **extra: Any) -> Result:
    return Result(job_id=job_id, ok=True, value=value, **extra)


def error_result(job_id: str, code: str, message: str, **extra: Any) -> Result:
    return Result(job_id=job_id, ok=False, error_code=code, error_message=message, **extra)


def _load_object(text: str | bytes, what: str, exact: bool = False) -> dict[str, Any]:
    try:
        body = loads(text) if exact else json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"the {what} message is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise WireError(f"the {what} message must be a JSON object")
    return body


def _check_version(body: dict[str, Any], fail: Any) -> None:
    version = body.get("version")
    if version != WIRE_VERSION:
        raise fail(f"unsupported wire version {version!r}; this side speaks {WIRE_VERSION}")


def _check_fields(body: dict[str, Any], required: set[str], optional: set[str],
                  fail: Any) -> None:
    missing = sorted(required - body.keys())
    if missing:
        raise fail(f"missing field(s): {', '.join(missing)}")
    unknown = sorted(body.keys() - required - optional)
    if unknown:
        raise fail(f"unknown field(s): {', '.join(unknown)}")


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
