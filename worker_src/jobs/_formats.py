"""Encoding an image in a chosen format (the convert step's target) with Pillow's codecs."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, PngImagePlugin

from .. import wire
from ..registry import Limits

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
                 "AVIF": "image/avif"}
SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "AVIF": ".avif"}
# The side Pillow's encoders allow at most, per format.
MAX_SIDES = {"JPEG": 65_535, "PNG": 2**31 - 1, "WEBP": 16_383, "AVIF": 65_536}
# What each encoder holds beside the image, in bytes a pixel, checked against the memory
# budget (libjpeg and zlib stream). Measured in a work horse with a 400 MiB limit: a JPEG of
# 26 MP converts to WebP; to AVIF 11 MP does but 12 MP fails inside libavif (about 18 bytes
# a pixel resident, more in address space), so AVIF is given 28 for a margin.
ENCODER_BYTES_PER_PIXEL = {"JPEG": 0, "PNG": 0, "WEBP": 8, "AVIF": 28}
# The interpreter with Pillow, and the encoded input and output.
FIXED_BYTES = 100 * 1024 * 1024


def check_encodable(size: tuple[int, int], fmt: str, limits: Limits) -> None:
    """bad_input if `fmt` cannot hold an image of `size`; too_large if its encoder would
    need more than the job's memory budget (4 bytes a pixel for the image itself)."""
    width, height = size
    if max(size) > MAX_SIDES[fmt]:
        raise wire.JobError(wire.BAD_INPUT, f"{fmt} images are at most {MAX_SIDES[fmt]:,} "
                                            f"pixels a side; this one is {width}x{height}")
    needed = width * height * (4 + ENCODER_BYTES_PER_PIXEL[fmt]) + FIXED_BYTES
    if needed > limits.memory_budget_bytes:
        raise wire.JobError(wire.TOO_LARGE, f"encoding this {width}x{height} image as {fmt} "
                                            f"needs about {needed / 1e6:,.0f} MB; this worker "
                                            f"gives a job {limits.memory_budget_bytes / 1e6:,.0f}"
                                            f" MB")


def encode_as(out: Image.Image, target: Any, limits: Limits) -> tuple[bytes, str, str]:
    """`out` encoded as `target` says; (the bytes, their MIME type, the file suffix)."""
    check_encodable(out.size, target.format, limits)
    fmt = target.format
    im, params = prepared(out, target)
    buffer = io.BytesIO()
    im.save(buffer, fmt, **params)
    return buffer.getvalue(), CONTENT_TYPES[fmt], SUFFIXES[fmt]


def prepared(out: Image.Image, target: Any) -> tuple[Image.Image, dict[str, Any]]:
    """The image as the format can hold it, and the encoder's parameters."""
    fmt = target.format
    im = out
    if fmt == "JPEG" and (im.mode in ("LA", "RGBA", "P") or "transparency" in im.info):
        im = on_white(im)
    params: dict[str, Any] = {}
    if target.quality is not None:
        params["quality"] = target.quality
    if target.lossless:
        # exact: libwebp would otherwise change the colour under fully transparent pixels.
        params.update(lossless=True, exact=True)
    info = out.info
    if info.get("icc_profile"):
        params["icc_profile"] = info["icc_profile"]
    if not target.strip:
        if info.get("exif"):
            params["exif"] = info["exif"]
        if info.get("xmp") and fmt != "PNG":
            params["xmp"] = info["xmp"]
        if fmt == "JPEG" and info.get("comment"):
            params["comment"] = info["comment"]
        text = {k: v for k, v in info.items() if isinstance(k, str) and isinstance(v, str)
                and k not in ("xmp",)}
        if fmt == "PNG" and text:
            pnginfo = PngImagePlugin.PngInfo()
            for key, value in text.items():
                pnginfo.add_text(key, value)
            params["pnginfo"] = pnginfo
    if fmt == "PNG" and "transparency" in info and im.mode in ("L", "RGB", "P"):
        params["transparency"] = info["transparency"]
    return im, params


def on_white(im: Image.Image) -> Image.Image:
    """The image over a white background, without alpha (L stays L, colour becomes RGB)."""
    white = Image.new("RGBA", im.size, (255, 255, 255, 255))
    flat = Image.alpha_composite(white, im.convert("RGBA"))
    return flat.convert("L" if im.mode in ("L", "LA") else "RGB")
