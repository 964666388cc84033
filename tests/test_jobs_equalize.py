"""The equalize job against scikit-image itself, and every kind of odd or bad input."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageCms, ImageFile, JpegImagePlugin
from skimage import exposure, util
from skimage import io as skio

from worker_src import wire
from worker_src.jobs._imaging import DEFAULT_MAX_PIXELS, output_content_type
from worker_src.jobs.equalize import equalization_lut, equalize_image, equalize_pixels

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


def photo(mode: str, size: tuple[int, int] = (96, 64), seed: int = 0) -> Image.Image:
    """A small low-contrast photo-like image: a gradient plus noise; alpha is a ramp."""
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 80 + 60 * (x / width) + 30 * np.sin(y / 7.0)
    colours = 1 if mode in ("L", "LA") else 3
    channels = [base + 10 * c + rng.normal(0, 6, base.shape) for c in range(colours)]
    if mode in ("LA", "RGBA"):
        channels.append((x * 255) // max(1, width - 1))
    pixels = np.stack(channels, axis=-1).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels, mode)


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


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def crafted_png(width: int, height: int, *, depth: int = 8, colour_type: int = 2,
                rows: bytes | None = None) -> bytes:
    """A PNG written by hand; without `rows` it is a header only: no pixel data at all."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0))
    data = png_chunk(b"IDAT", zlib.compress(rows)) if rows is not None else b""
    return b"\x89PNG\r\n\x1a\n" + header + data + png_chunk(b"IEND", b"")


def job_error(data, **kwargs) -> wire.JobError:
    with pytest.raises(wire.JobError) as caught:
        equalize_image(data, **kwargs)
    return caught.value


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


def test_file_object_input_works_like_bytes(tmp_path: Path) -> None:
    data = encoded(photo("RGB", seed=6), "PNG")
    path = tmp_path / "in.png"
    path.write_bytes(data)
    with path.open("rb") as handle:
        assert equalize_image(handle) == equalize_image(data)


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


# ------------------------------------------------------------ bad input


def test_loading_truncated_images_stays_off() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_empty_file_is_bad_input() -> None:
    error = job_error(b"")
    assert error.code == wire.BAD_INPUT and "empty (0 bytes)" in error.message


@pytest.mark.parametrize("data", [
    b"hello, this is a text file named photo.jpg\n",
    b"\xff\xd8 not really a JPEG",
    bytes(range(256)) * 4,
    b"%PDF-1.4\n",
])
def test_not_an_image_is_bad_input(data: bytes) -> None:
    error = job_error(data)
    assert error.code == wire.BAD_INPUT and error.message.startswith("not an image")


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.1])
def test_truncated_jpeg_is_bad_input(keep: float) -> None:
    data = encoded(photo("RGB", size=(160, 120)), "JPEG")
    error = job_error(data[:int(len(data) * keep)])
    assert error.code == wire.BAD_INPUT
    assert "damaged or truncated" in error.message


def test_png_with_a_bad_crc_in_its_pixel_data_is_bad_input() -> None:
    data = bytearray(encoded(photo("RGB"), "PNG"))
    start = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[start - 4:start])
    data[start + 4 + length] ^= 0xFF  # first byte of IDAT's CRC
    error = job_error(bytes(data))
    assert error.code == wire.BAD_INPUT
    assert error.message == "corrupt PNG: bad CRC in the IDAT chunk"


def test_png_with_a_bad_header_crc_is_bad_input() -> None:
    data = bytearray(encoded(photo("RGB"), "PNG"))
    data[29] ^= 0xFF  # IHDR's CRC
    assert job_error(bytes(data)).code == wire.BAD_INPUT


def test_png_with_flipped_pixel_data_but_valid_crc_is_bad_input() -> None:
    rows = b"".join(b"\x00" + bytes([7] * 30) for _ in range(10))
    data = bytearray(crafted_png(10, 10, rows=rows))
    start = data.index(b"IDAT") + 4
    data[start + 2] ^= 0xFF  # corrupt the deflate stream, then fix the CRC
    length = struct.unpack(">I", data[start - 8:start - 4])[0]
    crc = zlib.crc32(bytes(data[start - 4:start + length]))
    data[start + length:start + length + 4] = struct.pack(">I", crc)
    assert job_error(bytes(data)).code == wire.BAD_INPUT


def test_truncated_png_is_bad_input() -> None:
    data = encoded(photo("RGB", size=(160, 120)), "PNG")
    error = job_error(data[:len(data) // 2])
    assert error.code == wire.BAD_INPUT and "truncated PNG" in error.message


@pytest.mark.parametrize("keep", [0.6, 0.05])
def test_truncated_gif_is_bad_input(keep: float) -> None:
    data = encoded(photo("RGB", size=(160, 120)).quantize(64), "GIF")
    error = job_error(data[:int(len(data) * keep)])
    assert error.code == wire.BAD_INPUT and "damaged or truncated" in error.message


def test_equalize_pixels_refuses_modes_it_cannot_equalize() -> None:
    with pytest.raises(ValueError, match="CMYK"):
        equalize_pixels(Image.new("CMYK", (4, 4)))


def test_header_claiming_60000_by_60000_is_too_large_without_any_pixel_data() -> None:
    data = crafted_png(60000, 60000)  # 3.6 G pixels claimed; the file has none
    assert len(data) < 100
    cap = Image.MAX_IMAGE_PIXELS
    error = job_error(data)
    assert error.code == wire.TOO_LARGE
    assert "60000x60000 = 3,600,000,000 pixels; this worker takes at most" in error.message
    assert Image.MAX_IMAGE_PIXELS == cap  # Pillow's own cap is back in place


def test_over_the_workers_limit_is_too_large_from_the_header_alone() -> None:
    data = crafted_png(12000, 10001)  # 120,012,000 pixels, just over the default; no pixels
    error = job_error(data)
    assert error.code == wire.TOO_LARGE
    assert "12000x10001" in error.message and f"{DEFAULT_MAX_PIXELS:,}" in error.message
    assert job_error(crafted_png(30, 20), max_pixels=599).code == wire.TOO_LARGE


def test_a_limit_just_large_enough_passes() -> None:
    data = encoded(photo("L", size=(30, 20)), "PNG")
    assert decode(equalize_image(data, max_pixels=600)).size == (30, 20)


def test_a_100_megapixel_header_passes_the_default_limit() -> None:
    # The header passes the size check; only then is the (missing) pixel data read.
    error = job_error(crafted_png(11547, 8660))
    assert error.code == wire.BAD_INPUT and "truncated" in error.message


@pytest.mark.parametrize(("depth", "colour_type", "channels", "kind"), [
    (16, 0, 1, "grayscale"), (16, 2, 3, "RGB"), (16, 6, 4, "RGBA"),
    (16, 4, 2, "grayscale with alpha"),
])
def test_16_bit_png_is_bad_input(depth: int, colour_type: int, channels: int, kind: str) -> None:
    rows = b"".join(b"\x00" + bytes(range(channels * 2 * 4)) for _ in range(3))
    error = job_error(crafted_png(4, 3, depth=depth, colour_type=colour_type, rows=rows))
    assert error.code == wire.BAD_INPUT
    assert error.message == f"16-bit PNG ({kind}) is not supported; send an 8-bit image"


def test_cmyk_jpeg_is_bad_input() -> None:
    data = encoded(photo("RGB").convert("CMYK"), "JPEG")
    error = job_error(data)
    assert error.code == wire.BAD_INPUT and error.message.startswith("CMYK JPEG")


@pytest.mark.parametrize("fmt", ["PNG", "BMP"])
def test_1_bit_image_is_bad_input(fmt: str) -> None:
    data = encoded(photo("L").convert("1"), fmt)
    assert Image.open(io.BytesIO(data)).mode == "1"
    error = job_error(data)
    assert error.code == wire.BAD_INPUT and error.message.startswith("1-bit")


@pytest.mark.parametrize("fmt", ["GIF", "PNG"])
def test_animated_image_is_bad_input(fmt: str) -> None:
    frames = [photo("RGB", seed=s).quantize(16) for s in range(3)]
    data = encoded(frames[0], fmt, save_all=True, append_images=frames[1:])
    error = job_error(data)
    assert error.code == wire.BAD_INPUT
    assert error.message.startswith(f"animated {fmt} (3 frames)")


@pytest.mark.parametrize("fmt", ["TIFF", "WEBP"])
def test_unsupported_formats_are_bad_input_naming_the_format(fmt: str) -> None:
    try:
        data = encoded(photo("RGB"), fmt)
    except (KeyError, OSError):
        pytest.skip(f"this Pillow cannot write {fmt}")
    error = job_error(data)
    assert error.code == wire.BAD_INPUT and error.message.startswith(f"{fmt} images are not")


def test_other_modes_are_bad_input_naming_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker_src.jobs import _imaging

    # No supported format yields such a mode today; pretend RGBA were one.
    monkeypatch.setattr(_imaging, "MODES", ("L", "LA", "RGB", "P"))
    error = job_error(encoded(photo("RGBA"), "PNG"))
    assert error.code == wire.BAD_INPUT and error.message.startswith("image mode RGBA is not")


# ------------------------------------------------------------ content type


def test_output_content_type() -> None:
    assert output_content_type(encoded(photo("RGB"), "JPEG")) == "image/jpeg"
    assert output_content_type(encoded(photo("RGB"), "PNG")) == "image/png"
    assert output_content_type(encoded(photo("RGB").quantize(8), "GIF")) == "image/gif"
    assert output_content_type(encoded(photo("RGB"), "BMP")) == "image/bmp"
    assert output_content_type(b"hello") == "application/octet-stream"
    assert output_content_type("JPEG") == "image/jpeg"
    assert output_content_type("MPO") == "image/jpeg"
    assert output_content_type("photo.JPG") == "image/jpeg"
    assert output_content_type("scan.png") == "image/png"
    assert output_content_type("notes.txt") == "application/octet-stream"


def test_our_extension_table_is_pillows_for_our_formats() -> None:
    from worker_src.jobs import _imaging

    pillows = {extension: fmt for extension, fmt in Image.registered_extensions().items()
               if fmt in _imaging.FORMATS}
    assert _imaging._EXTENSIONS == pillows


# ------------------------------------------------------- the benchmark's smoke test


@pytest.mark.filterwarnings("ignore:This might be a color image")
def test_bench_image_measures_each_method_on_a_tiny_image(tmp_path: Path) -> None:
    from bench.image import Case, make_image, max_difference, measure_once, run_method

    path = make_image(tmp_path / "tiny.jpg", Case(0.01, "RGB", "JPEG"))
    assert decode(path.read_bytes()).size == (115, 86)
    for method in ("a", "c"):
        assert run_method(method, path) > 0
    seconds, peak_bytes = measure_once("b", path)  # in a fresh process
    assert 0 < seconds < 60 and peak_bytes > 10_000_000
    assert max_difference(path) == 0


def test_bench_image_rows_of_every_kind_on_a_tiny_image(tmp_path: Path) -> None:
    from bench.image import KIND_ARGS, Case, make_image, max_difference, run_method

    case = Case(0.01, "RGB", "JPEG")
    path = make_image(tmp_path / "tiny.jpg", case)
    reference = make_image(tmp_path / "reference.jpg", case, seed=1)
    for kind in KIND_ARGS:
        ref = reference if kind == "match" else None
        assert max_difference(path, kind, ref) == 0, kind
        for method in ("a", "b", "c"):
            assert run_method(method, path, kind, ref) > 0
