"""Integers for the stats kind from a file or stdin: checked as read, streamed to S3, shown in full.

    with open("numbers.txt", "rb") as file:
        key, count = upload_numbers(client, job_id, file, name="numbers.txt")
    client.submit([("stats", {"file": key})], job_ids=[job_id])

The text is checked with the worker's own rules (worker_src/jobs/_stats_text.py)
while it is read, in pieces of 64 KiB, and uploaded as it is checked: as a
multipart upload of 5 MiB parts, at most 3 of them in memory, so the client holds
a few tens of MB whatever the size of the file. The first bad token stops the
upload with its line and column (UsageError, exit 2); boto3 then aborts the
multipart upload, and a file under 5 MiB is checked whole before its single PUT,
so nothing is left in S3.
"""

from __future__ import annotations

import io
import re
from decimal import Decimal
from typing import Any, BinaryIO

from boto3.s3.transfer import TransferConfig

from worker_src import contract
from worker_src import integer_text as text

from . import api

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


def upload_numbers(client: api.Client, job_id: str, stream: BinaryIO,
                   name: str = "<stdin>") -> tuple[str, int]:
    """Check and upload a text of integers as job_id's input; return its key and count.

    UsageError (naming `name`, the line and the column) at the first bad token, with
    nothing left in S3.
    """
    key = contract.input_key(job_id, INPUT_NAME)
    reader = NumberReader(stream)
    try:
        api.aws_call(client.s3.upload_fileobj, Fileobj=reader, Bucket=client.stack.bucket,
                     Key=key, Config=STREAMED)
    except (text.TokenError, NoIntegers) as exc:
        raise api.UsageError(f"{name}: {exc}") from None
    except OSError as exc:
        raise api.UsageError(f"cannot read {name}: {exc.strerror or exc}") from None
    return key, reader.count


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A value as the human output prints it: a long number (or "p/q") abbreviated.

    An abbreviated number keeps its first and last digits and says how many it has;
    anything else is printed as it is.
    """
    if isinstance(value, str) and not _FRACTION.fullmatch(value):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        return str(value)
    full = format(value, "f") if isinstance(value, Decimal) else str(value)
    if len(full) <= limit:
        return full
    digits = sum(char.isdigit() for char in full)
    keep = (limit - 5) // 2
    return f"{full[:keep]}...{full[-keep:]} ({digits:,} digits)"
