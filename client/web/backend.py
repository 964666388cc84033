"""Every call the web tier makes into the client library, the registry and the wire format.

One module, so that a change of the library's interface is adapted here only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import PurePath
from typing import Any, BinaryIO

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError

from worker_src import contract, registry, wire

from .. import api
from .errors import bad_input

IMAGE_TYPES = {  # magic bytes -> the only content types this server sends for job files
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
    b"BM": "image/bmp",
    b"II*\x00": "image/tiff",
    b"MM\x00*": "image/tiff",
}
SERVABLE_TYPES = set(IMAGE_TYPES.values()) | {"image/webp"}


# ---- the job catalogue ----------------------------------------------------------------

def kinds() -> dict[str, registry.Kind]:
    """The registered kinds that the stack's workers run.

    Until the worker runs any registered kind, only wire.JOB_KINDS are accepted there.
    """
    accepted = getattr(wire, "JOB_KINDS", None)
    return {name: kind for name, kind in registry.kinds().items()
            if accepted is None or name in accepted}


def image_kinds() -> dict[str, registry.Kind]:
    return {name: kind for name, kind in kinds().items()
            if kind.output == registry.IMAGE and kind.main_input is not None}


def describe_kinds() -> list[dict[str, Any]]:
    return [kind.describe() for kind in kinds().values()]


def check_image_args(kind: registry.Kind, texts: dict[str, str],
                     file_keys: dict[str, str]) -> dict[str, Any]:
    """The kind's arguments from form fields (text) and uploaded files (keys), checked."""
    args: dict[str, Any] = dict(file_keys)
    try:
        for name, text in texts.items():
            arg = kind.arg(name)
            if arg.type == registry.FILE:
                raise registry.ArgError(name, f"{name} is a file: send it as a file field")
            if text != "":
                args[name] = arg.parse(text)
        return kind.check_args(args)
    except registry.ArgError as exc:
        raise bad_input(exc.message) from None


def job_args(kind: registry.Kind, job_id: str, checked: dict[str, Any]) -> dict[str, Any]:
    """The job's wire arguments.

    Until the worker split, the worker's equalize takes input_key and output_key.
    """
    if kind.name == "equalize":
        key = checked[kind.main_input or "image"]
        return {"input_key": key, "output_key": api.output_key_for(key)}
    return checked


def check_numbers(numbers: Any) -> list[int]:
    """A non-empty list of integers, else a 400 naming the first offending item."""
    if not isinstance(numbers, list):
        raise bad_input(f"numbers must be a list of integers, got {type(numbers).__name__}")
    if not numbers:
        raise bad_input("numbers is an empty list: nothing to compute")
    for position, value in enumerate(numbers, start=1):
        if type(value) is not int:  # bool is an int in Python, not in JSON
            token = json.dumps(value)
            token = token if len(token) <= 40 else token[:37] + "..."
            raise bad_input(f"item {position} of {len(numbers)} ({token}) is not an integer")
    return numbers


def parse_numbers(text: str) -> list[int]:
    """Integers from text, split and refused exactly as `python -m client stats` does."""
    from .. import cli

    try:
        return cli.read_integers(cli.split_tokens(text))
    except api.UsageError as exc:
        raise bad_input(str(exc)) from None


def stats_text(value: dict[str, Any]) -> str:
    """The statistics as `python -m client stats` prints them (client/cli.py run_stats)."""
    width = max(len(key) for key in value)
    return "\n".join(f"{key:<{width}}  {item}" for key, item in value.items())


def download_name(kind: str, original: str, output_key: str) -> str:
    """The CLI's output name: <stem>-equalized<ext> for equalize, <stem>-<kind><ext> else."""
    stem = PurePath(api.safe_name(original)).stem or "image"
    suffix = PurePath(output_key).suffix
    return f"{stem}-{'equalized' if kind == 'equalize' else kind}{suffix}"


# ---- files in the bucket ----------------------------------------------------------------

def input_key(job_id: str, name: str) -> str:
    key = contract.input_key(job_id, api.safe_name(name))
    # inputs/<job>/args.json holds a job's arguments when they are too large for SQS.
    return key if key != contract.args_key(job_id) else contract.input_key(job_id, "_args.json")


def sniff_content_type(head: bytes) -> str:
    for magic, content_type in IMAGE_TYPES.items():
        if head.startswith(magic):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def upload(client: api.Client, key: str, file: BinaryIO, content_type: str) -> None:
    """One PUT, streamed from `file` (a spooled upload: at most 1 MiB of it in memory)."""
    try:
        api.aws_call(client.s3.upload_fileobj, Fileobj=file, Bucket=client.stack.bucket,
                     Key=key, ExtraArgs={"ContentType": content_type}, Config=api.SINGLE_PUT)
    except S3UploadFailedError as exc:
        raise api.AwsUnavailable(f"upload of {key} failed: {exc}") from None


def open_object(client: api.Client, key: str) -> tuple[Iterator[bytes], str, int]:
    """The object's bytes as a stream of chunks, its content type (images only) and size."""
    response = api.aws_call(client.s3.get_object, Bucket=client.stack.bucket, Key=key)
    content_type = response.get("ContentType", "")
    if content_type not in SERVABLE_TYPES:
        content_type = "application/octet-stream"

    def chunks() -> Iterator[bytes]:
        try:
            yield from response["Body"].iter_chunks(64 * 1024)
        except BotoCoreError:
            return  # the client sees a short body; nothing else can be said mid-stream
        finally:
            response["Body"].close()

    return chunks(), content_type, int(response["ContentLength"])


def read_object(client: api.Client, key: str) -> bytes:
    return api.aws_call(client.s3.get_object, Bucket=client.stack.bucket, Key=key)["Body"].read()


# ---- jobs and results ---------------------------------------------------------------------

def new_job_id() -> str:
    return wire.new_job_id()


def reply_queue(client: api.Client) -> str:
    """This client's reply queue, created now (it lives as long as the client)."""
    return client._reply_queue()


def submit(client: api.Client, job_id: str, kind: str, args: dict[str, Any]) -> None:
    client.submit([(kind, args)], wait=True, job_ids=[job_id])
    client._pending.discard(job_id)  # the dispatcher receives; the library never waits on it


def receive_results(client: api.Client, queue_url: str, wait_seconds: int) -> list[wire.Result]:
    """One long poll of the reply queue: the results that came, deleted from the queue.

    Stands in for Client.receive_results until the library has it. Takes the queue URL
    so that a poll after close() cannot create a new queue.
    """
    response = api.aws_call(client.sqs.receive_message, QueueUrl=queue_url,
                            MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds)
    messages = response.get("Messages", [])
    if not messages:
        return []
    api.aws_call(client.sqs.delete_message_batch, QueueUrl=queue_url,
                 Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                          for i, m in enumerate(messages)])
    results = []
    for message in messages:
        try:
            results.append(wire.decode_result(message["Body"]))
        except wire.WireError:
            continue  # not a result: nothing waits on it
    return results


def wake(client: api.Client, queue_url: str) -> None:
    """Put a message that is not a result on the reply queue: a long poll on it returns."""
    api.aws_call(client.sqs.send_message, QueueUrl=queue_url, MessageBody='{"wake": true}')


def stored_result(client: api.Client, job_id: str) -> wire.Result | None:
    """The job's result from S3 (a reply that could not be delivered), or None."""
    try:
        return client.fetch_result(job_id)
    except (api.ClientFailure, wire.WireError):
        return None


def close(client: api.Client) -> None:
    """Delete the client's reply queue."""
    client.close()


# ---- the stack ------------------------------------------------------------------------------

def stack_status(client: api.Client) -> dict[str, Any]:
    """The document of `python -m client status --json`."""
    from ..cli import stack_status as status

    return status(client)


def dlq_available() -> bool:
    """Whether the library can list and redrive dead letters (client/dlq.py)."""
    try:
        from .. import dlq  # noqa: F401
    except ImportError:
        return False
    return True
