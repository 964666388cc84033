"""The orient kind and every image kind's orient option against Pillow's ImageOps.exif_transpose."""

import numpy as np
import pytest

from tests.exposure_helpers import decoded, equalize_pixels
from tests.image_steps_helpers import (
    MODES,
    ORIENTATIONS,
    jpeg_file,
    opened,
    picture,
    png_file,
    run,
    same_pixels,
    upright,
)
from worker_src import registry


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_orient_equals_exif_transpose_and_clears_the_tag(mode, orientation):
    file = png_file(mode, orientation)
    out = decoded(run("orient", {"image": file}))
    reference = upright(file)
    assert same_pixels(out, reference)
    assert out.size == ((30, 45) if orientation >= 5 else (45, 30))
    exif = out.getexif()
    assert 0x0112 not in exif or orientation == 1
    assert exif[0x010F] == "wqw test camera"  # the other tags are kept


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_orient_of_a_jpeg_keeps_the_decoded_pixels_exactly_turned(orientation):
    file = jpeg_file(picture("RGB", (64, 48)), orientation)
    output = run("orient", {"image": file})
    assert output.content_type == "image/jpeg" and output.suffix == ".jpg"
    # The JPEG is encoded again with the input's tables: compare against the same encode.
    reference = upright(file)
    out = decoded(output)
    assert out.size == reference.size
    assert np.abs(np.asarray(out, int) - np.asarray(reference, int)).max() <= 24
    assert 0x0112 not in out.getexif() or orientation == 1


@pytest.mark.parametrize("mode", ("L", "LA", "RGB", "RGBA", "P"))
@pytest.mark.parametrize("orientation", (3, 6))
def test_the_orient_option_of_equalize_turns_the_image_first(mode, orientation):
    file = png_file(mode, orientation)
    out = decoded(run("equalize", {"image": file}, orient="true"))
    assert same_pixels(out, equalize_pixels(upright(file)))
    assert 0x0112 not in out.getexif()
    plain = decoded(run("equalize", {"image": file}))
    assert plain.size == opened(file).size and plain.getexif()[0x0112] == orientation


def test_every_image_kind_has_the_orient_option():
    image_kinds = [k for k in registry.kinds().values() if k.output == registry.IMAGE]
    assert {k.name for k in image_kinds} >= {"equalize", "clahe", "match", "thumbnail", "crop",
                                             "convert", "stretch", "gamma", "log", "sigmoid"}
    for kind in image_kinds:
        if kind.name not in ("orient", "pipeline"):
            assert kind.arg("orient").type == registry.BOOL and kind.arg("orient").default is False


@pytest.mark.parametrize("kind", ["equalize", "clahe", "stretch", "gamma", "log", "sigmoid",
                                  "match", "crop", "thumbnail", "convert"])
@pytest.mark.parametrize("orientation", (2, 7))
def test_every_kinds_orient_option_equals_the_kind_on_the_upright_image(kind, orientation):
    from worker_src.store import MemoryFile

    file = png_file("RGB", orientation, size=(48, 36))
    turned = run("orient", {"image": file})
    upright_file = MemoryFile("up.png", turned.data)
    reference = png_file("RGB", size=(20, 20), name="ref.png")
    example = {name: str(value).lower() for name, value in
               registry.get_kind(kind).example.items()}
    extra = {"reference": reference} if kind == "match" else {}
    at_once = decoded(run(kind, {"image": file, **extra}, orient="true", **example))
    in_turn = decoded(run(kind, {"image": upright_file, **extra}, **example))
    assert same_pixels(at_once, in_turn)
    assert at_once.getexif().get(0x0112, 1) == 1
