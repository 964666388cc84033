"""The `equalize` job: histogram equalization with scikit-image's exact semantics.

The result is what `skimage.util.img_as_ubyte(skimage.exposure.equalize_hist(img))`
gives for the 8-bit image as scikit-image reads it (one histogram over all colour
channels), with alpha passed through unchanged. For 8-bit input every output value
depends only on the input value, so the whole computation is a 256-entry lookup
table built from Pillow's C histogram and applied with `Image.point`: no float
arrays the size of the image.

docs/jobs.md says what happens to each kind of input.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError
from skimage.util import img_as_ubyte

from .. import wire

# 100 MP images pass; the worker may lower or raise it with WQW_MAX_PIXELS.
DEFAULT_MAX_PIXELS = 120_000_000

# Formats we read and write back in the same format. Pillow calls a JPEG that
# carries extra pictures (camera previews, MPF) "MPO"; we treat it as a JPEG.
FORMATS = ("JPEG", "MPO", "PNG", "GIF", "BMP")
MODES = ("L", "LA", "RGB", "RGBA", "P")
MIME_TYPES = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png",
              "GIF": "image/gif", "BMP": "image/bmp"}

# Pixels per strip when applying the table: the extra memory is about one strip.
STRIP_PIXELS = 262_144

# Exceptions Pillow raises for data it cannot decode (never MemoryError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Pillow's raw modes of 16-bit PNGs, in words.
_PNG_KINDS = {"I": "grayscale", "LA": "grayscale with alpha", "RGB": "RGB", "RGBA": "RGBA"}


def equalize_image(data: bytes | BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """Histogram-equalize an encoded image; return the encoded result, same format."""
    fp = _as_seekable(data)
    im = open_image(fp, max_pixels=max_pixels)
    try:
        _load(im)
        out = equalize_pixels(im, in_place=True)
        return _encode(out, im)
    finally:
        im.close()


def open_image(fp: BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
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


def equalize_pixels(im: Image.Image, *, in_place: bool = False) -> Image.Image:
    """Equalize a decoded 8-bit image (mode L, LA, RGB, RGBA or P); alpha unchanged.

    With in_place, the pixels of `im` are overwritten (saves one image of memory).
    """
    if im.mode not in MODES:
        raise ValueError(f"mode {im.mode} cannot be equalized")
    if im.mode == "P":
        return _equalize_palette(im, in_place)
    colour_bands = len(im.getbands()) - ("A" in im.getbands())
    histogram = _colour_histogram(im.histogram(), colour_bands)
    lut = equalization_lut(histogram)
    identity = list(range(256))
    table = lut * colour_bands + identity * (len(im.getbands()) - colour_bands)
    out = im if in_place else im.copy()
    # Strip by strip, in place: the peak stays at one image plus a strip. Pillow
    # may keep a few freed strips for reuse, else each new strip costs page faults.
    rows = max(1, STRIP_PIXELS // max(1, im.width))
    blocks_max = Image.core.get_blocks_max()
    Image.core.set_blocks_max(max(blocks_max, 4))
    try:
        for top in range(0, im.height, rows):
            box = (0, top, im.width, min(im.height, top + rows))
            out.paste(im.crop(box).point(table), box)
    finally:
        Image.core.set_blocks_max(blocks_max)
    return out


def equalization_lut(histogram: list[int] | np.ndarray) -> list[int]:
    """The 256-entry table equalize_hist + img_as_ubyte amount to, for an 8-bit histogram.

    `histogram[v]` counts the samples of value v over all colour channels. The
    arithmetic is skimage.exposure.equalize_hist's for integer images: bins are
    the integers from the image's min to its max, the cdf is cumsum / total in
    float64, values are mapped with np.interp over the bin centers; then
    skimage's own img_as_ubyte rounds.
    """
    hist = np.asarray(histogram, dtype=np.int64)
    if hist.shape != (256,):
        raise ValueError("an 8-bit histogram has 256 entries")
    present = np.flatnonzero(hist)
    if present.size == 0:
        raise ValueError("the histogram is empty")
    low, high = int(present[0]), int(present[-1])
    cdf = hist[low:high + 1].cumsum()
    cdf = cdf / float(cdf[-1])
    bin_centers = np.arange(low, high + 1)
    table = np.interp(np.arange(256), bin_centers, cdf)
    return [int(v) for v in img_as_ubyte(table)]


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
        return "application/octet-stream"
    name = data_or_name.upper()
    if name in MIME_TYPES:
        return MIME_TYPES[name]
    extension = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return MIME_TYPES.get(Image.registered_extensions().get(extension, ""),
                          "application/octet-stream")


_SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/bmp": ".bmp"}


def output_suffix(data: bytes, input_name: str) -> str:
    """The output file's extension: the input's own (same format), else the format's."""
    dot = input_name.rfind(".")
    if dot > 0 and output_content_type(input_name) == output_content_type(data):
        return input_name[dot:]
    return _SUFFIXES.get(output_content_type(data), "")


def _as_seekable(data: bytes | BinaryIO) -> BinaryIO:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(data)
    if not data.seekable():
        return io.BytesIO(data.read())
    return data


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
            wire.BAD_INPUT, "1-bit (black and white) images cannot be equalized: every "
            "black pixel would turn grey; send an 8-bit grayscale image")
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


def _load(im: Image.Image) -> None:
    with _pillow_errors(f"the {im.format} image data is damaged or truncated"):
        im.load()


def _colour_histogram(histogram: list[int], colour_bands: int) -> np.ndarray:
    return np.asarray(histogram[:256 * colour_bands], dtype=np.int64).reshape(
        colour_bands, 256).sum(axis=0)


def _equalize_palette(im: Image.Image, in_place: bool) -> Image.Image:
    """A palette image keeps its pixels (indices); its palette colours are equalized.

    The histogram is that of the RGB image the palette describes (as scikit-image
    reads it): each index's pixel count goes to the bins of its colour's values.
    """
    palette_mode = im.palette.mode
    colour_channels = [i for i, band in enumerate(palette_mode) if band != "A"]
    width = len(palette_mode)
    palette = im.getpalette(palette_mode) or []
    palette += [0] * (256 * width - len(palette))  # Pillow shows missing entries as black
    counts = im.histogram()
    histogram = np.zeros(256, dtype=np.int64)
    for index, count in enumerate(counts):
        if count:
            for channel in colour_channels:
                histogram[palette[index * width + channel]] += count
    lut = equalization_lut(histogram)
    new_palette = [lut[value] if i % width in colour_channels else value
                   for i, value in enumerate(palette)]
    out = im if in_place else im.copy()
    out.putpalette(new_palette, palette_mode)
    return out


def _encode(out: Image.Image, source: Image.Image) -> bytes:
    info = source.info
    params: dict[str, object] = {}
    for key in ("icc_profile", "exif", "dpi"):
        if info.get(key):
            params[key] = info[key]
    fmt = source.format
    if fmt in ("JPEG", "MPO"):
        fmt = "JPEG"
        params["qtables"] = source.quantization
        params["subsampling"] = JpegImagePlugin.get_sampling(source)
        params["progressive"] = bool(info.get("progressive") or info.get("progression"))
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
