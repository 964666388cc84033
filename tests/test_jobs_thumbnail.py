"""The thumbnail kind against Pillow's resize(..., LANCZOS) of the full decode."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from tests.exposure_helpers import decoded, limits, run_kind
from tests.image_steps_helpers import (
    MODES,
    ORIENTATIONS,
    jpeg_file,
    opened,
    picture,
    png_file,
    psnr,
    real_looking,
    run,
    same_pixels,
    upright,
)
from worker_src import registry, wire
from worker_src.jobs.thumbnail import fitted_size

# docs/jobs.md states this bound for shrink-on-load (measured: about 46 dB on 12 MP photos).
MIN_PSNR_DB = 40.0


def lanczos(im, size):
    if im.mode == "P":
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    return im.resize(size, Image.Resampling.LANCZOS)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_thumbnail_equals_pillows_lanczos_resize_in_every_mode_and_orientation(mode, orientation):
    file = png_file(mode, orientation, size=(60, 40))
    out = decoded(run("thumbnail", {"image": file}, width="24", orient="true"))
    reference = upright(file)
    size = (24, 16) if orientation < 5 else (24, 36)
    assert same_pixels(out, lanczos(reference, size))
    assert out.getexif().get(0x0112, 1) == 1


def thumbnail_as_png(file, **texts):
    """The thumbnail's pixels before any lossy encode: the pipeline thumbnail, convert to PNG."""
    options = "".join(f":{name}={value}" for name, value in texts.items())
    return decoded(run("pipeline", {"image": file},
                       steps=f"thumbnail{options},convert:format=png"))


@pytest.mark.parametrize("mode", ("L", "RGB"))
@pytest.mark.parametrize("orientation", (1, 5, 8))
def test_a_jpeg_without_shrink_on_load_equals_the_full_decode_resized(mode, orientation):
    file = jpeg_file(real_looking(1, (640, 480)).convert(mode), orientation)
    out = thumbnail_as_png(file, width=200, height=200, shrink_on_load="false", orient="true")
    size = (200, 150) if orientation < 5 else (150, 200)
    assert same_pixels(out, lanczos(upright(file), size))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("orientation", (1, 2, 6, 7))
def test_shrink_on_load_stays_within_the_stated_error(seed, orientation):
    # 1203 x 903: the reduced decode has a partial last row and column to leave out.
    file = jpeg_file(real_looking(seed, (1203, 903)), orientation, quality=92)
    fast = thumbnail_as_png(file, width=400, height=400, orient="true")
    exact = lanczos(upright(file), (400, 300) if orientation < 5 else (300, 400))
    assert fast.size == exact.size
    assert MIN_PSNR_DB <= psnr(fast, exact) < float("inf")  # reduced, and close


def test_an_image_that_fits_keeps_its_size_unless_enlarge_is_asked():
    file = png_file("RGB", size=(30, 20))
    kept = decoded(run("thumbnail", {"image": file}, width="100"))
    assert same_pixels(kept, opened(file))
    larger = decoded(run("thumbnail", {"image": file}, width="90", enlarge="true"))
    assert same_pixels(larger, lanczos(opened(file), (90, 60)))


def test_an_enlarged_thumbnail_beyond_the_pixel_cap_is_too_large():
    file = png_file("L", size=(30, 20))
    with pytest.raises(wire.JobError) as caught:
        run("thumbnail", {"image": file}, width="60000", enlarge="true")
    assert caught.value.code == wire.TOO_LARGE and "60000x40000" in caught.value.message


def test_a_thumbnail_needs_a_width_or_a_height():
    with pytest.raises(registry.ArgError, match="needs a width, a height or both"):
        registry.get_kind("thumbnail").check_args({"image": "x"})


@given(st.integers(1, 5000), st.integers(1, 5000), st.none() | st.integers(1, 3000),
       st.none() | st.integers(1, 3000))
@example(1, 3, 1, 2)  # the height binds, and the scaled width happens to equal box_w
def test_the_fitted_size_fits_keeps_the_aspect_and_touches_a_bound(width, height, box_w, box_h):
    if box_w is None and box_h is None:
        return
    new_w, new_h = fitted_size((width, height), box_w, box_h, enlarge=True)
    assert (box_w is None or new_w <= box_w) and (box_h is None or new_h <= box_h)
    # The bound with the smaller scale is met; the other side is scaled by the aspect ratio,
    # rounded to the nearest pixel.
    if box_h is None or (box_w is not None and box_w / width <= box_h / height):
        assert new_w == box_w
        assert abs(new_h - height * new_w / width) <= 0.5 or new_h == 1
    else:
        assert new_h == box_h
        assert abs(new_w - width * new_h / height) <= 0.5 or new_w == 1
    assert fitted_size((width, height), box_w, box_h, enlarge=False) == (
        (width, height) if (box_w or width) >= width and (box_h or height) >= height
        else (new_w, new_h))


def test_the_draft_is_used_only_for_jpeg_and_a_gif_thumbnail_stays_a_gif():
    im = picture("P", (40, 30))
    from tests.exposure_helpers import encoded
    from worker_src.store import MemoryFile
    file = MemoryFile("a.gif", encoded(im, "GIF", transparency=3))
    output = run("thumbnail", {"image": file}, width="20")
    assert output.content_type == "image/gif" and decoded(output).size == (20, 15)


def test_an_enlarged_thumbnail_beyond_the_memory_budget_is_too_large():
    file = png_file("RGB", size=(30, 20))
    with pytest.raises(wire.JobError) as caught:
        run_kind(registry.get_kind("thumbnail"), {"width": 3000, "enlarge": True},
                 {"image": file}, limits(memory_budget_bytes=120 * 1024 * 1024))
    assert caught.value.code == wire.TOO_LARGE
    assert "a 3000x2000 thumbnail needs about 153 MB" in caught.value.message
