"""The bucket's objects as the page gets them: streamed, typed by their first bytes only."""

from __future__ import annotations

from collections.abc import Iterator

from botocore.exceptions import BotoCoreError

from .. import api

IMAGE_TYPES = {  # magic bytes -> content type; job files are served as these or as bytes
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
    b"BM": "image/bmp",
    b"II*\x00": "image/tiff",
    b"MM\x00*": "image/tiff",
}
CHUNK_BYTES = 64 * 1024


def sniff_content_type(head: bytes) -> str:
    for magic, content_type in IMAGE_TYPES.items():
        if head.startswith(magic):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def open_object(client: api.Client, key: str) -> tuple[Iterator[bytes], str, int]:
    """The object's bytes as a stream of chunks, its content type and its size.

    The content type is sniffed from the first bytes, and is an image type or
    application/octet-stream: nothing from the bucket is ever served as a page.
    """
    response = api.aws_call(client.s3.get_object, Bucket=client.stack.bucket, Key=key)
    body = response["Body"]
    try:
        first = body.read(CHUNK_BYTES)
    except BotoCoreError as exc:
        body.close()
        raise api.AwsUnavailable(f"download of {key} failed: {exc}") from None

    def chunks() -> Iterator[bytes]:
        try:
            yield first
            yield from body.iter_chunks(CHUNK_BYTES)
        except BotoCoreError:
            return  # the client sees a short body; nothing else can be said mid-stream
        finally:
            body.close()

    return chunks(), sniff_content_type(first), int(response["ContentLength"])
