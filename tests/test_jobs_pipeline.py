"""The pipeline kind: its steps argument, and each step's pixels equal to the kind run alone."""

import json

import pytest

from tests.exposure_helpers import decoded, encoded, limits
from tests.image_steps_helpers import (
    MODES,
    jpeg_file,
    picture,
    png_file,
    real_looking,
    run,
    same_pixels,
)
from worker_src import registry, wire
from worker_src.store import MemoryFile

STEPS = registry.get_kind("pipeline").arg("steps")


def test_the_command_line_form_reads_each_value_as_its_arguments_type():
    steps = STEPS.parse("orient, thumbnail:width=800:height=600 ,equalize,convert:format=webp")
    assert [s["kind"] for s in steps] == ["orient", "thumbnail", "equalize", "convert"]
    assert steps[1]["args"]["width"] == 800 and steps[1]["args"]["height"] == 600
    assert steps[1]["args"]["shrink_on_load"] is True  # defaults filled in
    assert steps[3]["args"]["format"] == "webp" and steps[3]["args"]["quality"] is None


def test_the_json_list_is_the_wire_form_and_checks_the_same():
    wire_form = [{"kind": "thumbnail", "args": {"width": 80}}, {"kind": "equalize"}]
    assert STEPS.parse(json.dumps(wire_form)) == STEPS.check(wire_form)
    assert STEPS.check(STEPS.check(wire_form)) == STEPS.check(wire_form)  # idempotent


@pytest.mark.parametrize("value, message", [
    ("thumbnail:width=0", "steps: step 1 (thumbnail): width must be an integer >= 1"),
    ("orient,thumbnail", "steps: step 2 (thumbnail): thumbnail needs a width, a height"),
    ("orient,blur:radius=2", "steps: step 2: unknown kind 'blur'; the steps are clahe, convert"),
    ("stats", "step 1: stats cannot be a step"),
    ("pipeline:steps=orient", "step 1: pipeline cannot be a step"),
    ("convert:format=gif", "step 1 (convert): format must be a string one of jpeg"),
    ("convert:lossless=true:format=jpeg", "Pillow's jpeg encoder has no lossless mode"),
    ("crop:left=5:right=2", "step 1 (crop): left must be below right"),
    ("thumbnail:size", "step 1 (thumbnail): expected NAME=VALUE after ':'"),
    ("thumbnail:colour=red", "thumbnail has no argument 'colour'"),
    ("[1, 2", "not a JSON list of steps"),
    ("[]", "steps must be a list of 1 to 16 steps"),
    (",".join(["orient"] * 17), "steps must be a list of 1 to 16 steps"),
    ('[{"kind": "match", "args": {"reference": "x"}}]', "reference is not a step argument"),
    ('[{"kind": "orient", "arg": {}}]', "step 1 must be an object with 'kind' and 'args'"),
    ('["orient"]', "step 1 must be an object with 'kind' and 'args'"),
])
def test_every_steps_arguments_are_checked_before_anything_is_sent(value, message):
    with pytest.raises(registry.ArgError) as caught:
        registry.get_kind("pipeline").check_args({"image": "x", "steps": STEPS.parse(value)})
    assert message in caught.value.message and caught.value.name == "steps"


def test_a_match_step_needs_the_pipelines_reference():
    kind = registry.get_kind("pipeline")
    with pytest.raises(registry.ArgError, match="step 2 \\(match\\) needs the pipeline's "
                                                "argument reference"):
        kind.check_args({"image": "x", "steps": STEPS.parse("orient,match")})
    assert kind.check_args({"image": "x", "reference": "y", "steps": STEPS.parse("match")})


def test_the_registry_says_which_kinds_are_steps():
    described = {k["name"]: k["step"] for k in (kind.describe()
                                                for kind in registry.kinds().values())}
    assert {name for name, step in described.items() if step} == {
        "orient", "thumbnail", "crop", "convert", "equalize", "clahe", "match", "stretch",
        "gamma", "log", "sigmoid"}
    assert described["pipeline"] is False and described["stats"] is False


def chain_alone(file, steps, reference=None):
    """Each step run as its own kind on the previous one's (lossless PNG) output."""
    for text in steps:
        name, *pairs = text.split(":")
        texts = dict(pair.split("=") for pair in pairs)
        files = {"image": file, **({"reference": reference} if name == "match" else {})}
        output = run(name, files, **texts)
        file = MemoryFile("step" + output.suffix, output.data)
    return decoded(output)


@pytest.mark.parametrize("mode", MODES)
def test_a_pipelines_pixels_are_each_kind_run_alone_in_turn(mode):
    file = png_file(mode, 6, size=(90, 60))
    steps = ["orient", "crop:left=4:top=2:right=56", "thumbnail:width=40", "equalize",
             "gamma:gamma=0.8", "stretch:low=5:high=95", "convert:format=png"]
    out = decoded(run("pipeline", {"image": file}, steps=",".join(steps)))
    assert same_pixels(out, chain_alone(file, steps))


@pytest.mark.parametrize("mode", ("L", "RGBA"))
def test_clahe_and_match_steps_equal_their_kinds(mode):
    file = png_file(mode, 3, size=(64, 48))
    reference = MemoryFile("ref.png", encoded(picture(mode, (20, 20), seed=5)))
    steps = ["thumbnail:width=50:orient=true", "clahe:clip_limit=0.02", "match", "log:gain=0.9",
             "sigmoid:cutoff=0.4"]
    out = decoded(run("pipeline", {"image": file, "reference": reference},
                      steps=",".join(steps)))
    assert same_pixels(out, chain_alone(file, steps, reference))


def test_a_jpeg_pipeline_decodes_once_at_reduced_scale_as_the_thumbnail_alone_does():
    file = jpeg_file(real_looking(2, (800, 600)), orientation=8)
    piped = run("pipeline", {"image": file}, steps="orient,thumbnail:width=150")
    alone = run("thumbnail", {"image": file}, width="150", orient="true")
    assert piped.data == alone.data and decoded(piped).size == (150, 200)
    assert [step["kind"] for step in piped.value["steps"]] == ["orient", "thumbnail"]
    assert all(step["seconds"] >= 0 for step in piped.value["steps"])
    assert piped.value["decode_s"] > 0 and piped.value["encode_s"] > 0


def test_a_step_keeps_its_kinds_own_pixel_cap():
    file = png_file("RGB", size=(90, 60))
    kind = registry.get_kind("pipeline")
    args = kind.check_args({"image": "x", "steps": STEPS.parse("clahe")})
    clahe = registry.get_kind("clahe")
    capped = {**registry.kinds(), "clahe": type(clahe)(**{**clahe.__dict__, "max_pixels": 5000})}
    import worker_src.registry as module
    saved, module._KINDS = module._KINDS, capped
    try:
        with pytest.raises(wire.JobError) as caught:
            kind.run(registry.JobContext({"steps": args["steps"]}, {"image": file}, limits()))
    finally:
        module._KINDS = saved
    assert caught.value.code == wire.TOO_LARGE
    assert "clahe takes at most 5,000 pixels; its image is 90x60" in caught.value.message


def test_a_bad_step_at_run_time_names_its_problem():
    file = png_file("P", size=(30, 20))
    kind = registry.get_kind("pipeline")
    args = kind.check_args({"image": "x", "steps": STEPS.parse("orient,clahe")})
    with pytest.raises(wire.JobError, match="palette \\(P\\) images cannot hold CLAHE"):
        kind.run(registry.JobContext({"steps": args["steps"]}, {"image": file}, limits()))


def test_every_image_kinds_demo_arguments_pass_its_own_check():
    for kind in registry.kinds().values():
        if kind.output == registry.IMAGE:  # what the demo runs on the moon
            kind.check_args({**dict.fromkeys(kind.file_args(), "x"), **kind.example})
    assert registry.get_kind("pipeline").example["steps"][1]["kind"] == "thumbnail"


def test_a_pipeline_reports_the_share_of_steps_done():
    file = png_file("RGB", size=(30, 20))
    kind = registry.get_kind("pipeline")
    args = kind.check_args({"image": "x", "steps": STEPS.parse("orient,equalize,crop:left=2")})
    heard = []
    kind.run(registry.JobContext({"steps": args["steps"]}, {"image": file}, limits(),
                                 heard.append))
    assert heard == [0.25, 0.5, 0.75]
