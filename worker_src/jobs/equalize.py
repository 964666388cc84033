"""The `equalize` kind: histogram equalization, as skimage.exposure.equalize_hist does it.

The result is `img_as_ubyte(equalize_hist(img))` for the 8-bit image as
scikit-image reads it (one histogram over all colour channels), alpha passed
through. For 8-bit input every output value depends only on the input value:
the whole computation is one 256-entry table built from the image's histogram.
"""

from __future__ import annotations

from typing import Any, BinaryIO

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


def equalize_pixels(im: Any, *, in_place: bool = False) -> Any:
    """Equalize a decoded 8-bit PIL image (mode L, LA, RGB, RGBA or P); alpha unchanged."""
    from ._tables import apply_tables, colour_histograms, full_tables

    histograms = colour_histograms(im)
    tables = full_tables(equalization_lut(histograms.sum(axis=0)), len(histograms))
    return apply_tables(im, tables, in_place=in_place)


def equalize_image(data: bytes | BinaryIO, *, max_pixels: int | None = None) -> bytes:
    """Equalize encoded image bytes (or a file); the encoded result, same format."""
    from ._imaging import DEFAULT_MAX_PIXELS, as_seekable, encode, load_pixels, open_image

    im = open_image(as_seekable(data), max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
    with im:
        load_pixels(im)
        return encode(equalize_pixels(im, in_place=True), im)


KIND = table_kind(
    "equalize",
    "Histogram equalization (skimage.exposure.equalize_hist), same format and mode.",
    lambda _args, histograms: equalization_lut(histograms.sum(axis=0)),
    image=Arg("image", FILE, "the image to equalize (JPEG, PNG, GIF or BMP)"),
)
