"""The `clahe` kind: contrast-limited adaptive histogram equalization (equalize_adapthist)."""

from __future__ import annotations

from typing import Any

from .. import wire
from ..registry import (
    FILE,
    FLOAT,
    IMAGE,
    INT,
    INTEGERS,
    ORIENT,
    Arg,
    ArgError,
    JobContext,
    Kind,
    Limits,
    Output,
    Progress,
)

# Regions x bins the clipping may work through (scikit-image's clip_histogram runs
# in Python once per region, about 0.6 ms for 256 bins): the default 64 regions
# of 256 bins use 16,384; this allows 4,096 such regions (about 3 s).
MAX_REGION_BINS = 1 << 20
# Bytes a pixel: the decoded image (1 to 4), the intensities (1), the 16-bit results (2).
_EXTRA_BYTES_PER_PIXEL = 3
# The strips' working set and the interpreter with numpy, Pillow and scikit-image.
_FIXED_BYTES = 120 * 1024 * 1024


def clahe(ctx: JobContext) -> Output:
    from ._imaging import image_output, load_pixels, open_input
    from ._tables import colour_histograms, histogram_value_of

    args, file, limits = ctx.args, ctx.files["image"], ctx.limits
    im = open_input(file, limits)
    with im:
        swaps = args["orient"] and im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        _check_image(im, args, file.size, limits, size=im.size[::-1] if swaps else im.size)
        load_pixels(im)
        pixels = _oriented(im) if args["orient"] else im
        before = colour_histograms(pixels)
        out = clahe_pixels(pixels, args, ctx.progress)
        value = {"histogram": histogram_value_of(before, colour_histograms(out))}
        return image_output(out, im, file.name, value)


def clahe_step(picture: Any, ctx: JobContext) -> Any:
    _check_image(picture.image, ctx.args, 0, ctx.limits, size=picture.size)
    return clahe_pixels(picture.pixels(), ctx.args)


def clahe_pixels(im: Any, args: dict[str, Any], progress: Progress | None = None) -> Any:
    """equalize_adapthist of the decoded image, in place."""
    from ._clahe import clahe_in_place, kernel_shape

    kernel = kernel_shape(im.size, args["kernel_size"])
    return clahe_in_place(im, kernel, args["clip_limit"], args["nbins"], progress)


def _oriented(im: Any) -> Any:
    from PIL import ImageOps

    return ImageOps.exif_transpose(im) if im.getexif().get(0x0112, 1) in range(2, 9) else im


def _check_image(im: Any, args: dict[str, Any], encoded_bytes: int, limits: Limits,
                 size: tuple[int, int] | None = None) -> None:
    from ._clahe import kernel_shape

    if im.mode == "P":
        raise wire.JobError(
            wire.BAD_INPUT, f"{im.format or 'this'} palette (P) images cannot hold CLAHE's "
            "result, which makes new colours; convert the image to RGB (PNG) first")
    size = size or im.size
    kernel = kernel_shape(size, args["kernel_size"])
    _check_size(im, size, encoded_bytes, kernel, args["nbins"], limits)


def _check_size(im: Any, size: tuple[int, int], encoded_bytes: int, kernel: tuple[int, int],
                nbins: int, limits: Limits) -> None:
    """From the header: the kernel fits the image, the regions and the memory are bounded."""
    from ._clahe import region_count

    width, height = size
    if kernel[0] > height or kernel[1] > width:
        raise wire.JobError(
            wire.BAD_INPUT, f"kernel_size {kernel[0]}x{kernel[1]} (rows x columns) is larger "
            f"than the image ({height} rows x {width} columns)")
    regions = region_count(size, kernel)
    if regions * nbins > MAX_REGION_BINS:
        raise wire.JobError(
            wire.BAD_INPUT, f"kernel_size {kernel[0]}x{kernel[1]} cuts this {width}x{height} "
            f"image into {regions:,} regions; with nbins {nbins} that is more than "
            f"{MAX_REGION_BINS:,} histogram bins: use a larger kernel_size or fewer nbins")
    needed = (width * height * (len(im.getbands()) + _EXTRA_BYTES_PER_PIXEL)
              + 2 * encoded_bytes + _FIXED_BYTES)
    if needed > limits.memory_budget_bytes:
        raise wire.JobError(
            wire.TOO_LARGE, f"CLAHE of this {width}x{height} image needs about "
            f"{needed / 1e6:,.0f} MB; this worker gives a job "
            f"{limits.memory_budget_bytes / 1e6:,.0f} MB")


def check(args: dict[str, Any]) -> None:
    sizes = args["kernel_size"]
    if sizes is None:
        return
    if not 1 <= len(sizes) <= 2 or any(type(k) is not int or k < 1 for k in sizes):
        raise ArgError("kernel_size", f"kernel_size must be one size in pixels, or two (rows,"
                                      f"columns), each an integer >= 1; got {sizes!r}")


KIND = Kind(
    name="clahe",
    summary="Contrast-limited adaptive histogram equalization "
            "(skimage.exposure.equalize_adapthist); colour images on HSV's V channel.",
    run=clahe,
    args=(
        Arg("image", FILE, "the image (JPEG, PNG or BMP; not palette images)"),
        Arg("kernel_size", INTEGERS, "the contextual region in pixels: one size, or rows,columns "
                                     "(default: 1/8 of the image's height and width)",
            default=None, minimum=1),
        Arg("clip_limit", FLOAT, "the clipping limit, 0 to 1 (higher: more contrast; 0 or 1: "
                                 "no clipping)", default=0.01, minimum=0, maximum=1),
        Arg("nbins", INT, "the histogram's number of bins", default=256, minimum=1,
            maximum=16384),
        ORIENT,
    ),
    main_input="image",
    output=IMAGE,
    step=clahe_step,
    # Below the shared cap: CLAHE keeps about 3 more bytes a pixel beside the image.
    max_pixels=50_000_000,
    check=check,
)
