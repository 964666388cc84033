"""The `equalize` kind: histogram equalization, as skimage.exposure.equalize_hist does it.

The result is `img_as_ubyte(equalize_hist(img))` for the 8-bit image as
scikit-image reads it (one histogram over all colour channels), alpha passed
through. For 8-bit input every output value depends only on the input value:
the whole computation is one 256-entry table built from the image's histogram.
"""

from __future__ import annotations

from typing import Any

from ..registry import FILE, Arg
from ._image_kinds import table_kind


def equalization_lut(histogram: Any) -> Any:
    """The uint8 table equalize_hist + img_as_ubyte amount to, for an 8-bit histogram.

    `histogram[v]` counts the samples of value v over all colour channels. The
    arithmetic is skimage.exposure.equalize_hist's for integer images: bins are
    the integers from the image's min to its max, the cdf is cumsum / total in
    float64, values are mapped with np.interp over the bin centers; then
    skimage's own img_as_ubyte rounds.
    """
    import numpy as np
    from skimage.util import img_as_ubyte

    hist = np.asarray(histogram, dtype=np.int64)
    if hist.shape != (256,):
        raise ValueError("an 8-bit histogram has 256 entries")
    present = np.flatnonzero(hist)
    if present.size == 0:
        raise ValueError("the histogram is empty")
    low, high = int(present[0]), int(present[-1])
    cdf = hist[low:high + 1].cumsum()
    cdf = cdf / float(cdf[-1])
    bin_centers = np.arange(low, high + 1)
    return img_as_ubyte(np.interp(np.arange(256), bin_centers, cdf))


KIND = table_kind(
    "equalize",
    "Histogram equalization (skimage.exposure.equalize_hist), same format and mode.",
    lambda _args, histograms: equalization_lut(histograms.sum(axis=0)),
    image=Arg("image", FILE, "the image to equalize (JPEG, PNG, GIF or BMP)"),
)
