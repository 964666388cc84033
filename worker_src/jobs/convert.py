"""The `convert` kind: the image in another format (JPEG, PNG, WebP or AVIF), Pillow's codecs.

The pixels go to Pillow's own encoder of that format with the quality and
lossless options given; alpha becomes a white background in JPEG, which has
none. Metadata (EXIF, XMP, comments, PNG text) is kept or stripped by choice;
the ICC profile is always kept, since without it the colours would change.
As a pipeline step it chooses the format the pipeline's one encode writes.
"""

from __future__ import annotations

from typing import Any

from ..registry import BOOL, INT, STR, Arg, ArgError, JobContext
from ._image_kinds import step_kind

FORMATS = ("jpeg", "png", "webp", "avif")
KEEP, STRIP = "keep", "strip"


def convert_step(picture: Any, ctx: JobContext) -> Any:
    from ._formats import check_encodable
    from ._picture import Target

    args = ctx.args
    # From the header, before decoding; checked again on the image a later step leaves.
    check_encodable(picture.size, args["format"].upper(), ctx.limits)
    picture.target = Target(format=args["format"].upper(), quality=args["quality"],
                            lossless=args["lossless"], strip=args["metadata"] == STRIP)
    return picture.image


def check(args: dict[str, Any]) -> None:
    fmt = args["format"]
    if args["lossless"] and fmt in ("jpeg", "avif"):
        raise ArgError("lossless", f"lossless is for webp (png is always lossless); Pillow's "
                                   f"{fmt} encoder has no lossless mode")
    if args["quality"] is not None and fmt == "png":
        raise ArgError("quality", "png is lossless: it takes no quality")


KIND = step_kind(
    "convert",
    "Convert to JPEG, PNG, WebP or AVIF (Pillow's codecs), with quality, lossless and metadata "
    "options.",
    convert_step,
    args=(
        Arg("format", STR, "the output's format", choices=FORMATS),
        Arg("quality", INT, "the encoder's quality, 1 (smallest) to 100 (best); default: "
                            "Pillow's (75 for jpeg and avif, 80 for webp)",
            default=None, minimum=1, maximum=100),
        Arg("lossless", BOOL, "lossless webp", default=False),
        Arg("metadata", STR, "keep or strip EXIF, XMP, comments and text (the ICC profile "
                             "is kept)", default=KEEP, choices=(KEEP, STRIP)),
    ),
    check=check,
    example={"format": "png", "metadata": "strip"},
)
