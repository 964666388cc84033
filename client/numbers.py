"""Integers for the stats kind: read from arguments, text, JSON or a stream, bounded, and shown.

    values = integers_from_text("3, 1 2")            # the CLI's arguments, the page's text
    with open("numbers.txt", "rb") as file:
        key, count = upload_numbers(client, job_id, file, name="numbers.txt")
    client.submit([("stats", {"file": key})], job_ids=[job_id])

Every integer is bounded while it is read (wire.MAX_INTEGER_DIGITS): a longer token is
refused, naming it, before any conversion. CPython's own conversion of text to int is
quadratic and refused beyond 4,300 digits unless that limit is lifted for the whole
process; the wire format's converters (wire.int_from_text, by halves: about 0.02 s at
100,000 digits; wire.int_text) are used instead, and the limit is never lifted.

The text of a file is checked with the worker's own rules (worker_src/integer_text.py)
while it is read, in pieces of 64 KiB, and uploaded as it is checked: as a
multipart upload of 5 MiB parts, at most 3 of them in memory, so the client holds
a few tens of MB whatever the size of the file. The first bad token stops the
upload with its line and column (UsageError, exit 2); boto3 then aborts the
multipart upload, and a file under 5 MiB is checked whole before its single PUT,
so nothing is left in S3.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, BinaryIO

from boto3.s3.transfer import TransferConfig

from worker_src import contract, wire
from worker_src import integer_text as text

from .errors import UsageError, aws_call

INPUT_NAME = "numbers.txt"
# S3's smallest part (the last may be smaller): 10,000 parts reach 50 GiB.
PART_BYTES = 5 * 1024 * 1024
STREAMED = TransferConfig(multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES,
                          max_concurrency=3)
# Parts read ahead of the upload: boto3 holds each in memory (the stream cannot seek).
# Measured on a 204 MB file: 3 of 5 MiB, 84 MB peak (4 of 8 MiB took 100 MB, no faster;
# 2 of 5 MiB took 76 MB but 40% longer: the check waited for a free part).
STREAMED.max_in_memory_upload_chunks = 3
# The human output abbreviates a number longer than this; --json gives every digit.
SHOWN_CHARS = 60
_FRACTION = re.compile(r"-?[0-9]+/[0-9]+")
INTEGER = re.compile(r"[+-]?[0-9]+")
_SEPARATORS = re.compile(r"[\s,]+")
_SHOWN_TOKEN_CHARS = 40


class NotAnInteger(ValueError):
    """A token that is not an integer, or has more digits than an integer may have."""


# ---- reading integers ---------------------------------------------------------------------

def parse_integer(token: str) -> int:
    """The integer a token spells (`[+-]?[0-9]+`, at most MAX_INTEGER_DIGITS digits).

    NotAnInteger naming the token otherwise; a token too long is refused by its length,
    before any conversion.
    """
    digits = len(token) - (token[:1] in ("+", "-"))
    if digits > wire.MAX_INTEGER_DIGITS:
        raise NotAnInteger(f"{shown_token(token)} has more digits than an integer may have "
                           f"(at most {wire.MAX_INTEGER_DIGITS:,})")
    if not INTEGER.fullmatch(token):
        raise NotAnInteger(f"{shown_token(token)} is not an integer")
    return wire.int_from_text(token)


def shown_token(token: str) -> str:
    """A token as an error message names it: quoted, escaped, a long one cut."""
    quoted = repr(token[:_SHOWN_TOKEN_CHARS])
    if len(token) > _SHOWN_TOKEN_CHARS:
        quoted += f"... ({len(token):,} characters)"
    return quoted


def split_tokens(text: str) -> list[str]:
    """The tokens of a text of integers: separated by whitespace or commas."""
    return [token for token in _SEPARATORS.split(text) if token]


def read_integers(tokens: Iterable[str]) -> list[int]:
    """The integers of the tokens; UsageError naming the first bad one and its position."""
    values = []
    for position, token in enumerate(tokens, start=1):
        try:
            values.append(parse_integer(token))
        except NotAnInteger as exc:
            raise UsageError(f"{exc} (item {position})") from None
    if not values:
        raise UsageError("no integers given: pass them as arguments, with --file, "
                         "or on stdin")
    return values


def integers_from_text(text: str) -> list[int]:
    """The integers of a text (`3 1, 2`), as `stats` reads its arguments and the page its box."""
    return read_integers(split_tokens(text))


def integers_from_json(values: Any) -> list[int]:
    """A decoded JSON list as integers (the page's {"numbers": [...]}), else UsageError
    naming the first offending item."""
    if not isinstance(values, list):
        raise UsageError(f"numbers must be a list of integers, got {type(values).__name__}")
    if not values:
        raise UsageError("numbers is an empty list: nothing to compute")
    for position, value in enumerate(values, start=1):
        if type(value) is not int:  # bool is an int in Python, not in JSON
            token = json.dumps(value)
            token = token if len(token) <= 40 else token[:37] + "..."
            raise UsageError(f"item {position} of {len(values)} ({token}) is not an integer")
    return values


def load_json(data: str | bytes) -> Any:
    """A JSON document whose integers are bounded as every integer is; ValueError if not.

    A document nested too deeply for the parser is a ValueError too.
    """
    try:
        return json.loads(data, parse_int=parse_integer)
    except RecursionError:
        raise ValueError("the JSON document is nested too deeply") from None


class NoIntegers(ValueError):
    """The text holds no integer at all."""


class NumberReader(io.RawIOBase):
    """A binary stream that checks the integers it passes on; TokenError at the first bad one.

    read(n) returns n bytes unless the stream has ended, and checks the end of the
    text before returning its last bytes: a reader of it (boto3) never sees the
    end of a text that is not all integers. `count` is the integers read so far.
    Lines are counted as it reads only if `raw` cannot seek (stdin); a file is read
    again to find the line and column of a bad token.
    """

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._start = raw.tell() if raw.seekable() else None
        self._splitter = text.Splitter(lines=self._start is None)
        self._ended = False
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._ended:
            return b""
        want = None if size is None or size < 0 else size
        parts = []
        got = 0
        try:
            while want is None or got < want:
                data = self._raw.read(want - got if want is not None else PART_BYTES)
                if not data:
                    self._end()
                    break
                self._check(self._splitter.feed(data))
                parts.append(data)
                got += len(data)
        except text.TokenError as exc:
            self._locate(exc)
            raise
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def _check(self, pieces: list[text.Piece]) -> None:
        for piece in pieces:
            self.count += text.count_tokens(piece)

    def _locate(self, error: text.TokenError) -> None:
        if error.line is None and self._start is not None:
            self._raw.seek(self._start)
            error.line, error.column = text.locate(self._raw, error.offset)

    def _end(self) -> None:
        self._check(self._splitter.end())
        self._ended = True
        if not self.count:
            raise NoIntegers("holds no integers (they are separated by whitespace or commas)")


# ---- a stream of integers, checked as it goes up -------------------------------------------

def upload_numbers(client: Any, job_id: str, stream: BinaryIO,
                   name: str = "<stdin>") -> tuple[str, int]:
    """Check and upload a text of integers as job_id's input; return its key and count.

    `client` is an api.Client (not imported here: the library imports this module).

    UsageError (naming `name`, the line and the column) at the first bad token, with
    nothing left in S3.
    """
    key = contract.input_key(job_id, INPUT_NAME)
    reader = NumberReader(stream)
    try:
        aws_call(client.s3.upload_fileobj, Fileobj=reader, Bucket=client.stack.bucket,
                     Key=key, Config=STREAMED)
    except (text.TokenError, NoIntegers) as exc:
        raise UsageError(f"{name}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None
    return key, reader.count


# ---- showing them ----------------------------------------------------------------------------

def value_lines(value: dict[str, Any]) -> list[str]:
    """A result's value as aligned `key  value` lines, long numbers abbreviated (the CLI's
    output and the page's text alike)."""
    width = max((len(key) for key in value), default=0)
    return [f"{key:<{width}}  {shown(item)}" for key, item in value.items()]


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A value as the human output prints it: a long number (or "p/q") abbreviated.

    An abbreviated number keeps its first and last digits and says how many it has;
    anything else is printed as it is.
    """
    if isinstance(value, str) and not _FRACTION.fullmatch(value):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        return str(value)
    full = (format(value, "f") if isinstance(value, Decimal)
            else wire.int_text(value) if isinstance(value, int) else value)
    if len(full) <= limit:
        return full
    digits = sum(char.isdigit() for char in full)
    keep = (limit - 5) // 2
    return f"{full[:keep]}...{full[-keep:]} ({digits:,} digits)"
