"""The image codec every image kind shares: open and check from the header, decode, encode.

An image kind reads its input with `open_input` (the file's size, format, mode
and pixel count are checked from its header before any pixel is decoded),
decodes it with `load_pixels`, and gives its result back with `image_output`,
which encodes it in the input's format with the input's metadata (EXIF with its
orientation tag, ICC profile, JPEG quantization tables and subsampling, PNG
text, transparency) and adds the histograms the web page draws.

docs/jobs.md says what happens to each kind of input.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from PIL import Image, ImageFile, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError

from .. import wire
from ..contract import MAX_PIXELS
from ..registry import JobFile, Limits, Output

# Formats we read and write back in the same format. Pillow calls a JPEG that
# carries extra pictures (camera previews, MPF) "MPO"; we treat it as a JPEG.
FORMATS = ("JPEG", "MPO", "PNG", "GIF", "BMP")
MODES = ("L", "LA", "RGB", "RGBA", "P")
MIME_TYPES = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png",
              "GIF": "image/gif", "BMP": "image/bmp"}

# Exceptions Pillow raises for data it cannot decode (never MemoryError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Pillow's raw modes of 16-bit PNGs, in words.
_PNG_KINDS = {"I": "grayscale", "LA": "grayscale with alpha", "RGB": "RGB", "RGBA": "RGBA"}


def open_input(file: JobFile, limits: Limits, *, label: str = "") -> Image.Image:
    """A job's image file, opened and checked from its header (no pixels decoded).

    `label` (e.g. "the reference") starts the message of every error about a
    second image, so the client knows which file it was.
    """
    with labelled(label):
        if file.size > limits.max_input_bytes:
            raise wire.JobError(
                wire.TOO_LARGE, f"the file is {file.size:,} bytes; this kind takes at most "
                f"{limits.max_input_bytes:,}")
        return open_image(io.BytesIO(file.read()),
                          max_pixels=limits.max_pixels or MAX_PIXELS)


def load_pixels(im: Image.Image, *, label: str = "") -> None:
    """Decode an opened image's pixels; damaged or truncated data is bad_input."""
    with labelled(label), _pillow_errors(f"the {im.format} image data is damaged or truncated"):
        im.load()


@contextmanager
def labelled(label: str) -> Iterator[None]:
    """Prefix the message of a JobError raised inside with `label: `."""
    try:
        yield
    except wire.JobError as exc:
        if not label:
            raise
        raise wire.JobError(exc.code, f"{label}: {exc.message}") from None


def image_output(out: Image.Image, source: Image.Image, input_name: str,
                 value: dict[str, Any]) -> Output:
    """The job's Output: `out` encoded like `source`, named like the input file."""
    data = encode(out, source)
    return Output(value=value, data=data, content_type=output_content_type(data),
                  suffix=output_suffix(data, input_name))


def colour_band_count(im: Image.Image) -> int:
    """1 for grayscale (L, LA), 3 for colour (RGB, RGBA, and P, which reads as RGB)."""
    return 3 if im.mode in ("RGB", "RGBA", "P") else 1


def open_image(fp: BinaryIO, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image and validate it from its header alone (no pixels decoded)."""
    head = fp.read(16)
    fp.seek(0)
    if not head:
        raise wire.JobError(wire.BAD_INPUT, "the file is empty (0 bytes), not an image")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False")
    # Pillow's own pixel cap would answer first, with its own wording and limit; the
    # worker's limit, max_pixels, is checked from the header just below instead.
    pillow_cap, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with _pillow_errors("the image header is damaged or truncated"):
            im = Image.open(fp)
    except UnidentifiedImageError:
        raise wire.JobError(
            wire.BAD_INPUT, f"not an image, or an image format we cannot read "
            f"(the file starts with {head[:8]!r}); send {_formats_text()}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_cap
    try:
        with _pillow_errors("the image header is damaged or truncated"):
            _check_header(im, max_pixels)
        if im.format == "PNG":
            _check_png_chunks(fp)
    except BaseException:
        im.close()
        raise
    return im


@contextmanager
def _pillow_errors(what: str) -> Iterator[None]:
    """Turn Pillow's errors for bad data into JobErrors; let anything else through."""
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 MP on; our limit is max_pixels.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except Image.DecompressionBombError as exc:
        raise wire.JobError(wire.TOO_LARGE, f"the image is too large to process: {exc}") from None
    except UnidentifiedImageError:
        raise
    except _DECODE_ERRORS as exc:
        raise wire.JobError(wire.BAD_INPUT, f"{what}: {exc}") from None


def output_content_type(data_or_name: bytes | str) -> str:
    """MIME type of encoded image bytes, of a Pillow format name ("JPEG") or a file name."""
    if isinstance(data_or_name, (bytes, bytearray, memoryview)):
        head = bytes(data_or_name[:8])
        if head.startswith(b"\xff\xd8\xff"):
            return "image/jpeg"
        if head.startswith(_PNG_SIGNATURE):
            return "image/png"
        if head.startswith((b"GIF87a", b"GIF89a")):
            return "image/gif"
        if head.startswith(b"BM"):
            return "image/bmp"
        if head.startswith(b"RIFF") and bytes(data_or_name[8:12]) == b"WEBP":
            return "image/webp"
        if bytes(data_or_name[4:12]) in (b"ftypavif", b"ftypavis"):
            return "image/avif"
        return "application/octet-stream"
    name = data_or_name.upper()
    if name in MIME_TYPES:
        return MIME_TYPES[name]
    extension = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return MIME_TYPES.get(_EXTENSIONS.get(extension, ""), "application/octet-stream")


# Pillow's extensions of our formats, written out: Image.registered_extensions() would
# import every Pillow plugin (about 50 ms in each new worker process).
_EXTENSIONS = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".mpo": "MPO",
               ".png": "PNG", ".apng": "PNG", ".gif": "GIF", ".bmp": "BMP"}
_SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/bmp": ".bmp",
             "image/webp": ".webp", "image/avif": ".avif"}


def output_suffix(data: bytes, input_name: str) -> str:
    """The output file's extension: the input's own (same format), else the format's."""
    dot = input_name.rfind(".")
    if dot > 0 and output_content_type(input_name) == output_content_type(data):
        return input_name[dot:]
    return _SUFFIXES.get(output_content_type(data), "")


def _formats_text() -> str:
    return "JPEG, PNG, GIF or BMP"


def _check_header(im: Image.Image, max_pixels: int) -> None:
    width, height = im.size
    if im.format not in FORMATS:
        raise wire.JobError(
            wire.BAD_INPUT, f"{im.format} images are not supported; send {_formats_text()}")
    if width * height > max_pixels:
        raise wire.JobError(
            wire.TOO_LARGE, f"the image is {width}x{height} = {width * height:,} pixels; "
            f"this worker takes at most {max_pixels:,}")
    if width == 0 or height == 0:
        raise wire.JobError(wire.BAD_INPUT, f"the image is {width}x{height}: no pixels")
    frames = getattr(im, "n_frames", 1)
    if frames > 1 and im.format != "MPO":
        raise wire.JobError(
            wire.BAD_INPUT, f"animated {im.format} ({frames} frames) is not supported; "
            "send a single image")
    rawmodes = [str(tile.args) for tile in im.tile]
    if im.format == "PNG" and any(";16" in rawmode for rawmode in rawmodes):
        kind = _PNG_KINDS.get(rawmodes[0].split(";")[0], im.mode)
        raise wire.JobError(
            wire.BAD_INPUT, f"16-bit PNG ({kind}) is not supported; send an 8-bit image")
    if im.mode == "1":
        raise wire.JobError(
            wire.BAD_INPUT, "1-bit (black and white) images are not supported: the result "
            "needs grey levels a 1-bit image cannot hold; send an 8-bit grayscale image")
    if im.mode == "CMYK":
        raise wire.JobError(
            wire.BAD_INPUT, f"CMYK {im.format} is not supported; convert it to RGB first")
    if im.mode not in MODES:
        raise wire.JobError(
            wire.BAD_INPUT, f"image mode {im.mode} is not supported; send an 8-bit grayscale, "
            "RGB or palette image, with or without alpha")


def _check_png_chunks(fp: BinaryIO) -> None:
    """Verify every chunk's CRC: Pillow does not check those of the pixel data."""
    fp.seek(len(_PNG_SIGNATURE))
    try:
        while True:
            header = fp.read(8)
            if len(header) < 8:
                raise wire.JobError(wire.BAD_INPUT, "truncated PNG: no IEND chunk")
            length, kind = struct.unpack(">I4s", header)
            crc = zlib.crc32(kind)
            remaining = length
            while remaining:
                block = fp.read(min(remaining, 1 << 20))
                if not block:
                    raise wire.JobError(
                        wire.BAD_INPUT, f"truncated PNG: the {_chunk_name(kind)} chunk is cut off")
                crc = zlib.crc32(block, crc)
                remaining -= len(block)
            stored = fp.read(4)
            if len(stored) < 4:
                raise wire.JobError(
                    wire.BAD_INPUT, f"truncated PNG: the {_chunk_name(kind)} chunk is cut off")
            if struct.unpack(">I", stored)[0] != crc:
                raise wire.JobError(
                    wire.BAD_INPUT, f"corrupt PNG: bad CRC in the {_chunk_name(kind)} chunk")
            if kind == b"IEND":
                return
    finally:
        fp.seek(0)


def _chunk_name(kind: bytes) -> str:
    return kind.decode("latin-1")


def encode(out: Image.Image, source: Image.Image) -> bytes:
    """`out` in `source`'s format and (JPEG) encoder settings, with `out`'s metadata.

    `out`'s metadata is the source's unless a step changed it (orient clears the
    EXIF orientation; a palette image turned RGBA has no transparency index).
    """
    info = out.info
    params: dict[str, object] = {}
    for key in ("icc_profile", "exif", "dpi"):
        if info.get(key):
            params[key] = info[key]
    fmt = source.format
    if fmt in ("JPEG", "MPO"):
        fmt = "JPEG"
        params["qtables"] = source.quantization
        params["subsampling"] = JpegImagePlugin.get_sampling(source)
        params["progressive"] = bool(source.info.get("progressive")
                                     or source.info.get("progression"))
        for key in ("comment", "xmp"):
            if info.get(key):
                params[key] = info[key]
    elif fmt == "PNG":
        if "transparency" in info:
            params["transparency"] = info["transparency"]
        text = getattr(source, "text", None)
        if text:
            pnginfo = PngImagePlugin.PngInfo()
            for key, value in text.items():
                pnginfo.add_text(key, value)
            params["pnginfo"] = pnginfo
    elif fmt == "GIF":
        for key in ("transparency", "comment", "background"):
            if key in info:
                params[key] = info[key]
        params["optimize"] = False
    buffer = io.BytesIO()
    out.save(buffer, fmt, **params)
    return buffer.getvalue()
