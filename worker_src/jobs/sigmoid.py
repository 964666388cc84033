"""The `sigmoid` kind: sigmoid contrast, as skimage.exposure.adjust_sigmoid does it."""

from __future__ import annotations

from typing import Any

from ..registry import BOOL, FLOAT, Arg
from ._image_kinds import table_kind


def sigmoid_tables(args: dict[str, Any], _histograms: Any) -> Any:
    """adjust_sigmoid of every 8-bit value (its uint8 result, truncated as scikit-image does)."""
    import numpy as np
    from skimage import exposure

    with np.errstate(over="ignore"):  # exp(large) is inf, and 1 / (1 + inf) is 0 as it should
        return exposure.adjust_sigmoid(np.arange(256, dtype=np.uint8), args["cutoff"],
                                       args["gain"], args["inv"])


KIND = table_kind(
    "sigmoid",
    "Sigmoid contrast (skimage.exposure.adjust_sigmoid): 255 / (1 + exp(gain * (cutoff - v/255))).",
    sigmoid_tables,
    args=(
        Arg("cutoff", FLOAT, "the level (0 to 1) at the curve's midpoint",
            default=0.5, minimum=0, maximum=1),
        Arg("gain", FLOAT, "the curve's steepness", default=10.0, minimum=0),
        Arg("inv", BOOL, "the inverted curve (1 minus the sigmoid)", default=False),
    ),
)
