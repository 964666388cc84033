"""Every call the web tier makes into the client library, the registry and the wire format.

One module, so that a change of the library's interface is adapted here only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError

from worker_src import contract, registry, wire

from .. import api, names, numbers
from .errors import bad_input, not_found

IMAGE_TYPES = {  # magic bytes -> content type; job files are served as these or as bytes
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
    b"BM": "image/bmp",
    b"II*\x00": "image/tiff",
    b"MM\x00*": "image/tiff",
}


# ---- the job catalogue ----------------------------------------------------------------

def kinds() -> dict[str, registry.Kind]:
    """The registered kinds: the workers run every one of them."""
    return registry.kinds()


def image_kinds() -> dict[str, registry.Kind]:
    return {name: kind for name, kind in kinds().items()
            if kind.output == registry.IMAGE and kind.main_input is not None}


def describe_kinds() -> list[dict[str, Any]]:
    return [kind.describe() for kind in kinds().values()]


def check_image_args(kind: registry.Kind, texts: dict[str, str],
                     files: Iterable[str]) -> dict[str, Any]:
    """The kind's arguments from form fields (text), checked as if `files` were uploaded.

    Returns the arguments without the file arguments, which upload() fills in.
    """
    args: dict[str, Any] = dict.fromkeys(files, "x")
    try:
        for name, text in texts.items():
            arg = kind.arg(name)
            if arg.type == registry.FILE:
                raise registry.ArgError(name, f"{name} is a file: send it as a file field")
            if text != "":
                args[name] = arg.parse(text)
        checked = kind.check_args(args)
    except registry.ArgError as exc:
        raise bad_input(exc.message) from None
    return {name: value for name, value in checked.items() if name not in kind.file_args()}


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
    try:
        return numbers.integers_from_text(text)
    except api.UsageError as exc:
        raise bad_input(str(exc)) from None


def stats_text(value: dict[str, Any]) -> str:
    """The statistics as `python -m client stats` prints them (cli_output.print_value)."""
    width = max(len(key) for key in value)
    return "\n".join(f"{key:<{width}}  {numbers.shown(item)}" for key, item in value.items())


def download_name(kind: str, original: str, output_key: str) -> str:
    """The CLI's output name: <stem>-equalized<ext> for equalize, <stem>-<kind><ext> else."""
    label = "equalized" if kind == "equalize" else kind
    return names.output_path(Path("."), names.safe_name(original), label, output_key).name


# ---- files in the bucket ----------------------------------------------------------------

def upload_name(job_id: str, name: str) -> str:
    """The name to upload a file under; never inputs/<job>/args.json (the job's arguments)."""
    clash = contract.input_key(job_id, names.safe_name(name)) == contract.args_key(job_id)
    return "_" + name if clash else name


def sniff_content_type(head: bytes) -> str:
    for magic, content_type in IMAGE_TYPES.items():
        if head.startswith(magic):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def upload(client: api.Client, job_id: str, name: str, file: BinaryIO) -> str:
    """One PUT from `file` (a spooled upload: at most 1 MiB of it in memory); the key."""
    try:
        return client.upload(job_id, upload_name(job_id, name), file)
    except S3UploadFailedError as exc:
        raise api.AwsUnavailable(f"upload of {name} failed: {exc}") from None


def open_object(client: api.Client, key: str) -> tuple[Iterator[bytes], str, int]:
    """The object's bytes as a stream of chunks, its content type and its size.

    The content type is sniffed from the first bytes, and is an image type or
    application/octet-stream: nothing from the bucket is ever served as a page.
    """
    response = api.aws_call(client.s3.get_object, Bucket=client.stack.bucket, Key=key)
    body = response["Body"]
    try:
        first = body.read(64 * 1024)
    except BotoCoreError as exc:
        body.close()
        raise api.AwsUnavailable(f"download of {key} failed: {exc}") from None

    def chunks() -> Iterator[bytes]:
        try:
            yield first
            yield from body.iter_chunks(64 * 1024)
        except BotoCoreError:
            return  # the client sees a short body; nothing else can be said mid-stream
        finally:
            body.close()

    return chunks(), sniff_content_type(first), int(response["ContentLength"])


def read_object(client: api.Client, key: str) -> bytes:
    return api.aws_call(client.s3.get_object, Bucket=client.stack.bucket, Key=key)["Body"].read()


# ---- jobs and results ---------------------------------------------------------------------

def new_job_id() -> str:
    return wire.new_job_id()


def submit(client: api.Client, job_id: str, kind: str, args: dict[str, Any]) -> None:
    client.submit([(kind, args)], wait=True, job_ids=[job_id])


def receive_results(client: api.Client, wait_seconds: int) -> list[wire.Result]:
    """One long poll of the reply queue: results of this client's jobs, each once."""
    return client.receive_results(wait_seconds)


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

# Reading the dead-letter queue hides its messages for a moment: this server's own reads
# (status, listing, redrive) take turns, so a redrive never misses a letter the page is listing.
_DLQ_TURN = threading.Lock()


def stack_status(client: api.Client) -> dict[str, Any]:
    """The document of `python -m client status --json`."""
    from ..status import stack_status as status

    with _DLQ_TURN:
        return status(client)


def dlq_available() -> bool:
    """Whether the library can list and redrive dead letters (client/dlq.py)."""
    try:
        from .. import dlq  # noqa: F401
    except ImportError:
        return False
    return True


def dead_letters(client: api.Client) -> dict[str, Any]:
    """The document of `python -m client dlq list --json`."""
    from .. import dlq

    with _DLQ_TURN:
        return dlq.list_dead_letters(client).document()


def redrive(client: api.Client, ids: list[str], every: bool, force: bool) -> dict[str, Any]:
    """The document of `python -m client dlq redrive --json`; 404 when no id named is there."""
    from .. import dlq

    with _DLQ_TURN:
        report = dlq.redrive(client, ids, every=every, force=force)
    if ids and set(report.missing) == set(ids):
        raise not_found(f"no dead letter with job id or message id {', '.join(report.missing)}"
                        f" (a listing elsewhere may hold it for a moment: try again)")
    return report.document()
