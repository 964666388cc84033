"""The `orient` kind: turn an image upright from its EXIF orientation, and clear the tag.

The pixels and metadata are Pillow's `ImageOps.exif_transpose`: the transpose the
orientation (2 to 8) names, then the tag removed from the EXIF (and XMP); an image
without an orientation, or with orientation 1, is left as it is.
"""

from __future__ import annotations

from typing import Any

from ..registry import IMAGE, IMAGE_FILE, JobContext, Kind, Output


def orient(ctx: JobContext) -> Output:
    from ._picture import run_kind_alone

    return run_kind_alone(KIND, ctx)


def orient_step(picture: Any, ctx: JobContext) -> Any:
    picture.orient()
    return picture.image


KIND = Kind(
    name="orient",
    summary="Turn the image upright from its EXIF orientation (ImageOps.exif_transpose) and "
            "clear the tag.",
    run=orient,
    args=(IMAGE_FILE,),
    main_input="image",
    output=IMAGE,
    step=orient_step,
)
