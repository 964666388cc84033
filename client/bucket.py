"""A job's objects in the bucket: input files up in one PUT, large args, results and outputs down.

Plain functions of an S3 client and the bucket's name; `api.Client` binds them to its
stack. Sending and receiving messages stay in `api.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError

from worker_src import aws, contract, wire

from . import names
from .errors import AwsUnavailable, ClientFailure, aws_call

# Files go up in one PUT, not in 8 MB parts that are each billed as a request
# (kinds take at most 200 MB per file).
SINGLE_PUT = TransferConfig(multipart_threshold=256 * 1024 * 1024)


def upload(s3: Any, bucket: str, job_id: str, name: str, source: Path | BinaryIO) -> str:
    """Put a file (a path, or a binary stream read once) at inputs/<job_id>/<name>; its key."""
    key = contract.input_key(job_id, names.safe_name(name))
    try:
        if isinstance(source, Path):
            aws_call(s3.upload_file, Filename=str(source), Bucket=bucket, Key=key,
                     Config=SINGLE_PUT)
        else:
            aws_call(s3.upload_fileobj, Fileobj=source, Bucket=bucket, Key=key,
                     Config=SINGLE_PUT)
    except S3UploadFailedError as exc:  # boto3's own, outside botocore's errors
        raise AwsUnavailable(f"upload of {name} failed: {exc}") from None
    return key


def job_with_args_in_s3(s3: Any, bucket: str, job: wire.Job) -> str:
    """Store a job's args (too large for a message) at args/<job_id>; the job's body naming them."""
    key = contract.args_key(job.job_id)
    aws_call(s3.put_object, Bucket=bucket, Key=key,
             Body=json.dumps(job.args, separators=(",", ":")).encode(),
             ContentType="application/json")
    return wire.encode_job(wire.Job(job_id=job.job_id, kind=job.kind, args=None,
                                    reply_to=job.reply_to, submitted_at=job.submitted_at,
                                    args_key=key))


def read_object(s3: Any, bucket: str, key: str, limit: int | None = None) -> bytes | None:
    """An object's bytes (at most `limit`), or None if there is no such object; any other
    failure is AwsUnavailable."""
    try:
        return aws_call(s3.get_object, Bucket=bucket, Key=key)["Body"].read(limit)
    except AwsUnavailable as exc:
        if aws.object_missing(exc):
            return None
        raise


def fetch_result(s3: Any, bucket: str, job_id: str) -> wire.Result:
    """A job's result stored in S3 (jobs sent with wait=False, or undeliverable)."""
    body = read_object(s3, bucket, contract.result_key(job_id))
    if body is None:
        raise ClientFailure(
            f"no stored result for job {job_id}: it is still queued or running, "
            f"its result was delivered to a waiting client, or it expired")
    return wire.decode_result(body)


def open_output(s3: Any, bucket: str, key: str) -> Any:
    """A streaming body of an output object (one GET)."""
    return aws_call(s3.get_object, Bucket=bucket, Key=key)["Body"]


def download_output(s3: Any, bucket: str, key: str, destination: Path, *,
                    overwrite: bool = False) -> Path:
    """Stream the object to `destination` (or its next free numbered name); the path.

    One GET (download_file would send a HeadObject first). A failed download leaves
    no file; an existing file is replaced only if `overwrite` (names.write_new).
    """
    body = open_output(s3, bucket, key)
    try:
        return names.write_new(body, destination, overwrite=overwrite)
    except BotoCoreError as exc:
        raise AwsUnavailable(f"download of {key} failed: {exc}") from None
