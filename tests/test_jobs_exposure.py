"""The per-value exposure kinds (stretch, gamma, log, sigmoid, match) against scikit-image."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, JpegImagePlugin
from skimage import exposure, util

from tests.exposure_helpers import (
    decoded,
    encoded,
    expected,
    histogram_of,
    image_of,
    images,
    limits,
    png_file,
    run_kind,
)
from worker_src import registry, wire
from worker_src.jobs import clahe, equalize, gamma, log, match, sigmoid, stretch
from worker_src.jobs.stretch import percentile
from worker_src.store import MemoryFile

IMAGE_KINDS = (equalize.KIND, clahe.KIND, stretch.KIND, gamma.KIND, log.KIND, sigmoid.KIND,
               match.KIND)


def skimage_stretch(low: float, high: float):
    def stretched(colour: np.ndarray) -> np.ndarray:
        return exposure.rescale_intensity(colour, in_range=tuple(np.percentile(colour,
                                                                               (low, high))))
    return stretched


# kind -> (arguments drawn from the declared ranges, the scikit-image call with them)
KINDS = {
    "equalize": (st.just({}), lambda a: lambda c: util.img_as_ubyte(exposure.equalize_hist(c))),
    "stretch": (st.tuples(st.floats(0, 100), st.floats(0, 100))
                .filter(lambda lh: lh[0] < lh[1]).map(lambda lh: {"low": lh[0], "high": lh[1]}),
                lambda a: skimage_stretch(a["low"], a["high"])),
    "gamma": (st.fixed_dictionaries({"gamma": st.floats(0, 10), "gain": st.floats(0, 3)}),
              lambda a: lambda c: exposure.adjust_gamma(c, a["gamma"], a["gain"])),
    "log": (st.fixed_dictionaries({"gain": st.floats(0, 1), "inv": st.booleans()}),
            lambda a: lambda c: exposure.adjust_log(c, a["gain"], a["inv"])),
    "sigmoid": (st.fixed_dictionaries({"cutoff": st.floats(0, 1), "gain": st.floats(0, 1000),
                                       "inv": st.booleans()}),
                lambda a: lambda c: exposure.adjust_sigmoid(c, a["cutoff"], a["gain"], a["inv"])),
}
MODULES = {"equalize": equalize, "stretch": stretch, "gamma": gamma, "log": log, "sigmoid": sigmoid}


# ------------------------------------------------------------ exact, on generated images


@pytest.mark.parametrize("name", sorted(KINDS))
def test_property_each_table_kind_equals_skimage(name: str) -> None:
    kind, (arguments, reference) = MODULES[name].KIND, KINDS[name]

    @settings(max_examples=40, deadline=None)
    @given(images(), arguments)
    def check(image: tuple[np.ndarray, str], args: dict[str, Any]) -> None:
        pixels, mode = image
        output = run_kind(kind, args, {"image": png_file(pixels, mode)})
        out = decoded(output)
        assert (out.format, out.mode, out.size) == ("PNG", mode, (pixels.shape[1],
                                                                  pixels.shape[0]))
        result = np.asarray(out)
        assert np.array_equal(result, expected(pixels, mode, reference(args)))
        assert output.value["histogram"] == {"input": histogram_of(pixels, mode),
                                             "output": histogram_of(result, mode)}

    check()


def run_match(image: tuple[np.ndarray, str],
              reference: tuple[np.ndarray, str]) -> tuple[registry.Output, np.ndarray]:
    """The match kind on two drawn images: its output, and the output's pixels."""
    (pixels, mode), (ref_pixels, ref_mode) = image, reference
    output = run_kind(match.KIND, {}, {"image": png_file(pixels, mode),
                                       "reference": png_file(ref_pixels, ref_mode, "ref.png")})
    return output, np.asarray(decoded(output))


@settings(max_examples=40, deadline=None)
@given(images(modes=("L", "LA")), images(modes=("L", "LA")))
def test_property_grayscale_match_is_the_colour_paths_answer(image, reference) -> None:
    """scikit-image's grayscale match is float64 0..255; its colour path truncates to uint8."""
    (pixels, mode), (ref_pixels, _) = image, reference
    output, result = run_match(image, reference)
    grey, ref_grey = (p if p.ndim == 2 else p[..., 0] for p in (pixels, ref_pixels))
    one_channel = exposure.match_histograms(grey[..., None], ref_grey[..., None],
                                            channel_axis=-1)[..., 0]
    assert np.array_equal(expected(pixels, mode, lambda _: one_channel), result)
    floats = exposure.match_histograms(grey, ref_grey)
    assert floats.dtype == np.float64
    assert np.array_equal(floats.astype(np.uint8), one_channel)
    assert output.value["histogram"]["output"] == histogram_of(result, mode)


@settings(max_examples=40, deadline=None)
@given(images(modes=("RGB", "RGBA")), images(modes=("RGB", "RGBA")))
def test_property_colour_match_equals_skimage_per_channel(image, reference) -> None:
    (pixels, mode), (ref_pixels, _) = image, reference
    output, result = run_match(image, reference)
    want = expected(pixels, mode, lambda colour: exposure.match_histograms(
        colour, ref_pixels[..., :3], channel_axis=-1))
    assert np.array_equal(result, want)
    assert output.value["histogram"] == {"input": histogram_of(pixels, mode),
                                         "output": histogram_of(result, mode)}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=1, max_size=80), st.floats(0, 100))
def test_property_percentile_from_the_histogram_equals_numpy(values: list[int], q: float) -> None:
    samples = np.array(values, dtype=np.uint8)
    assert percentile(np.bincount(samples, minlength=256), q) == np.percentile(samples, q)


@pytest.mark.filterwarnings("ignore:This might be a color image")
@pytest.mark.parametrize("name", ["stretch", "gamma", "log", "sigmoid", "match", "equalize"])
def test_palette_image_keeps_its_indices_and_maps_its_palette(name: str) -> None:
    rng = np.random.default_rng(3)
    source = Image.fromarray(rng.integers(40, 200, (30, 40, 3), dtype=np.uint8)).quantize(50)
    files = {"image": MemoryFile("in.gif", encoded(source, "GIF"))}
    if name == "match":
        files["reference"] = png_file(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8), "RGB")
    out = decoded(run_kind({**MODULES, "match": match}[name].KIND, {}, files))
    assert (out.format, out.mode) == ("GIF", "P")
    assert np.array_equal(np.asarray(out), np.asarray(source))
    rgb = np.asarray(source.convert("RGB"))
    if name == "match":
        want = exposure.match_histograms(rgb, np.asarray(decoded_file(files["reference"])),
                                         channel_axis=-1)
    else:
        want = KINDS[name][1](MODULES[name].KIND.check_args({"image": "x"}))(rgb)
    assert np.array_equal(np.asarray(out.convert("RGB")), want)


def decoded_file(file: MemoryFile) -> Image.Image:
    image = Image.open(file.open())
    image.load()
    return image


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_pixels_equal_skimage_before_encoding(mode: str) -> None:
    from worker_src.jobs._tables import apply_tables, colour_histograms, full_tables

    rng = np.random.default_rng(5)
    pixels = rng.integers(60, 190, (48, 64, len(mode)), dtype=np.uint8)
    jpeg = Image.open(MemoryFile("in.jpg", encoded(image_of(pixels, mode), "JPEG")).open())
    jpeg.load()
    decoded_pixels = np.asarray(jpeg)
    histograms = colour_histograms(jpeg)
    table = full_tables(gamma.gamma_table(0.4, 1.2), len(histograms))
    result = np.asarray(apply_tables(jpeg, table))
    assert np.array_equal(result, exposure.adjust_gamma(decoded_pixels, 0.4, 1.2))


# ------------------------------------------------ every image kind: format and metadata


def kind_files(kind: registry.Kind, data: bytes, name: str = "in.jpg") -> dict[str, MemoryFile]:
    files = {"image": MemoryFile(name, data)}
    if "reference" in kind.file_args():
        rng = np.random.default_rng(1)
        files["reference"] = png_file(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "RGB",
                                      "ref.png")
    return files


@pytest.mark.parametrize("kind", IMAGE_KINDS, ids=lambda k: k.name)
def test_jpeg_stays_jpeg_with_its_tables_exif_orientation_and_icc(kind: registry.Kind) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees to display
    rng = np.random.default_rng(2)
    source = Image.fromarray(rng.integers(50, 200, (48, 80, 3), dtype=np.uint8))
    data = encoded(source, "JPEG", quality=85, subsampling=1, exif=exif.tobytes(),
                   icc_profile=icc)
    output = run_kind(kind, {}, kind_files(kind, data, "photo.JPG"))
    out = decoded(output)
    assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (80, 48))
    assert out.getexif()[0x0112] == 6 and out.info["icc_profile"] == icc
    assert out.quantization == Image.open(MemoryFile("x", data).open()).quantization
    assert JpegImagePlugin.get_sampling(out) == 1
    assert (output.content_type, output.suffix) == ("image/jpeg", ".JPG")
    histogram = output.value["histogram"]
    assert len(histogram["input"]) == len(histogram["output"]) == 256
    assert sum(histogram["input"]) == sum(histogram["output"]) == 48 * 80 * 3


@pytest.mark.parametrize("kind", IMAGE_KINDS, ids=lambda k: k.name)
def test_rgba_png_alpha_passes_through(kind: registry.Kind) -> None:
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    out = decoded(run_kind(kind, {}, kind_files(kind, encoded(image_of(pixels, "RGBA")),
                                                "in.png")))
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], pixels[..., 3])


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kind", IMAGE_KINDS, ids=lambda k: k.name)
def test_not_an_image_and_too_many_pixels(kind: registry.Kind) -> None:
    with pytest.raises(wire.JobError) as caught:
        run_kind(kind, {}, kind_files(kind, b"hello, this is text"))
    assert caught.value.code == wire.BAD_INPUT and caught.value.message.startswith("not an image")
    data = encoded(Image.new("RGB", (30, 20)), "PNG")
    with pytest.raises(wire.JobError) as caught:
        run_kind(kind, {}, kind_files(kind, data), limits(max_pixels=599))
    assert caught.value.code == wire.TOO_LARGE and "30x20 = 600 pixels" in caught.value.message
    with pytest.raises(wire.JobError) as caught:
        run_kind(kind, {}, kind_files(kind, data), limits(max_input_bytes=len(data) - 1))
    assert caught.value.code == wire.TOO_LARGE


def test_match_reference_errors_name_the_reference() -> None:
    image = png_file(np.zeros((4, 4, 3), dtype=np.uint8), "RGB")
    for data, code in ((b"", wire.BAD_INPUT), (b"not an image", wire.BAD_INPUT),
                       (encoded(Image.new("RGB", (40, 40))), wire.TOO_LARGE)):
        with pytest.raises(wire.JobError) as caught:
            run_kind(match.KIND, {}, {"image": image, "reference": MemoryFile("r.png", data)},
                     limits(max_pixels=1000))
        assert caught.value.code == code
        assert caught.value.message.startswith("the reference: ")


@pytest.mark.parametrize(("image_mode", "reference_mode"), [("RGB", "L"), ("L", "RGB"),
                                                            ("LA", "RGBA")])
def test_match_grayscale_against_colour_is_bad_input(image_mode: str,
                                                     reference_mode: str) -> None:
    files = {"image": MemoryFile("a.png", encoded(Image.new(image_mode, (4, 4)))),
             "reference": MemoryFile("r.png", encoded(Image.new(reference_mode, (4, 4))))}
    with pytest.raises(wire.JobError) as caught:
        run_kind(match.KIND, {}, files)
    assert caught.value.code == wire.BAD_INPUT
    assert "both must be grayscale or both colour" in caught.value.message


def test_match_without_a_reference_file_is_bad_input_naming_it() -> None:
    image = png_file(np.zeros((4, 4), dtype=np.uint8), "L")
    with pytest.raises(registry.ArgError) as refused:
        match.KIND.check_args({"image": "a.png"})
    assert refused.value.name == "reference"
    with pytest.raises(wire.JobError) as caught:  # sent anyway
        match.KIND.run(registry.JobContext({}, {"image": image}, limits()))
    assert caught.value.code == wire.BAD_INPUT and "reference" in caught.value.message


@pytest.mark.parametrize(("kind", "args", "name"), [
    (gamma.KIND, {"gamma": -1}, "gamma"),
    (gamma.KIND, {"gain": -0.5}, "gain"),
    (gamma.KIND, {"gamma": "0.5"}, "gamma"),
    (gamma.KIND, {"gamma": True}, "gamma"),
    (gamma.KIND, {"gamma": float("nan")}, "gamma"),
    (gamma.KIND, {"exponent": 2}, "exponent"),
    (log.KIND, {"gain": 1.5}, "gain"),
    (log.KIND, {"inv": "yes"}, "inv"),
    (sigmoid.KIND, {"cutoff": 1.5}, "cutoff"),
    (sigmoid.KIND, {"gain": -1}, "gain"),
    (stretch.KIND, {"low": 90, "high": 10}, "low"),
    (stretch.KIND, {"low": 50, "high": 50}, "low"),
    (stretch.KIND, {"high": 101}, "high"),
    (stretch.KIND, {"low": -1}, "low"),
    (clahe.KIND, {"clip_limit": 2}, "clip_limit"),
    (clahe.KIND, {"nbins": 0}, "nbins"),
    (clahe.KIND, {"nbins": 16385}, "nbins"),
    (clahe.KIND, {"kernel_size": [0]}, "kernel_size"),
    (clahe.KIND, {"kernel_size": [8, 8, 8]}, "kernel_size"),
    (clahe.KIND, {"kernel_size": [8.5]}, "kernel_size"),
    (clahe.KIND, {"kernel_size": []}, "kernel_size"),
    (clahe.KIND, {"kernel_size": 8}, "kernel_size"),
])
def test_declarations_refuse_bad_arguments_naming_them(kind: registry.Kind, args: dict,
                                                       name: str) -> None:
    with pytest.raises(registry.ArgError) as refused:
        kind.check_args({"image": "in.png", "reference": "ref.png", **args}
                        if kind is match.KIND else {"image": "in.png", **args})
    assert refused.value.name == name and name in refused.value.message


@pytest.mark.parametrize(("kind", "function"), [
    (gamma.KIND, exposure.adjust_gamma), (log.KIND, exposure.adjust_log),
    (sigmoid.KIND, exposure.adjust_sigmoid), (clahe.KIND, exposure.equalize_adapthist),
])
def test_defaults_are_scikit_images(kind: registry.Kind, function) -> None:
    defaults = {name: p.default for name, p in inspect.signature(function).parameters.items()
                if p.default is not inspect.Parameter.empty and name != "channel_axis"}
    declared = kind.check_args({"image": "in.png"})
    assert {name: declared[name] for name in defaults} == defaults


def test_stretch_defaults_are_the_2nd_and_98th_percentiles() -> None:
    assert stretch.KIND.check_args({"image": "in.png"}) == {"image": "in.png", "low": 2.0,
                                                            "high": 98.0, "orient": False}


def test_the_registry_lists_every_kind_without_importing_numpy() -> None:
    code = ("import sys; from worker_src import registry; names = sorted(registry.kinds()); "
            "assert not {'numpy', 'PIL', 'skimage'} & set(sys.modules), sys.modules.keys(); "
            "print(' '.join(names))")
    names = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                           text=True, cwd=Path(__file__).resolve().parent.parent).stdout.split()
    assert {"equalize", "clahe", "stretch", "gamma", "log", "sigmoid", "match"} <= set(names)
