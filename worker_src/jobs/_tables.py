"""Kinds that are one 256-entry table per colour channel: histograms in, tables applied.

For an 8-bit image, `equalize`, `stretch`, `gamma`, `log`, `sigmoid` and `match`
give each output value as a function of the input value (and of the image's
histograms). A kind supplies `make_tables(histograms)`; this module computes
the histograms with Pillow's C code, applies the tables with `Image.point`
strip by strip in place (a palette image gets its palette changed instead), and
derives the output histogram through the tables: no float array the size of
the image is ever made.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps

from ..registry import JobContext, Output, Progress
from ._imaging import MODES, colour_band_count, image_output, load_pixels, open_input

# Pixels per strip when applying the tables: the extra memory is about one strip.
STRIP_PIXELS = 1_048_576

# histograms (channels x 256 counts) -> tables (channels x 256, or 256 for all channels)
MakeTables = Callable[[np.ndarray], np.ndarray]


def run_tables(ctx: JobContext, make_tables: MakeTables) -> Output:
    """A table kind's whole job on its "image": open and check, decode, apply, encode.

    With the kind's `orient` argument set, the EXIF orientation is applied first.
    """
    file = ctx.files["image"]
    im = open_input(file, ctx.limits)
    with im:
        return tables_output(im, file.name, make_tables, ctx.progress,
                             orient=ctx.args.get("orient", False))


def tables_output(im: Image.Image, input_name: str, make_tables: MakeTables,
                  progress: Progress | None = None, *, orient: bool = False) -> Output:
    """Decode the opened `im`, apply its tables in place, encode; value holds the histograms.

    `progress` hears the share of strips done. With `orient`, the EXIF orientation is
    applied first (ImageOps.exif_transpose).
    """
    load_pixels(im)
    pixels = ImageOps.exif_transpose(im) if orient and _has_orientation(im) else im
    histograms = colour_histograms(pixels)
    tables = full_tables(make_tables(histograms), len(histograms))
    out = apply_tables(pixels, tables, in_place=True, progress=progress)
    return image_output(out, im, input_name, {"histogram": histogram_value(histograms, tables)})


def tables_step(im: Image.Image, make_tables: MakeTables) -> Image.Image:
    """A table kind as a pipeline step: the decoded image with its tables applied in place."""
    histograms = colour_histograms(im)
    return apply_tables(im, full_tables(make_tables(histograms), len(histograms)), in_place=True)


def _has_orientation(im: Image.Image) -> bool:
    return im.getexif().get(0x0112, 1) in range(2, 9)


def colour_histograms(im: Image.Image) -> np.ndarray:
    """Counts of each value 0..255 per colour channel (alpha left out), as scikit-image reads it.

    A palette image reads as RGB: each index's pixel count goes to its colour's values.
    """
    channels = colour_band_count(im)
    if im.mode == "P":
        palette, width, colour = _palette(im)
        counts = np.asarray(im.histogram(), dtype=np.int64)
        histograms = np.zeros((channels, 256), dtype=np.int64)
        for row, channel in enumerate(colour):
            np.add.at(histograms[row], palette[channel::width], counts)
        return histograms
    return np.asarray(im.histogram()[:256 * channels], dtype=np.int64).reshape(channels, 256)


def full_tables(tables: np.ndarray, channels: int) -> np.ndarray:
    """One uint8 table per colour channel (a single table is used for every channel)."""
    tables = np.asarray(tables)
    if tables.dtype != np.uint8:
        raise TypeError(f"tables must be uint8, got {tables.dtype}")
    if tables.shape == (256,):
        return np.tile(tables, (channels, 1))
    if tables.shape != (channels, 256):
        raise ValueError(f"expected {channels} tables of 256 values, got shape {tables.shape}")
    return tables


def apply_tables(im: Image.Image, tables: np.ndarray, *, in_place: bool = False,
                 progress: Progress | None = None) -> Image.Image:
    """The image with table c applied to colour channel c; alpha unchanged; same mode.

    With in_place, the pixels of `im` are overwritten (saves one image of memory).
    """
    if im.mode not in MODES:
        raise ValueError(f"mode {im.mode} has no 8-bit colour channels to map")
    out = im if in_place else im.copy()
    if im.mode == "P":
        palette, width, colour = _palette(im)
        for row, channel in enumerate(colour):
            palette[channel::width] = tables[row][palette[channel::width]]
        out.putpalette(palette.tolist(), im.palette.mode)
        return out
    identity = list(range(256))
    alpha = len(im.getbands()) - len(tables)
    table = [int(v) for v in tables.ravel()] + identity * alpha
    # Strip by strip, in place: the peak stays at one image plus a strip. Pillow
    # may keep a few freed strips for reuse, else each new strip costs page faults.
    rows = max(1, STRIP_PIXELS // max(1, im.width))
    blocks_max = Image.core.get_blocks_max()
    Image.core.set_blocks_max(max(blocks_max, 4))
    try:
        for top in range(0, im.height, rows):
            box = (0, top, im.width, min(im.height, top + rows))
            out.paste(im.crop(box).point(table), box)
            if progress is not None:
                progress(box[3] / im.height)
    finally:
        Image.core.set_blocks_max(blocks_max)
    return out


def histogram_value(histograms: np.ndarray, tables: np.ndarray) -> dict[str, list[int]]:
    """The input's and output's 256-bin histograms, the output's derived through the tables."""
    output = np.zeros((len(histograms), 256), dtype=np.int64)
    for channel, (histogram, table) in enumerate(zip(histograms, tables, strict=True)):
        np.add.at(output[channel], table.astype(np.intp), histogram)
    return histogram_value_of(histograms, output)


def histogram_value_of(before: np.ndarray, after: np.ndarray) -> dict[str, list[int]]:
    """Output.value's "histogram": per-channel histograms summed over the colour channels."""
    return {"input": [int(v) for v in before.sum(axis=0)],
            "output": [int(v) for v in after.sum(axis=0)]}


def _palette(im: Image.Image) -> tuple[np.ndarray, int, list[int]]:
    """The palette as a flat array of 256 entries, its entry width, its colour channels."""
    mode = im.palette.mode
    width = len(mode)
    values = im.getpalette(mode) or []
    values += [0] * (256 * width - len(values))  # Pillow shows missing entries as black
    return (np.asarray(values[:256 * width], dtype=np.int64), width,
            [i for i, band in enumerate(mode) if band != "A"])
