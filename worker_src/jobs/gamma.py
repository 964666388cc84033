"""The `gamma` kind: gamma correction, as skimage.exposure.adjust_gamma does it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..registry import (
    FILE,
    FLOAT,
    IMAGE,
    ORIENT,
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

    return run_tables(files["image"], limits, gamma_tables(args), progress=progress,
                      orient=args["orient"])


def gamma_step(picture: Any, args: dict[str, Any], files: Mapping[str, JobFile],
               limits: Limits) -> Any:
    from ._tables import tables_step

    return tables_step(picture.pixels(), gamma_tables(args))


def gamma_tables(args: dict[str, Any]) -> Any:
    """histograms -> tables, for these arguments."""
    return lambda _: gamma_table(args["gamma"], args["gain"])


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
        ORIENT,
    ),
    main_input="image",
    output=IMAGE,
    step=gamma_step,
    max_pixels=120_000_000,
    progress=True,
)
