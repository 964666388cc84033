"""The `match` kind: histogram matching to a reference image (exposure.match_histograms)."""

from __future__ import annotations

from typing import Any

from .. import wire
from ..registry import FILE, IMAGE, ORIENT, Arg, JobContext, JobFile, Kind, Limits, Output

REFERENCE = "the reference"


def match(ctx: JobContext) -> Output:
    from ._imaging import open_input
    from ._tables import tables_output

    files, limits = ctx.files, ctx.limits
    if "reference" not in files:
        raise wire.JobError(wire.BAD_INPUT, "match needs the argument reference: "
                                            "the image whose histogram to match")
    im = open_input(files["image"], limits)
    with im:
        # Both headers are checked before either image is decoded.
        reference_histograms = _reference_histograms(im, files["reference"], limits)
        # The reference's pixels are freed before the image's are decoded.
        return tables_output(im, files["image"].name,
                             lambda histograms: match_tables(histograms, reference_histograms),
                             ctx.progress, orient=ctx.args["orient"])


def match_step(picture: Any, ctx: JobContext) -> Any:
    from ._tables import tables_step

    reference_histograms = _reference_histograms(picture.image, ctx.files["reference"],
                                                 ctx.limits)
    return tables_step(picture.pixels(),
                       lambda histograms: match_tables(histograms, reference_histograms))


def _reference_histograms(im: Any, file: JobFile, limits: Limits) -> Any:
    """The reference's colour histograms, after checking it has as many channels as `im`."""
    from ._imaging import colour_band_count, load_pixels, open_input
    from ._tables import colour_histograms

    with open_input(file, limits, label=REFERENCE) as reference:
        if colour_band_count(im) != colour_band_count(reference):
            raise wire.JobError(wire.BAD_INPUT, _channels_message(im, reference))
        load_pixels(reference, label=REFERENCE)
        return colour_histograms(reference)


def match_tables(histograms: Any, reference_histograms: Any) -> Any:
    """One uint8 table per channel: match_histograms' mapping of each 8-bit value.

    scikit-image's arithmetic for unsigned images, channel by channel: the
    image's cumulative counts over its pixel count, interpolated (np.interp)
    into the reference's cumulative counts of the values it has; stored in a
    uint8 image, so truncated. A grayscale image gets the same truncation (its
    colour path's answer); see docs/jobs.md.
    """
    import numpy as np

    tables = np.zeros((len(histograms), 256), dtype=np.uint8)
    for channel, (source, template) in enumerate(zip(histograms, reference_histograms,
                                                     strict=True)):
        present = np.flatnonzero(source)
        if present.size == 0:
            raise ValueError("the image's histogram is empty")
        source = np.asarray(source[:present[-1] + 1], dtype=np.int64)  # bincount's length
        values = np.flatnonzero(template)
        counts = np.asarray(template, dtype=np.int64)[values]
        source_quantiles = np.cumsum(source) / int(source.sum())
        template_quantiles = np.cumsum(counts) / int(counts.sum())
        matched = np.interp(source_quantiles, template_quantiles, values)
        tables[channel, :matched.size] = matched
    return tables


def _channels_message(im: Any, reference: Any) -> str:
    def kind(image: Any) -> str:
        return "grayscale" if image.mode in ("L", "LA") else f"colour ({image.mode})"

    return (f"the image is {kind(im)} and the reference {kind(reference)}: match compares "
            "channel by channel, so both must be grayscale or both colour; convert one of them")


KIND = Kind(
    name="match",
    summary="Histogram matching (skimage.exposure.match_histograms) to a reference image, "
            "channel by channel.",
    run=match,
    args=(
        Arg("image", FILE, "the image to change (JPEG, PNG, GIF or BMP)"),
        Arg("reference", FILE, "the image whose histogram to match (same formats; both "
                               "grayscale or both colour)"),
        ORIENT,
    ),
    main_input="image",
    output=IMAGE,
    step=match_step,
)
