"""The worker's side of S3: job inputs, outputs and stored results, under the job's own keys.

`S3Store` is the real one; tests use an in-memory store of the same shape (tests/fakes.py).
"""

from __future__ import annotations

from typing import Any, BinaryIO, Protocol

from botocore.exceptions import ClientError

from . import contract, wire


class Store(Protocol):
    def open(self, key: str, max_bytes: int) -> Any: ...
    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def put_result(self, result: wire.Result) -> None: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, keys: list[str]) -> None: ...


class S3File:
    """An input object (a registry.JobFile): its size is known before a byte is read."""

    def __init__(self, s3: Any, bucket: str, key: str, max_bytes: int) -> None:
        self._s3, self._bucket = s3, bucket
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
            return self._s3.get_object(Bucket=self._bucket, Key=self.key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
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


class S3Store:
    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def open(self, key: str, max_bytes: int) -> S3File:
        return S3File(self.s3, self.bucket, key, max_bytes)

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
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True

    def delete(self, keys: list[str]) -> None:
        """Delete objects (DELETE requests are not billed); a missing one is no error."""
        for start in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": key} for key in keys[start:start + 1000]], "Quiet": True})
