"""The crop kind against Pillow's Image.crop, in pixels and in fractions."""

import pytest

from tests.exposure_helpers import decoded
from tests.image_steps_helpers import (
    MODES,
    ORIENTATIONS,
    opened,
    png_file,
    run,
    same_pixels,
    upright,
)
from worker_src import registry, wire


@pytest.mark.parametrize("mode", MODES)
def test_a_box_in_pixels_equals_pillows_crop(mode):
    file = png_file(mode, size=(45, 30))
    out = decoded(run("crop", {"image": file}, left="5", top="3", right="40", bottom="21"))
    assert same_pixels(out, opened(file).crop((5, 3, 40, 21)))


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_a_box_in_fractions_of_the_upright_image(orientation):
    file = png_file("RGBA", orientation, size=(45, 30))
    out = decoded(run("crop", {"image": file}, left="0.1", top="0.25", right="0.9",
                      units="fractions", orient="true"))
    reference = upright(file)
    width, height = reference.size
    # Fractions round to the nearest pixel, halves up (0.1 of 45 is 4.5: 5).
    box = (int(0.1 * width + 0.5), int(0.25 * height + 0.5), int(0.9 * width + 0.5), height)
    assert same_pixels(out, reference.crop(box))


def test_missing_right_and_bottom_mean_the_edges():
    file = png_file("L", size=(45, 30))
    out = decoded(run("crop", {"image": file}, left="44", top="29"))
    assert same_pixels(out, opened(file).crop((44, 29, 45, 30)))


@pytest.mark.parametrize("texts, message", [
    ({"right": "46"}, "reaches outside the 45x30 image"),
    ({"left": "45"}, "has no pixels"),
    ({"top": "0.99", "bottom": "1", "units": "fractions"}, "has no pixels"),
])
def test_a_box_the_image_cannot_give_is_bad_input(texts, message):
    file = png_file("RGB", size=(45, 30))
    with pytest.raises(wire.JobError) as caught:
        run("crop", {"image": file}, **texts)
    assert caught.value.code == wire.BAD_INPUT and message in caught.value.message


@pytest.mark.parametrize("args, message", [
    ({"left": 2.5}, "left is in pixels: a whole number"),
    ({"right": 1.5, "units": "fractions"}, "right is a fraction of the image: at most 1"),
    ({"left": 10, "right": 5}, "left must be below right"),
    ({"top": -1}, "top must be a number >= 0"),
    ({"units": "inches"}, "units must be a string one of pixels, fractions"),
])
def test_impossible_boxes_are_refused_before_anything_is_sent(args, message):
    with pytest.raises(registry.ArgError, match=message):
        registry.get_kind("crop").check_args({"image": "x", **args})
