"""Image steps on one decode and one encode: the picture a step works on, and running steps.

Every kind that can be a pipeline step (`Kind.step`) turns a `Picture` into a new
image. The picture is opened from its header and decoded only when a step first
needs its pixels, so steps that come first can still change how it is decoded:
`orient` before any decode is remembered and applied right after it, and
`thumbnail` asks a JPEG for a reduced-scale decode (`Image.draft`). A kind run
alone is a pipeline of its one step (`run_kind_alone`), so a step's pixels in a
pipeline are the kind's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image, ImageOps

from .. import wire
from ..registry import JobContext, Kind, Limits, Output, no_progress
from ._imaging import image_output, load_pixels, open_input

ORIENTATION_TAG = 0x0112
# EXIF orientations that swap width and height.
_SWAPPING = (5, 6, 7, 8)
# The transpose ImageOps.exif_transpose applies for each orientation.
_TRANSPOSES = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
               6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_90}


@dataclass(frozen=True)
class Target:
    """The output's encoding when a `convert` step chose one (else: the input's format)."""

    format: str  # JPEG, PNG, WEBP or AVIF
    quality: int | None
    lossless: bool
    strip: bool


class Picture:
    """The image going through the steps: opened, decoded at most once, when first needed."""

    def __init__(self, source: Image.Image) -> None:
        self.source = source  # the opened input: its format and its encoder settings
        self.image = source
        self.decoded = False
        self.orient_pending = False
        # After a reduced-scale decode: the part of it that is the whole image (its last
        # row or column may be partial), in the current image's coordinates.
        self.draft_box: tuple[float, float, float, float] | None = None
        self.decode_s = 0.0
        self.target: Target | None = None

    def orientation(self) -> int:
        """The input's EXIF orientation (1 to 8; 1 when it has none or a bad one)."""
        value = self.source.getexif().get(ORIENTATION_TAG, 1)
        return value if value in range(1, 9) else 1

    @property
    def size(self) -> tuple[int, int]:
        """The current image's size, as it will be once a pending orientation is applied."""
        width, height = self.image.size
        if self.orient_pending and self.orientation() in _SWAPPING:
            return height, width
        return width, height

    def orient(self) -> None:
        """Apply the EXIF orientation (ImageOps.exif_transpose), now or right after decoding."""
        if self.decoded:
            self._transpose()
        else:
            self.orient_pending = True

    def reduce_on_load(self, at_least: tuple[int, int]) -> None:
        """Decode a JPEG at 1/2, 1/4 or 1/8 scale, keeping the image at least `at_least`."""
        if self.decoded or self.source.format not in ("JPEG", "MPO"):
            return
        width, height = at_least
        if self.orient_pending and self.orientation() in _SWAPPING:
            width, height = height, width
        full = self.image.size
        drafted = self.image.draft(None, (width, height))
        if drafted is not None and self.image.size != full:
            self.draft_box = drafted[1]

    def pixels(self) -> Image.Image:
        """The decoded current image (decoding the input on first use)."""
        if not self.decoded:
            started = time.perf_counter()
            load_pixels(self.image)
            self.decoded = True
            self.decode_s = time.perf_counter() - started
            if self.orient_pending:
                self._transpose()
        return self.image

    def _transpose(self) -> None:
        method = _TRANSPOSES.get(self.orientation())
        self.image = ImageOps.exif_transpose(self.image)
        if self.draft_box is not None and method is not None:
            self.draft_box = transposed_box(self.draft_box, self.image.size, method)
        self.orient_pending = False


def transposed_box(box: tuple[float, float, float, float], size: tuple[int, int],
                   method: Image.Transpose) -> tuple[float, float, float, float]:
    """`box` of an image moved by `method`; `size` is the transposed image's size."""
    left, top, right, bottom = box
    width, height = size
    if method in (Image.Transpose.TRANSPOSE, Image.Transpose.ROTATE_90,
                  Image.Transpose.ROTATE_270, Image.Transpose.TRANSVERSE):
        height, width = width, height  # the size before transposing
    return {
        Image.Transpose.FLIP_LEFT_RIGHT: (width - right, top, width - left, bottom),
        Image.Transpose.FLIP_TOP_BOTTOM: (left, height - bottom, right, height - top),
        Image.Transpose.ROTATE_180: (width - right, height - bottom, width - left, height - top),
        Image.Transpose.TRANSPOSE: (top, left, bottom, right),
        Image.Transpose.ROTATE_90: (top, width - right, bottom, width - left),
        Image.Transpose.ROTATE_270: (height - bottom, left, height - top, right),
        Image.Transpose.TRANSVERSE: (height - bottom, width - right, height - top, width - left),
    }[method]


def run_step(picture: Picture, kind: Kind, ctx: JobContext) -> None:
    """One step: its `orient` option first, its own pixel cap, then the kind's step."""
    if ctx.args.get("orient"):
        picture.orient()
    width, height = picture.size
    cap = min(kind.max_pixels, ctx.limits.max_pixels or kind.max_pixels)
    if width * height > cap:
        raise wire.JobError(
            wire.TOO_LARGE, f"{kind.name} takes at most {cap:,} pixels; its image is "
            f"{width}x{height} = {width * height:,}")
    assert kind.step is not None
    picture.image = kind.step(picture, ctx)


def run_steps(steps: list[tuple[Kind, dict[str, Any]]], ctx: JobContext) -> Output:
    """Open `ctx`'s image, run the steps (each with its own args) in order, encode once.

    The value times each step; `ctx.progress` hears the share of steps done, the encode
    counted as one more.
    """
    file = ctx.files["image"]
    im = open_input(file, ctx.limits)
    with im:
        picture = Picture(im)
        timings = []
        for kind, args in steps:
            started = time.perf_counter()
            decode_before = picture.decode_s
            run_step(picture, kind, replace(ctx, args=args))
            seconds = time.perf_counter() - started - (picture.decode_s - decode_before)
            timings.append({"kind": kind.name, "seconds": round(seconds, 6)})
            ctx.progress(len(timings) / (len(steps) + 1))
        out = picture.pixels()
        started = time.perf_counter()
        output = encode_output(picture, out, file.name, ctx.limits)
        encode_s = time.perf_counter() - started
        width, height = out.size
        value = {"width": width, "height": height, "steps": timings,
                 "decode_s": round(picture.decode_s, 6), "encode_s": round(encode_s, 6)}
        return Output(value=value, data=output.data, content_type=output.content_type,
                      suffix=output.suffix)


def run_kind_alone(kind: Kind, ctx: JobContext) -> Output:
    """A step kind's own job: the pipeline of its one step.

    It reports no progress: "half done" after the one step says little when the encode
    may take as long.
    """
    return run_steps([(kind, ctx.args)], replace(ctx, progress=no_progress))


def encode_output(picture: Picture, out: Image.Image, input_name: str,
                  limits: Limits) -> Output:
    """The output file: the convert step's format, else the input's own."""
    if picture.target is None:
        return image_output(out, picture.source, input_name, {})
    from ._formats import encode_as

    data, content_type, suffix = encode_as(out, picture.target, limits)
    return Output(data=data, content_type=content_type, suffix=suffix)
