"""The wire format: the job and result messages that client and worker exchange.

This module is the one definition of both messages. The worker and the client
import it, the tests test it, and docs/wire-format.md with
docs/wire-format.schema.json documents it. Standard library only: the client
imports it with boto3 as its sole dependency.

A job (client -> requests queue):

    {"version": 1, "job_id": "<uuid4>", "kind": "stats",
     "args": {"numbers": [3, 1, 2]},
     "reply_to": "https://sqs.../<stack>_reply_<random>" | null,
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

Reading is bounded before anything is converted (docs/wire-format.md, "Limits"): an
integer of more than MAX_INTEGER_DIGITS digits is refused when its token is met, before
it becomes an int (CPython converts decimal text to int in time quadratic in its
digits); JSON nested deeper than MAX_JSON_DEPTH, NaN and Infinity are refused too. The
interpreter's own limit on int/str conversions (4300 digits) stays on for the process:
`int_from_text` and `int_text` convert longer integers here, locally.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import json_text
from .json_text import int_from_text, int_text  # noqa: F401  (the wire's number helpers)

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
# Arguments through S3 (args.json): at most this many bytes (a worker with a small memory
# budget takes less: executor.max_args_bytes).
MAX_ARGS_BYTES = 16 * 1024 * 1024
# Digits of one integer (a sign besides), in a job, in args.json and in a stats file.
# CPython reads 100,000 digits in 0.04 s, a million in 5 s: the limit keeps one token cheap.
MAX_INTEGER_DIGITS = 100_000
# A result's integers may be longer: a sum of up to 10**20 such integers.
MAX_RESULT_INTEGER_DIGITS = MAX_INTEGER_DIGITS + 20
# Nesting of JSON arrays and objects (a job needs 3; a result 4).
MAX_JSON_DEPTH = 32
# An error result's message is cut to this many characters.
MAX_ERROR_CHARS = 2000


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
    """JSON text as json.dumps writes it, with every digit of each Decimal and long int."""
    return json_text.dumps(value, **options)


def loads(text: str | bytes, max_digits: int = MAX_RESULT_INTEGER_DIGITS) -> Any:
    """JSON text read without loss (numbers with a fraction or exponent as Decimal).

    Within the limits (module docstring); ValueError names what is over one.
    """
    return json_text.loads(text, exact=True, max_digits=max_digits, max_depth=MAX_JSON_DEPTH)


def parse_json(text: str | bytes, *, max_digits: int = MAX_INTEGER_DIGITS) -> Any:
    """JSON text within the limits, numbers with a fraction or exponent as float.

    Whatever the text holds, this ends in a value or a ValueError saying what is wrong.
    """
    return json_text.loads(text, exact=False, max_digits=max_digits, max_depth=MAX_JSON_DEPTH)


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
    return dumps(body, separators=(",", ":"))


def decode_job(text: str | bytes) -> Job:
    """Parse and validate a job message; raise WireError saying what is wrong.

    Total: whatever the text holds, this returns a Job or raises WireError.
    """
    try:
        body = _load_object(text, "job", parse_json)
    except WireError as exc:  # the envelope may still say whom to tell
        exc.job_id, exc.reply_to = _salvaged(text)
        raise
    job_id = body.get("job_id") if _is_uuid(body.get("job_id")) else None
    reply_to = body.get("reply_to") if isinstance(body.get("reply_to"), str) else None

    def fail(message: str) -> WireError:
        return WireError(message, job_id=job_id, reply_to=reply_to)

    _check_version(body, fail)
    _check_fields(body, {"version", "job_id", "kind", "reply_to", "submitted_at"},
                  {"args", "args_key"}, fail)
    if job_id is None:
        raise fail(f"job_id must be a UUID string, got {shown(body['job_id'])}")
    kind = body["kind"]
    if not isinstance(kind, str) or not KIND_NAME.fullmatch(kind):
        raise fail(f"kind must be a job kind's name (lower-case letters, digits, _), "
                   f"got {shown(kind)}")
    if body["reply_to"] is not None and not isinstance(body["reply_to"], str):
        raise fail("reply_to must be a queue URL or null")
    submitted_at = body["submitted_at"]
    if not _finite_number(submitted_at):
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


def shown(value: Any, limit: int = 60) -> str:
    """A value a sender wrote, for a message: its repr (escaped, one line), cut to `limit`."""
    items = list(value.values()) if isinstance(value, dict) else value
    if isinstance(value, (dict, list)) and not (len(items) <= 8 and all(
            _shown_whole(item, limit) for item in (*items, *value))):
        text = f"a JSON {'object' if isinstance(value, dict) else 'array'}"
        return f"{text} of {len(value)} item{'s' * (len(value) != 1)}"
    if type(value) is int and value.bit_length() > 3 * limit:
        return f"an integer of {len(int_text(value)):,} digits"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


_FIELD_TEXT = {name: re.compile(rf'"{name}"\s*:\s*("(?:[^"\\]|\\.){{0,2048}}")')
               for name in ("job_id", "reply_to")}


def _salvaged(text: Any) -> tuple[str | None, str | None]:
    """The job id and reply queue of a body that does not parse, if each appears once."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return None, None
    found: list[str | None] = []
    for pattern in _FIELD_TEXT.values():
        matches = pattern.findall(text)
        try:
            value = json_text.loads(matches[0], exact=False, max_digits=0, max_depth=0) \
                if len(matches) == 1 else None
        except ValueError:
            value = None
        found.append(value if isinstance(value, str) else None)
    job_id, reply_to = found
    return (job_id if _is_uuid(job_id) else None), (reply_to if job_id else None)


def _shown_whole(item: Any, limit: int) -> bool:
    """A scalar short enough to show as it is (containers are summarised instead)."""
    if isinstance(item, (dict, list)):
        return False
    if isinstance(item, str):
        return len(item) <= limit
    return not (type(item) is int and item.bit_length() > 3 * limit)


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int too large for a float
        return False


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
    body = _load_object(text, "result", loads)
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
    """An error result; its message printable and at most MAX_ERROR_CHARS long."""
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS - 3] + "..."
    return Result(job_id=job_id, ok=False, error_code=code, error_message=printable(message),
                  **extra)


def printable(text: str) -> str:
    """`text` on one line: each non-printable character as a Python-style escape.

    What a sender wrote can hold anything (newlines, escape sequences, lone surrogates
    that SQS refuses); logs (logs.py), error messages and dead-letter reasons carry it so.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escaped(char) for char in text)


def _escaped(char: str) -> str:
    code = ord(char)
    if char in "\n\r\t":
        return repr(char)[1:-1]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
        else f"\\U{code:08x}"


def _load_object(text: str | bytes, what: str, parse: Any) -> dict[str, Any]:
    try:
        body = parse(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WireError(f"the {what} message is not valid JSON: {exc}") from None
    except ValueError as exc:  # over a limit (json_text says which)
        raise WireError(f"the {what} message is refused: {exc}") from None
    if not isinstance(body, dict):
        raise WireError(f"the {what} message must be a JSON object")
    return body


def _check_version(body: dict[str, Any], fail: Any) -> None:
    version = body.get("version")
    if type(version) is not int or version != WIRE_VERSION:
        raise fail(f"unsupported wire version {shown(version)}; this side speaks "
                   f"{WIRE_VERSION}")


def _check_fields(body: dict[str, Any], required: set[str], optional: set[str],
                  fail: Any) -> None:
    missing = sorted(required - body.keys())
    if missing:
        raise fail(f"missing field(s): {', '.join(missing)}")
    unknown = sorted(body.keys() - required - optional)
    if unknown:
        names = [name if name.isprintable() and len(name) <= 40 else shown(name, 40)
                 for name in unknown[:5]]
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise fail(f"unknown field(s): {', '.join(names)}{more}")


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
