"""The worker's side of S3: job inputs, outputs and stored results, under the job's own keys.

`S3Store` is the real one; `MemoryStore` stands in for it in memory (tests, and a new
kind's test through the real loop: docs/adding-a-job.md).

Fork safety (the work horse is a forked child, workhorse.py): a child must never send a
request over a connection of its parent's pools (both would read the same socket). The
child makes its own client (`connect`, which the work horse calls as it starts, before its
first job; by default from a new session) and keeps it for its life.
"""

from __future__ import annotations

import io
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from botocore.exceptions import ClientError

from . import aws, contract, wire


class Store(Protocol):
    """The worker's object calls, on the stack's bucket, by key."""

    def connect(self) -> None:
        """Make the store's connection now (a forked work horse does, before its first job)."""

    def open(self, key: str, max_bytes: int) -> Any:
        """The object at `key` as a registry.JobFile (`.name`, `.size`, `.open()`, `.read()`,
        `.close()`), its size known before a byte is read. Raises wire.JobError:
        `not_found` if there is no such object, `too_large` if it is over `max_bytes`."""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write `data` at `key` (replacing what was there) with its content type."""

    def put_result(self, result: wire.Result) -> None:
        """Store `result` as JSON at contract.result_key(result.job_id)."""

    def exists(self, key: str) -> bool:
        """Whether an object is at `key`."""

    def delete(self, keys: list[str]) -> None:
        """Delete the objects at `keys`; a missing one is no error."""


class S3File:
    """An input object (a registry.JobFile): its size is known before a byte is read."""

    def __init__(self, store: S3Store, key: str, max_bytes: int) -> None:
        self._store, self._bucket = store, store.bucket
        self.key = key
        self.name = key.rsplit("/", 1)[-1]
        response = self._get()
        self.size = int(response["ContentLength"])
        if self.size > max_bytes:
            response["Body"].close()
            raise wire.JobError(wire.TOO_LARGE, f"{self.name} is {self.size:,} bytes; this "
                                                f"kind takes at most {max_bytes:,} per file")
        self._first: BinaryIO | None = response["Body"]

    def _get(self) -> dict[str, Any]:
        try:
            return self._store.s3.get_object(Bucket=self._bucket, Key=self.key)
        except ClientError as exc:
            if aws.object_missing(exc):
                raise wire.JobError(wire.NOT_FOUND,
                                    f"s3://{self._bucket}/{self.key} does not exist") from None
            raise

    def open(self) -> BinaryIO:
        """A stream of the object; the first call reuses the GET that measured it."""
        if self._first is not None:
            body, self._first = self._first, None
            return body
        return self._get()["Body"]

    def read(self) -> bytes:
        with self.open() as body:
            return body.read()

    def close(self) -> None:
        if self._first is not None:
            self._first.close()
            self._first = None


def fresh_client_like(s3: Any) -> Any:
    """A new S3 client (new session, new connections) for the region of `s3`."""
    return aws.make_client(aws.make_session(region=s3.meta.region_name), "s3")


class S3Store:
    """The Store on S3 (a boto3 client), with a client of its own in a forked child."""

    def __init__(self, s3: Any, bucket: str,
                 connect: Callable[[Any], Any] = fresh_client_like) -> None:
        self._s3: Any = s3
        self._connect = connect
        self._forked_from: Any = None  # the parent's client, in a forked child
        self.bucket = bucket
        forget = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: (forget() or (lambda: None))())

    @property
    def s3(self) -> Any:
        if self._s3 is None:  # first use in a forked child
            self._s3 = self._connect(self._forked_from)
        return self._s3

    def connect(self) -> None:
        """Make the client now (a work horse does as it starts, before its first job)."""
        _ = self.s3

    def _after_fork(self) -> None:
        if self._s3 is not None:
            self._forked_from, self._s3 = self._s3, None

    def open(self, key: str, max_bytes: int) -> S3File:
        return S3File(self, key, max_bytes)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def put_result(self, result: wire.Result) -> None:
        self.put(contract.result_key(result.job_id), wire.encode_result(result).encode(),
                 "application/json")

    def exists(self, key: str) -> bool:
        """One HEAD request (billed as a GET)."""
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if aws.object_missing(exc):
                return False
            raise
        return True

    def delete(self, keys: list[str]) -> None:
        """Delete objects (DELETE requests are not billed); a missing one is no error."""
        for start in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": key} for key in keys[start:start + 1000]], "Quiet": True})


class MemoryFile:
    """A registry.JobFile in memory (what MemoryStore.open returns); `opened` counts opens."""

    def __init__(self, key: str, data: bytes) -> None:
        self.key, self.name, self.size, self._data = key, key.rsplit("/", 1)[-1], len(data), data
        self.opened = 0

    def open(self) -> io.BytesIO:
        self.opened += 1
        return io.BytesIO(self._data)

    def read(self) -> bytes:
        return self.open().read()

    def close(self) -> None:
        return None


@dataclass
class MemoryStore:
    """The Store in memory: objects by key, with their content types.

    Stands in for S3Store in tests: `open` refuses a missing or too large object with the
    same JobError codes. Tests read what was written in `objects` and `content_types` (and
    a stored result with `result`); `fail_reads` makes that many next opens raise, as a
    reset connection would.
    """

    objects: dict[str, bytes] = field(default_factory=dict)
    content_types: dict[str, str] = field(default_factory=dict)
    fail_reads: int = 0

    def connect(self) -> None:
        return None

    def open(self, key: str, max_bytes: int) -> MemoryFile:
        if self.fail_reads > 0:
            self.fail_reads -= 1
            raise ConnectionError("injected: connection reset")
        if key not in self.objects:
            raise wire.JobError(wire.NOT_FOUND, f"{key} does not exist")
        if len(self.objects[key]) > max_bytes:
            raise wire.JobError(wire.TOO_LARGE, f"{key} is over {max_bytes} bytes")
        return MemoryFile(key, self.objects[key])

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = data
        self.content_types[key] = content_type

    def put_result(self, result: wire.Result) -> None:
        self.put(contract.result_key(result.job_id), wire.encode_result(result).encode(),
                 "application/json")

    def exists(self, key: str) -> bool:
        return key in self.objects

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.objects.pop(key, None)

    def result(self, job_id: str) -> wire.Result:
        """The result stored for `job_id` (KeyError if none)."""
        return wire.decode_result(self.objects[contract.result_key(job_id)])
