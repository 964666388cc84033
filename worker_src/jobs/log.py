"""The `log` kind: logarithmic correction, as skimage.exposure.adjust_log does it."""

from __future__ import annotations

from typing import Any

from ..registry import BOOL, FLOAT, Arg
from ._image_kinds import table_kind


def log_tables(args: dict[str, Any], _histograms: Any) -> Any:
    """adjust_log of every 8-bit value (its uint8 result, truncated as scikit-image does)."""
    import numpy as np
    from skimage import exposure

    return exposure.adjust_log(np.arange(256, dtype=np.uint8), args["gain"], args["inv"])


KIND = table_kind(
    "log",
    "Logarithmic correction (skimage.exposure.adjust_log): 255 * gain * log2(1 + v/255).",
    log_tables,
    args=(
        # Above 1, scikit-image's uint8 result wraps around (510 becomes 254).
        Arg("gain", FLOAT, "the constant multiplier", default=1.0, minimum=0, maximum=1),
        Arg("inv", BOOL, "the inverse correction: 255 * gain * (2**(v/255) - 1)",
            default=False),
    ),
)
