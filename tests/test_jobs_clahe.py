"""The clahe kind against skimage.exposure.equalize_adapthist, bit for bit, and its limits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage import color, exposure, util

from tests.exposure_helpers import (
    decoded,
    encoded,
    expected,
    histogram_of,
    images,
    limits,
    png_file,
    run_kind,
)
from worker_src import wire
from worker_src.jobs import _clahe, clahe
from worker_src.store import MemoryFile

KIND = clahe.KIND


def skimage_clahe(args: dict[str, Any]):
    size = args.get("kernel_size")
    if size is not None:
        size = size[0] if len(size) == 1 else tuple(size)

    def function(colour: np.ndarray) -> np.ndarray:
        return util.img_as_ubyte(exposure.equalize_adapthist(
            colour, kernel_size=size, clip_limit=args.get("clip_limit", 0.01),
            nbins=args.get("nbins", 256)))
    return function


@st.composite
def image_and_args(draw: st.DrawFn) -> tuple[np.ndarray, str, dict[str, Any]]:
    pixels, mode = draw(images(max_side=40))
    height, width = pixels.shape[:2]
    args: dict[str, Any] = {}
    shape = draw(st.sampled_from(["default", "one", "two"]))
    if shape == "one":
        args["kernel_size"] = [draw(st.integers(1, min(height, width)))]
    elif shape == "two":
        args["kernel_size"] = [draw(st.integers(1, height)), draw(st.integers(1, width))]
    args["clip_limit"] = draw(st.one_of(st.sampled_from([0.0, 0.01, 1.0]), st.floats(0, 1)))
    args["nbins"] = draw(st.one_of(st.sampled_from([1, 2, 256]), st.integers(1, 600)))
    return pixels, mode, args


@settings(max_examples=60, deadline=None)
@given(image_and_args())
def test_property_clahe_equals_skimage(case: tuple[np.ndarray, str, dict[str, Any]]) -> None:
    pixels, mode, args = case
    output = run_kind(KIND, args, {"image": png_file(pixels, mode)})
    out = decoded(output)
    assert (out.format, out.mode, out.size) == ("PNG", mode, (pixels.shape[1], pixels.shape[0]))
    result = np.asarray(out)
    assert np.array_equal(result, expected(pixels, mode, skimage_clahe(args)))
    assert output.value["histogram"] == {"input": histogram_of(pixels, mode),
                                         "output": histogram_of(result, mode)}


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_strips_of_a_few_rows_give_the_same_photo(mode: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:90, 0:130]
    base = 90 + 50 * np.sin(x / 17.0) + 30 * np.cos(y / 11.0)
    channels = [base + 15 * c + rng.normal(0, 8, base.shape) for c in range(len(mode))]
    pixels = np.stack(channels, -1).clip(0, 255).astype(np.uint8)
    pixels = pixels[..., 0] if mode == "L" else pixels
    monkeypatch.setattr(_clahe, "STRIP_PIXELS", 130 * 3 + 7)  # 3 rows a strip, last one short
    result = np.asarray(decoded(run_kind(KIND, {"kernel_size": [20, 24]},
                                         {"image": png_file(pixels, mode)})))
    assert np.array_equal(result, skimage_clahe({"kernel_size": [20, 24]})(pixels))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
                min_size=1, max_size=50),
       st.lists(st.floats(0, 1), min_size=1, max_size=50))
def test_property_new_value_in_hsv_equals_skimages_round_trip(triples, values) -> None:
    rgb = np.array(triples, dtype=np.uint8).reshape(-1, 1, 3)
    value = np.resize(np.array(values), len(triples)).reshape(-1, 1)
    hsv = color.rgb2hsv(rgb)
    hsv[..., 2] = value
    assert np.array_equal(_clahe.with_value(rgb, value), color.hsv2rgb(hsv))


def test_new_value_in_hsv_on_every_hue_and_tie() -> None:
    levels = np.array([0, 1, 2, 64, 127, 128, 200, 254, 255], dtype=np.uint8)
    rgb = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 1, 3)
    for value in (np.zeros((len(rgb), 1)), np.ones((len(rgb), 1)),
                  np.linspace(0, 1, len(rgb)).reshape(-1, 1)):
        hsv = color.rgb2hsv(rgb)
        hsv[..., 2] = value
        assert np.array_equal(_clahe.with_value(rgb, value), color.hsv2rgb(hsv))


def test_rgba_jpeg_metadata_and_alpha_are_kept() -> None:
    rng = np.random.default_rng(8)
    pixels = rng.integers(0, 256, (40, 60, 4), dtype=np.uint8)
    out = decoded(run_kind(KIND, {}, {"image": png_file(pixels, "RGBA")}))
    assert np.array_equal(np.asarray(out)[..., 3], pixels[..., 3])


def test_palette_image_is_bad_input() -> None:
    source = Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 20, 3),
                                                               dtype=np.uint8)).quantize(30)
    with pytest.raises(wire.JobError) as caught:
        run_kind(KIND, {}, {"image": MemoryFile("in.gif", encoded(source, "GIF"))})
    assert caught.value.code == wire.BAD_INPUT
    assert "palette (P) images cannot hold CLAHE's result" in caught.value.message


def test_a_kernel_larger_than_the_image_is_bad_input_naming_kernel_size() -> None:
    with pytest.raises(wire.JobError) as caught:
        run_kind(KIND, {"kernel_size": [10, 31]},
                 {"image": png_file(np.zeros((20, 30), dtype=np.uint8), "L")})
    assert caught.value.code == wire.BAD_INPUT
    assert caught.value.message.startswith("kernel_size 10x31 (rows x columns) is larger")


def test_too_many_regions_is_bad_input_from_the_header() -> None:
    header_only = encoded(Image.new("L", (4000, 3000)))
    with pytest.raises(wire.JobError) as caught:
        run_kind(KIND, {"kernel_size": [8]}, {"image": MemoryFile("big.png", header_only)},
                 limits(max_pixels=50_000_000))
    assert caught.value.code == wire.BAD_INPUT
    assert "187,500 regions" in caught.value.message and "nbins" in caught.value.message


def test_over_the_memory_budget_is_too_large_before_decoding() -> None:
    data = encoded(Image.new("RGB", (400, 300)))
    with pytest.raises(wire.JobError) as caught:
        run_kind(KIND, {}, {"image": MemoryFile("in.png", data)},
                 limits(memory_budget_bytes=100_000_000))
    assert caught.value.code == wire.TOO_LARGE and "needs about" in caught.value.message
    assert decoded(run_kind(KIND, {}, {"image": MemoryFile("in.png", data)})).size == (400, 300)


def test_kernel_shape_reads_kernel_size_as_scikit_image_does() -> None:
    assert _clahe.kernel_shape((100, 50), None) == (6, 12)
    assert _clahe.kernel_shape((7, 3), None) == (1, 1)
    assert _clahe.kernel_shape((100, 50), [9]) == (9, 9)
    assert _clahe.kernel_shape((100, 50), [9, 4]) == (9, 4)
