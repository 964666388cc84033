"""The `gamma` kind: gamma correction, as skimage.exposure.adjust_gamma does it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..registry import (
    FILE,
    FLOAT,
    IMAGE,
    Arg,
    JobFile,
    Kind,
    Limits,
    Output,
    Progress,
    no_progress,
)


def gamma(args: dict[str, Any], files: Mapping[str, JobFile], limits: Limits,
          progress: Progress = no_progress) -> Output:
    from ._tables import run_tables

    return run_tables(files["image"], limits, progress=progress,
                      make_tables=lambda _: gamma_table(args["gamma"], args["gain"]))


def gamma_table(exponent: float, gain: float) -> Any:
    """adjust_gamma of every 8-bit value: scikit-image's own table for uint8 images."""
    import numpy as np
    from skimage import exposure

    return exposure.adjust_gamma(np.arange(256, dtype=np.uint8), exponent, gain)


KIND = Kind(
    name="gamma",
    summary="Gamma correction (skimage.exposure.adjust_gamma): 255 * gain * (v/255)**gamma.",
    run=gamma,
    args=(
        Arg("image", FILE, "the image (JPEG, PNG, GIF or BMP)"),
        Arg("gamma", FLOAT, "the exponent: below 1 brightens, above 1 darkens",
            default=1.0, minimum=0),
        Arg("gain", FLOAT, "the constant multiplier (results above 255 become 255)",
            default=1.0, minimum=0, maximum=1e6),
    ),
    main_input="image",
    output=IMAGE,
    max_pixels=120_000_000,
    progress=True,
)
