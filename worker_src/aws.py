"""The one place that builds boto3 sessions and clients, for the worker and the client alike.

One botocore Config: a short connect timeout (an unreachable endpoint fails in seconds),
a read timeout above the 20 s long poll, and the SDK's standard retry mode. Tests and
fault injection patch `make_client` here and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config

AWS_CONFIG = Config(connect_timeout=5, read_timeout=30,
                    retries={"mode": "standard", "max_attempts": 4})


def region_from_environment(env: Mapping[str, str] = os.environ) -> str | None:
    """AWS_REGION (what user data writes, and most AWS SDKs read), else AWS_DEFAULT_REGION.

    boto3 reads only the second by itself.
    """
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None


def make_session(profile: str | None = None, region: str | None = None) -> boto3.Session:
    return boto3.Session(profile_name=profile, region_name=region or region_from_environment())


def make_client(session: boto3.Session, service: str, endpoint_url: str | None = None) -> Any:
    """A client for `service`; endpoint_url None: the SDK's own (AWS_ENDPOINT_URL or AWS)."""
    return session.client(service, endpoint_url=endpoint_url, config=AWS_CONFIG)


# ---- what every side asks of an AWS error, and SQS's batch limits ----------------------

# SendMessageBatch and its kin take at most 10 entries, and 1 MiB of bodies in all.
SQS_BATCH_ENTRIES = 10
SQS_BATCH_BYTES = 1024 * 1024
_MISSING_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
_MISSING_OBJECT = ("NoSuchKey", "404", "NotFound")


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, or of an error that carries one as
    `code` (the client's AwsUnavailable); '' for any other exception."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return str(getattr(exc, "code", "") or "")


def queue_missing(exc: BaseException) -> bool:
    """Whether `exc` says the SQS queue does not exist (deleted, or never created)."""
    return error_code(exc) in _MISSING_QUEUE


def object_missing(exc: BaseException) -> bool:
    """Whether `exc` says the S3 object does not exist."""
    return error_code(exc) in _MISSING_OBJECT


def error_text(exc: BaseException) -> str:
    """An AWS error as one line: `Code: message`, or the exception's type and text."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return f"{type(exc).__name__}: {exc}"
    error = response.get("Error", {})
    message = " ".join(str(error.get("Message", "")).split())
    if message.startswith("<"):
        message = "not an AWS error (an HTML page)"
    return f"{error.get('Code')}: {message[:200]}"


def sqs_batches(sizes: list[int]) -> list[range]:
    """Index ranges of items (given their body sizes in bytes) that fit one SQS batch call."""
    batches: list[range] = []
    start = total = 0
    for index, size in enumerate(sizes):
        if index > start and (index - start == SQS_BATCH_ENTRIES
                              or total + size > SQS_BATCH_BYTES):
            batches.append(range(start, index))
            start, total = index, 0
        total += size
    if start < len(sizes):
        batches.append(range(start, len(sizes)))
    return batches
