"""The `stretch` kind: contrast stretching between two percentiles (rescale_intensity)."""

from __future__ import annotations

from typing import Any

from ..registry import FLOAT, Arg, ArgError
from ._image_kinds import table_kind


def stretch_tables(args: dict[str, Any], histograms: Any) -> Any:
    """rescale_intensity(v, in_range=np.percentile(image, (low, high))) of every 8-bit value.

    The percentiles are those of all colour samples together, found from the
    histograms with numpy's own arithmetic (method "linear").
    """
    import numpy as np
    from skimage import exposure

    histogram = histograms.sum(axis=0)
    in_range = (percentile(histogram, args["low"]), percentile(histogram, args["high"]))
    return exposure.rescale_intensity(np.arange(256, dtype=np.uint8), in_range=in_range)


def percentile(histogram: Any, q: float) -> float:
    """np.percentile(samples, q) of the samples `histogram` counts (value v counted at [v]).

    numpy's linear method: the virtual index (n - 1) * q / 100 between the
    sorted samples a (at its floor) and b (the next one), a + (b - a) * t for
    t < 0.5, else b - (b - a) * (1 - t), in float64; past the last sample, the last.
    """
    import numpy as np

    cumulative = np.cumsum(np.asarray(histogram, dtype=np.int64))
    n = int(cumulative[-1])
    if n == 0:
        raise ValueError("the histogram is empty")
    virtual = (n - 1) * (q / 100)
    if virtual >= n - 1:
        return float(np.searchsorted(cumulative, n - 1, side="right"))
    below = int(np.floor(virtual))
    a, b = (int(np.searchsorted(cumulative, i, side="right")) for i in (below, below + 1))
    t = virtual - below
    difference = float(b - a)
    return a + difference * t if t < 0.5 else b - difference * (1 - t)


def check(args: dict[str, Any]) -> None:
    if args["low"] >= args["high"]:
        raise ArgError("low", f"low must be below high, got low={args['low']:g} "
                              f"and high={args['high']:g}")


KIND = table_kind(
    "stretch",
    "Contrast stretching (skimage.exposure.rescale_intensity) from the low-th to the high-th "
    "percentile to 0..255.",
    stretch_tables,
    args=(
        Arg("low", FLOAT, "the percentile of the colour samples that becomes 0",
            default=2.0, minimum=0, maximum=100),
        Arg("high", FLOAT, "the percentile of the colour samples that becomes 255",
            default=98.0, minimum=0, maximum=100),
    ),
    check=check,
)
