"""The equalize job against scikit-image itself, on every format and mode it keeps."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageCms, JpegImagePlugin
from skimage import exposure, util
from skimage import io as skio

from tests.exposure_helpers import equalize_image, equalize_pixels, photo
from worker_src.jobs.equalize import equalization_lut

# ---------------------------------------------------------------- helpers


def skimage_equalized(pixels: np.ndarray) -> np.ndarray:
    """The reference: what the original code computed, on colour channels only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "This might be a color image"
        return util.img_as_ubyte(exposure.equalize_hist(pixels))


def reference_for(pixels: np.ndarray, mode: str) -> np.ndarray:
    """skimage on the colour channels; the alpha channel (LA, RGBA) unchanged."""
    if mode in ("LA", "RGBA"):
        out = pixels.copy()
        out[..., :-1] = skimage_equalized(pixels[..., :-1])
        return out
    return skimage_equalized(pixels)


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def skimage_read(data: bytes, tmp_path: Path, name: str) -> np.ndarray:
    path = tmp_path / name
    path.write_bytes(data)
    return skio.imread(path)


# ------------------------------------------------- the lookup table itself


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12),
                                      st.sampled_from([1, 3]))))
def test_lut_equals_skimage_on_any_8bit_image(pixels: np.ndarray) -> None:
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    lut = np.array(equalization_lut(np.bincount(pixels.ravel(), minlength=256)), dtype=np.uint8)
    assert np.array_equal(lut[pixels], skimage_equalized(pixels))


@pytest.mark.parametrize("values", [[0], [255], [7], [0, 255], [3, 4], list(range(256))])
def test_lut_on_degenerate_histograms(values: list[int]) -> None:
    pixels = np.array(values * 3, dtype=np.uint8).reshape(3, len(values))
    lut = np.array(equalization_lut(np.bincount(pixels.ravel(), minlength=256)), dtype=np.uint8)
    assert np.array_equal(lut[pixels], skimage_equalized(pixels))


def test_lut_rejects_a_histogram_that_is_not_8bit() -> None:
    with pytest.raises(ValueError):
        equalization_lut([1] * 255)
    with pytest.raises(ValueError):
        equalization_lut([0] * 256)


# --------------------------------------------- pixels: same as skimage's


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_equalize_pixels_equals_skimage_and_keeps_alpha(mode: str) -> None:
    image = photo(mode, seed=3)
    pixels = np.asarray(image)
    out = equalize_pixels(image)
    assert out.mode == mode and out.size == image.size
    assert np.array_equal(np.asarray(out), reference_for(pixels, mode))
    assert np.array_equal(np.asarray(image), pixels), "the input must not change"
    if mode in ("LA", "RGBA"):
        assert np.array_equal(np.asarray(out)[..., -1], pixels[..., -1])


def test_equalize_pixels_in_strips_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker_src.jobs import _tables

    image = photo("RGB", size=(50, 41), seed=5)
    whole = np.asarray(equalize_pixels(image))
    monkeypatch.setattr(_tables, "STRIP_PIXELS", 50 * 3)  # 3 rows per strip, last one short
    strips = np.asarray(equalize_pixels(image, in_place=True))
    assert np.array_equal(strips, whole)
    assert np.array_equal(strips, skimage_equalized(np.asarray(photo("RGB", (50, 41), 5))))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["L", "LA", "RGB", "RGBA"]), st.integers(1, 40), st.integers(1, 40),
       st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, 255))
def test_property_png_output_equals_skimage(mode: str, width: int, height: int, seed: int,
                                            low: int, high: int) -> None:
    low, high = min(low, high), max(low, high)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(low, high + 1, (height, width, len(mode)), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if len(mode) == 1 else pixels, mode)
    out = decode(equalize_image(encoded(image, "PNG")))
    assert (out.format, out.mode, out.size) == ("PNG", mode, image.size)
    expected = reference_for(np.asarray(image), mode)
    assert np.array_equal(np.asarray(out), expected)


# ------------------------------------ whole files: format, mode, size kept


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_png_equals_skimage_reading_the_same_file(mode: str, tmp_path: Path) -> None:
    data = encoded(photo(mode, seed=11), "PNG")
    out = decode(equalize_image(data))
    assert (out.format, out.mode, out.size) == ("PNG", mode, (96, 64))
    as_skimage_reads_it = skimage_read(data, tmp_path, "in.png")
    assert np.array_equal(np.asarray(out), reference_for(as_skimage_reads_it, mode))


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_pixels_equal_skimage_before_encoding(mode: str, tmp_path: Path) -> None:
    data = encoded(photo(mode, size=(160, 120), seed=2), "JPEG", quality=90)
    decoded = decode(data)
    as_skimage_reads_it = skimage_read(data, tmp_path, "in.jpg")
    assert np.array_equal(np.asarray(decoded), as_skimage_reads_it)
    expected = skimage_equalized(as_skimage_reads_it)
    assert np.array_equal(np.asarray(equalize_pixels(decoded)), expected)


@pytest.mark.parametrize("subsampling", [0, 1, 2])
def test_jpeg_stays_jpeg_with_its_quality_and_subsampling(subsampling: int) -> None:
    source = photo("RGB", size=(160, 120), seed=4)
    data = encoded(source, "JPEG", quality=83, subsampling=subsampling)
    out_bytes = equalize_image(data)
    before, after = decode(data), decode(out_bytes)
    assert (after.format, after.mode, after.size) == ("JPEG", "RGB", (160, 120))
    assert after.quantization == before.quantization
    assert JpegImagePlugin.get_sampling(after) == subsampling
    # Same encoder settings: the output is the equalized pixels, re-encoded close to them.
    expected = np.asarray(equalize_pixels(before)).astype(int)
    assert np.abs(np.asarray(after).astype(int) - expected).mean() < 3


def test_progressive_jpeg_stays_progressive() -> None:
    data = encoded(photo("L", seed=8), "JPEG", quality=90, progressive=True)
    assert decode(equalize_image(data)).info.get("progressive")


def test_grayscale_jpeg_stays_grayscale() -> None:
    out = decode(equalize_image(encoded(photo("L"), "JPEG")))
    assert (out.format, out.mode) == ("JPEG", "L")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_and_icc_profile_are_kept_not_applied(fmt: str) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees to display
    exif[0x010F] = "TestCam"
    source = photo("RGB", size=(80, 48), seed=9)
    out = decode(equalize_image(encoded(source, fmt, exif=exif.tobytes(), icc_profile=icc)))
    assert out.size == (80, 48), "the orientation must not be applied"
    assert out.getexif()[0x0112] == 6 and out.getexif()[0x010F] == "TestCam"
    assert out.info["icc_profile"] == icc


def test_png_text_dpi_and_transparency_are_kept() -> None:
    from PIL.PngImagePlugin import PngInfo

    text = PngInfo()
    text.add_text("Title", "a test")
    data = encoded(photo("RGB", seed=1), "PNG", pnginfo=text, dpi=(300, 300),
                   transparency=(1, 2, 3))
    out = decode(equalize_image(data))
    assert out.text["Title"] == "a test"
    assert out.info["transparency"] == (1, 2, 3)
    assert tuple(round(v) for v in out.info["dpi"]) == (300, 300)


# ------------------------------------------------- palette and other kinds


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP"])
def test_palette_image_keeps_its_pixels_and_equalizes_its_palette(fmt: str,
                                                                  tmp_path: Path) -> None:
    source = photo("RGB", seed=12).quantize(40)
    data = encoded(source, fmt)
    out = decode(equalize_image(data))
    assert (out.format, out.mode, out.size) == (fmt, "P", source.size)
    as_skimage_reads_it = skimage_read(data, tmp_path, f"in.{fmt.lower()}")
    if as_skimage_reads_it.ndim == 4:  # imageio reads a GIF as a stack of frames
        as_skimage_reads_it = as_skimage_reads_it[0]
    assert as_skimage_reads_it.shape[-1] == 3
    expected = skimage_equalized(as_skimage_reads_it)
    assert np.array_equal(np.asarray(out.convert("RGB")), expected)


def test_palette_png_keeps_its_transparency() -> None:
    source = photo("RGB", seed=13).quantize(16)
    out = decode(equalize_image(encoded(source, "PNG", transparency=5)))
    assert out.mode == "P" and out.info["transparency"] == 5


def test_gif_transparency_is_kept() -> None:
    source = photo("RGB", seed=14).quantize(16)
    out = decode(equalize_image(encoded(source, "GIF", transparency=2)))
    assert out.info["transparency"] == 2


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_bmp_stays_bmp(mode: str) -> None:
    source = photo(mode, seed=15)
    out = decode(equalize_image(encoded(source, "BMP")))
    assert (out.format, out.mode) == ("BMP", mode)
    assert np.array_equal(np.asarray(out), reference_for(np.asarray(source), mode))


def test_mpo_camera_jpeg_gives_the_primary_image_as_plain_jpeg() -> None:
    primary, preview = photo("RGB", seed=16), photo("RGB", size=(24, 16), seed=17)
    data = encoded(primary, "MPO", save_all=True, append_images=[preview], quality=90)
    assert Image.open(io.BytesIO(data)).format == "MPO"
    out = decode(equalize_image(data))
    assert (out.format, out.size) == ("JPEG", primary.size)
    assert getattr(out, "n_frames", 1) == 1
    expected = np.asarray(equalize_pixels(decode(data))).astype(int)
    assert np.abs(np.asarray(out).astype(int) - expected).mean() < 3
