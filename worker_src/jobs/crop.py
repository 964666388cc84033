"""The `crop` kind: the part of an image inside a box, given in pixels or in fractions.

The box is left, top, right, bottom (right and bottom excluded, as Pillow's
`Image.crop` takes it); fractions are of the width and height and rounded to the
nearest pixel. A box outside the image, or empty, is bad_input, found from the
header before any pixel is decoded.
"""

from __future__ import annotations

from typing import Any

from ..registry import FLOAT, STR, Arg, ArgError, JobContext
from ._image_kinds import step_kind

PIXELS, FRACTIONS = "pixels", "fractions"


def crop_step(picture: Any, ctx: JobContext) -> Any:
    box = pixel_box(ctx.args, picture.size)
    return picture.pixels().crop(box)


def pixel_box(args: dict[str, Any], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box in pixels within an image of `size`; bad_input if it is not inside it."""
    from .. import wire

    width, height = size
    sides = []
    for name, default, extent in (("left", 0, width), ("top", 0, height),
                                  ("right", width, width), ("bottom", height, height)):
        value = args[name]
        if value is None:
            sides.append(default)
        elif args["units"] == FRACTIONS:
            sides.append(int(value * extent + 0.5))
        else:
            sides.append(int(value))
    left, top, right, bottom = sides
    if right > width or bottom > height:
        raise wire.JobError(wire.BAD_INPUT, f"the box ({left}, {top}, {right}, {bottom}) "
                                            f"reaches outside the {width}x{height} image")
    if left >= right or top >= bottom:
        raise wire.JobError(wire.BAD_INPUT, f"the box ({left}, {top}, {right}, {bottom}) of "
                                            f"this {width}x{height} image has no pixels")
    return left, top, right, bottom


def check(args: dict[str, Any]) -> None:
    names = ("left", "top", "right", "bottom")
    for name in names:
        value = args[name]
        if value is None:
            continue
        if args["units"] == FRACTIONS and value > 1:
            raise ArgError(name, f"{name} is a fraction of the image: at most 1, got {value:g}")
        if args["units"] == PIXELS and value != int(value):
            raise ArgError(name, f"{name} is in pixels: a whole number, got {value:g}")
    for low, high in (("left", "right"), ("top", "bottom")):
        if args[high] is not None and (args[low] or 0) >= args[high]:
            raise ArgError(low, f"{low} must be below {high}, got {low}={args[low] or 0:g} "
                                f"and {high}={args[high]:g}")


KIND = step_kind(
    "crop",
    "Crop to a box (left, top, right, bottom) in pixels or in fractions of the size.",
    crop_step,
    args=(
        Arg("left", FLOAT, "the box's left edge", default=0.0, minimum=0, maximum=1e9),
        Arg("top", FLOAT, "the box's top edge", default=0.0, minimum=0, maximum=1e9),
        Arg("right", FLOAT, "the box's right edge, excluded (default: the image's)",
            default=None, minimum=0, maximum=1e9),
        Arg("bottom", FLOAT, "the box's bottom edge, excluded (default: the image's)",
            default=None, minimum=0, maximum=1e9),
        Arg("units", STR, "what the numbers count: pixels, or fractions of the width and "
                          "height", default=PIXELS, choices=(PIXELS, FRACTIONS)),
    ),
    check=check,
    example={"left": 0.25, "right": 0.75, "units": "fractions"},
)
