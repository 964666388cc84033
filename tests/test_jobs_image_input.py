"""The image codec's checks, through the equalize kind: every odd or bad input and its error."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageFile

from tests.exposure_helpers import crafted_png, encoded, equalize_image, equalize_pixels, photo
from worker_src import wire
from worker_src.contract import MAX_PIXELS
from worker_src.jobs._imaging import output_content_type


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def job_error(data, **kwargs) -> wire.JobError:
    with pytest.raises(wire.JobError) as caught:
        equalize_image(data, **kwargs)
    return caught.value


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
    assert "12000x10001" in error.message and f"{MAX_PIXELS:,}" in error.message
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
