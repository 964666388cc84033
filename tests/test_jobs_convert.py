"""The convert kind against Pillow's own encoders of JPEG, PNG, WebP and AVIF."""

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from tests.exposure_helpers import decoded, encoded, limits
from tests.image_steps_helpers import MODES, opened, picture, png_file, run, same_pixels
from worker_src import registry, wire
from worker_src.store import MemoryFile

FORMATS = {"jpeg": ("JPEG", "image/jpeg", ".jpg"), "png": ("PNG", "image/png", ".png"),
           "webp": ("WEBP", "image/webp", ".webp"), "avif": ("AVIF", "image/avif", ".avif")}


def pillow_encoded(im, fmt, **params):
    """Pillow's own encode of `im`, the alpha of a JPEG laid over white first, decoded."""
    if fmt == "JPEG" and (im.mode in ("LA", "RGBA", "P") or "transparency" in im.info):
        grey = im.mode in ("L", "LA")
        white = Image.new("RGBA", im.size, "white")
        im = Image.alpha_composite(white, im.convert("RGBA")).convert("L" if grey else "RGB")
    buffer = io.BytesIO()
    im.save(buffer, fmt, **params)
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", FORMATS)
def test_convert_gives_pillows_own_encode_of_the_pixels(mode, name):
    fmt, content_type, suffix = FORMATS[name]
    file = png_file(mode)
    output = run("convert", {"image": file}, format=name)
    assert (output.content_type, output.suffix) == (content_type, suffix)
    assert same_pixels(decoded(output), pillow_encoded(opened(file), fmt))


@pytest.mark.parametrize("mode", ("RGB", "RGBA"))
def test_lossless_webp_keeps_every_pixel(mode):
    file = png_file(mode)
    out = decoded(run("convert", {"image": file}, format="webp", lossless="true"))
    assert same_pixels(out, opened(file))


def test_quality_changes_the_lossy_encode_as_pillows_quality_does():
    file = png_file("RGB", size=(120, 80))
    low = run("convert", {"image": file}, format="webp", quality="10")
    high = run("convert", {"image": file}, format="webp", quality="95")
    assert len(low.data) < len(high.data)
    assert same_pixels(decoded(low), pillow_encoded(opened(file), "WEBP", quality=10))


@pytest.mark.parametrize("name", FORMATS)
def test_metadata_is_kept_or_stripped_and_the_icc_profile_always_kept(name):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "wqw test camera"
    file = MemoryFile("in.jpg", encoded(picture("RGB"), "JPEG", exif=exif.tobytes(),
                                      icc_profile=icc))
    kept = decoded(run("convert", {"image": file}, format=name))
    stripped = decoded(run("convert", {"image": file}, format=name, metadata="strip"))
    assert kept.getexif().get(0x010F) == "wqw test camera"
    assert 0x010F not in stripped.getexif()
    assert kept.info.get("icc_profile") == stripped.info.get("icc_profile") == icc


@pytest.mark.parametrize("args, message", [
    ({"format": "gif"}, "format must be a string one of jpeg, png, webp, avif"),
    ({"format": "jpeg", "lossless": True}, "Pillow's jpeg encoder has no lossless mode"),
    ({"format": "avif", "lossless": True}, "Pillow's avif encoder has no lossless mode"),
    ({"format": "png", "quality": 80}, "png is lossless: it takes no quality"),
    ({"format": "webp", "quality": 0}, "quality must be an integer >= 1 and <= 100"),
    ({}, "convert needs the argument format"),
])
def test_impossible_conversions_are_refused_before_anything_is_sent(args, message):
    with pytest.raises(registry.ArgError, match=message):
        registry.get_kind("convert").check_args({"image": "x", **args})


def test_an_image_wider_than_webp_allows_is_bad_input():
    file = MemoryFile("wide.png", encoded(Image.new("L", (17_000, 2), 128), "PNG"))
    kind = registry.get_kind("convert")
    with pytest.raises(wire.JobError) as caught:
        kind.run(registry.JobContext(kind.check_args({"image": "x", "format": "webp"}),
                                     {"image": file}, limits()))
    assert caught.value.code == wire.BAD_INPUT and "at most 16,383 pixels a side" in (
        caught.value.message)


def test_a_jpeg_with_alpha_is_laid_over_white():
    im = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    out = decoded(run("convert", {"image": MemoryFile("t.png", encoded(im))}, format="jpeg"))
    assert out.mode == "RGB" and np.asarray(out).min() >= 250


def test_an_avif_too_large_for_the_memory_budget_is_refused_from_the_header():
    from tests.exposure_helpers import crafted_png

    # A header only: no pixel data at all, so nothing can have been decoded.
    file = MemoryFile("big.png", crafted_png(2000, 1500))
    kind = registry.get_kind("convert")
    small = limits(memory_budget_bytes=150 * 1024 * 1024)
    with pytest.raises(wire.JobError) as caught:
        kind.run(registry.JobContext(kind.check_args({"image": "x", "format": "avif"}),
                                     {"image": file}, small))
    assert caught.value.code == wire.TOO_LARGE
    assert "encoding this 2000x1500 image as AVIF needs about 201 MB" in caught.value.message
    with pytest.raises(wire.JobError) as truncated:  # WebP fits: then the pixels are read
        kind.run(registry.JobContext(kind.check_args({"image": "x", "format": "webp"}),
                                     {"image": file}, small))
    assert truncated.value.code == wire.BAD_INPUT
