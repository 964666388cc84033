"""The `thumbnail` kind: fit an image within a width and/or height, keeping its aspect ratio.

The pixels are Pillow's `resize(size, Image.LANCZOS)` of the decoded image (a
palette image is first converted to RGB, or RGBA if it has transparency, since
Pillow resizes palette images with nearest-neighbour only). A JPEG is decoded
at 1/2, 1/4 or 1/8 scale when the reduced image is still at least the target
size (`shrink_on_load`, libjpeg's scaled IDCT through `Image.draft`, as libvips'
thumbnail does): several times faster, with an error docs/jobs.md bounds. An
image that already fits is left at its size unless `enlarge` is set.
"""

from __future__ import annotations

from typing import Any

from ..registry import BOOL, INT, Arg, ArgError, JobContext
from ._image_kinds import step_kind

MAX_SIDE = 65_535  # the largest side JPEG, WebP and Pillow's encoders all take
# The interpreter with Pillow and the decoded input, beside an enlarged thumbnail.
ENLARGE_FIXED_BYTES = 100 * 1024 * 1024


def thumbnail_step(picture: Any, ctx: JobContext) -> Any:
    from PIL import Image

    from .. import wire

    args, limits = ctx.args, ctx.limits
    size = fitted_size(picture.size, args["width"], args["height"], args["enlarge"])
    if size == picture.size:
        return picture.pixels()
    pixels = size[0] * size[1]
    if limits.max_pixels is not None and pixels > limits.max_pixels:
        raise wire.JobError(wire.TOO_LARGE, f"the thumbnail would be {size[0]}x{size[1]} = "
                                            f"{pixels:,} pixels; this worker takes at most "
                                            f"{limits.max_pixels:,}")
    # An enlarged image is held twice while resizing (RGBA premultiplied), 4 bytes a pixel.
    needed = 8 * pixels + ENLARGE_FIXED_BYTES
    if needed > limits.memory_budget_bytes:
        raise wire.JobError(wire.TOO_LARGE, f"a {size[0]}x{size[1]} thumbnail needs about "
                                            f"{needed / 1e6:,.0f} MB; this worker gives a job "
                                            f"{limits.memory_budget_bytes / 1e6:,.0f} MB")
    if args["shrink_on_load"]:
        picture.reduce_on_load(size)
    im = picture.pixels()
    if im.mode == "P":
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    box, picture.draft_box = picture.draft_box, None
    return im.resize(size, Image.Resampling.LANCZOS, box=box)


def fitted_size(size: tuple[int, int], width: int | None, height: int | None,
                enlarge: bool) -> tuple[int, int]:
    """The largest size within width x height with `size`'s aspect ratio (sides rounded)."""
    old_width, old_height = size
    scales = []
    if width is not None:
        scales.append(width / old_width)
    if height is not None:
        scales.append(height / old_height)
    scale = min(scales)
    if scale >= 1 and not enlarge:
        return size
    if width is not None and scale == width / old_width:
        return width, max(1, round(old_height * scale))
    return max(1, round(old_width * scale)), height  # type: ignore[return-value]


def check(args: dict[str, Any]) -> None:
    if args["width"] is None and args["height"] is None:
        raise ArgError("width", "thumbnail needs a width, a height or both")


KIND = step_kind(
    "thumbnail",
    "Fit within a width and/or height, keeping the aspect ratio (Pillow's LANCZOS resize; "
    "JPEGs shrink while decoding).",
    thumbnail_step,
    args=(
        Arg("width", INT, "the largest width in pixels", default=None, minimum=1,
            maximum=MAX_SIDE),
        Arg("height", INT, "the largest height in pixels", default=None, minimum=1,
            maximum=MAX_SIDE),
        Arg("enlarge", BOOL, "make a smaller image larger to fit (else it keeps its size)",
            default=False),
        Arg("shrink_on_load", BOOL, "decode a JPEG at a reduced scale first when that still "
                                    "leaves at least the thumbnail's size (faster)",
            default=True),
    ),
    check=check,
    example={"width": 256},
)
