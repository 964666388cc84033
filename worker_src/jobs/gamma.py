"""The `gamma` kind: gamma correction, as skimage.exposure.adjust_gamma does it."""

from __future__ import annotations

from typing import Any

from ..registry import FLOAT, Arg
from ._image_kinds import table_kind


def gamma_table(exponent: float, gain: float) -> Any:
    """adjust_gamma of every 8-bit value: scikit-image's own table for uint8 images."""
    import numpy as np
    from skimage import exposure

    return exposure.adjust_gamma(np.arange(256, dtype=np.uint8), exponent, gain)


KIND = table_kind(
    "gamma",
    "Gamma correction (skimage.exposure.adjust_gamma): 255 * gain * (v/255)**gamma.",
    lambda args, _histograms: gamma_table(args["gamma"], args["gain"]),
    args=(
        Arg("gamma", FLOAT, "the exponent: below 1 brightens, above 1 darkens",
            default=1.0, minimum=0),
        Arg("gain", FLOAT, "the constant multiplier (results above 255 become 255)",
            default=1.0, minimum=0, maximum=1e6),
    ),
)
