"""A pipeline end to end on the local stack (moto and a worker thread): through the CLI and
through the web page's API, against the same pipeline run in this process."""

import io
import json

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from client import cli
from tests.image_steps_helpers import jpeg_file, real_looking, run
from tests.moto_stack import deploy, serving_worker
from tests.web_support import AUTH, make_web, wait_for

STACK = "wqw-pipeline"
STEPS = "orient,thumbnail:width=300,equalize,convert:format=webp:quality=85"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack():
    """One stack for the module: every test waits for its own jobs, none leaves one queued."""
    with mock_aws():
        yield deploy(STACK)


@pytest.fixture
def worker(stack):
    """A worker per test: the test that refuses a bad step must see its request queue empty."""
    with serving_worker(stack) as worker:
        yield worker


@pytest.fixture(scope="module")
def photo():
    """A phone photo: 640x480 as stored, to be turned upright (EXIF orientation 6)."""
    return jpeg_file(real_looking(3, (640, 480)), orientation=6, name="photo.jpg")


@pytest.fixture(scope="module")
def expected(photo):
    """The pipeline run on the photo in this process: what the worker must write."""
    return run("pipeline", {"image": photo}, steps=STEPS).data


def run_cli(capsys, *argv):
    code = cli.main([*argv, "--stack", STACK])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_runs_a_pipeline_and_writes_the_webp(stack, worker, photo, expected, capsys,
                                                     tmp_path):
    (tmp_path / "photo.jpg").write_bytes(photo.read())
    code, out, err = run_cli(capsys, "run", "pipeline", str(tmp_path / "photo.jpg"),
                             "-a", f"steps={STEPS}", "-o", str(tmp_path / "out"), "--json")
    assert code == 0, err
    [row] = json.loads(out)["results"]
    written = tmp_path / "out" / "photo-pipeline.webp"
    assert row["output"] == str(written)
    assert written.read_bytes() == expected
    assert Image.open(written).size == (300, 400)


def test_the_cli_lists_the_new_kinds_and_refuses_a_bad_step_before_sending(stack, capsys,
                                                                          tmp_path):
    assert cli.main(["kinds", "--json"]) == 0
    out = capsys.readouterr().out
    kinds = {kind["name"]: kind for kind in json.loads(out)["kinds"]}
    assert {"thumbnail", "orient", "crop", "convert", "pipeline"} <= set(kinds)
    assert kinds["pipeline"]["args"][1]["type"] == "steps" and kinds["thumbnail"]["step"]
    (tmp_path / "a.jpg").write_bytes(b"never uploaded")
    code, _, err = run_cli(capsys, "run", "pipeline", str(tmp_path / "a.jpg"),
                           "-a", "steps=orient,thumbnail:width=-5")
    assert code != 0
    assert "steps: step 2 (thumbnail): width must be an integer >= 1" in err
    queue = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.request_queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert queue["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_the_web_api_runs_a_pipeline_from_its_steps_field(stack, worker, photo, expected):
    session, web = make_web(stack)
    try:
        refused = web.post("/api/images", headers=AUTH,
                           files={"file": ("photo.jpg", photo.read(), "image/jpeg")},
                           data={"kind": "pipeline", "steps": "orient,crop:left=2:right=1"})
        assert refused.status_code == 400
        assert "step 2 (crop): left must be below right" in refused.json()["error"]["message"]
        response = web.post("/api/images", headers=AUTH,
                            files={"file": ("photo.jpg", photo.read(), "image/jpeg")},
                            data={"kind": "pipeline", "steps": STEPS})
        assert response.status_code == 202, response.text
        job = wait_for(web, response.json()["job_id"])
        assert job["state"] == "done", job
        output = web.get(job["output_url"], headers=AUTH)
        assert output.headers["content-type"] == "image/webp"
        assert output.content == expected
        assert decoded_size(output.content) == (300, 400)
        assert job["download_name"] == "photo-pipeline.webp"
    finally:
        session.close()


def decoded_size(data):
    return Image.open(io.BytesIO(data)).size


def test_the_result_times_each_step(stack, worker, photo):
    session, web = make_web(stack)
    try:
        response = web.post("/api/images", headers=AUTH,
                            files={"file": ("photo.jpg", photo.read(), "image/jpeg")},
                            data={"kind": "pipeline", "steps": STEPS})
        job = wait_for(web, response.json()["job_id"])
        result = session.job(job["job_id"]).result.value
    finally:
        session.close()
    assert [step["kind"] for step in result["steps"]] == ["orient", "thumbnail", "equalize",
                                                          "convert"]
    assert all(step["seconds"] >= 0 for step in result["steps"])
    assert result["decode_s"] > 0 and result["encode_s"] > 0
