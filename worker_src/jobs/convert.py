"""The `convert` kind: the image in another format (JPEG, PNG, WebP or AVIF), Pillow's codecs.

The pixels go to Pillow's own encoder of that format with the quality and
lossless options given; alpha becomes a white background in JPEG, which has
none. Metadata (EXIF, XMP, comments, PNG text) is kept or stripped by choice;
the ICC profile is always kept, since without it the colours would change.
As a pipeline step it chooses the format the pipeline's one encode writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..registry import (
    BOOL,
    IMAGE,
    IMAGE_FILE,
    INT,
    ORIENT,
    STR,
    Arg,
    ArgError,
    JobFile,
    Kind,
    Limits,
    Output,
)

FORMATS = ("jpeg", "png", "webp", "avif")
KEEP, STRIP = "keep", "strip"


def convert(args: dict[str, Any], files: Mapping[str, JobFile], limits: Limits) -> Output:
    from ._picture import run_kind_alone

    return run_kind_alone(KIND, args, files, limits)


def convert_step(picture: Any, args: dict[str, Any], files: Mapping[str, JobFile],
                 limits: Limits) -> Any:
    from ._formats import check_encodable
    from ._picture import Target

    # From the header, before decoding; checked again on the image a later step leaves.
    check_encodable(picture.size, args["format"].upper(), limits)
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


KIND = Kind(
    name="convert",
    summary="Convert to JPEG, PNG, WebP or AVIF (Pillow's codecs), with quality, lossless "
            "and metadata options.",
    run=convert,
    args=(
        IMAGE_FILE,
        Arg("format", STR, "the output's format", choices=FORMATS),
        Arg("quality", INT, "the encoder's quality, 1 (smallest) to 100 (best); default: "
                            "Pillow's (75 for jpeg and avif, 80 for webp)",
            default=None, minimum=1, maximum=100),
        Arg("lossless", BOOL, "lossless webp", default=False),
        Arg("metadata", STR, "keep or strip EXIF, XMP, comments and text (the ICC profile "
                             "is kept)", default=KEEP, choices=(KEEP, STRIP)),
        ORIENT,
    ),
    main_input="image",
    output=IMAGE,
    example={"format": "png", "metadata": "strip"},
    check=check,
    step=convert_step,
)
