"""The `equalize` kind: histogram equalization, as skimage.exposure.equalize_hist does it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..registry import FILE, IMAGE, Arg, JobFile, Kind, Limits, Output


def equalize(args: dict[str, Any], files: Mapping[str, JobFile], limits: Limits) -> Output:
    from ._imaging import equalize_image, output_content_type, output_suffix

    image = files["image"]
    data = equalize_image(image.read(), max_pixels=limits.max_pixels)
    return Output(value={}, data=data, content_type=output_content_type(data),
                  suffix=output_suffix(data, image.name))


KIND = Kind(
    name="equalize",
    summary="Histogram equalization (skimage.exposure.equalize_hist), same format and mode.",
    run=equalize,
    args=(Arg("image", FILE, "the image to equalize (JPEG, PNG, GIF or BMP)"),),
    main_input="image",
    output=IMAGE,
    max_pixels=120_000_000,
)
