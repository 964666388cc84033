"""End to end: `python -m client local` in one process, the CLI in others, as a user runs them."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
from PIL import Image
from skimage import exposure, util

from tests.moto_stack import LOCAL_STACK

ROOT = Path(__file__).resolve().parent.parent
STACK = LOCAL_STACK
pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:This might be a color image")]


@pytest.fixture(scope="module")
def local_stack():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "client", "local", "--port", "0", "--json", "--stack", STACK,
         "--workers", "2"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    line = process.stdout.readline()
    if not line:
        process.kill()
        pytest.fail("local stack did not start: " + process.stderr.read()[-3000:])
    ready = json.loads(line)
    yield process, ready
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def run_client(local_stack, *argv, cwd=ROOT):
    _, ready = local_stack
    env = {**os.environ, "AWS_ENDPOINT_URL": ready["endpoint_url"],
           "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
           "AWS_REGION": "us-east-1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "client", *argv, "--stack", STACK],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def reply_queues(local_stack):
    _, ready = local_stack
    sqs = boto3.client("sqs", endpoint_url=ready["endpoint_url"])
    return sqs.list_queues(QueueNamePrefix=ready["outputs"]["ReplyQueuePrefix"]).get(
        "QueueUrls", [])


def test_the_stack_exposes_every_output_the_client_needs(local_stack):
    _, ready = local_stack
    assert {"RequestQueueUrl", "DeadLetterQueueUrl", "BucketName",
            "ReplyQueuePrefix"} <= ready["outputs"].keys()


def test_stats_prints_one_json_object(local_stack):
    done = run_client(local_stack, "stats", "5", "3", "9", "1", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert {k: document[k] for k in ("count", "min", "max", "sum", "average", "median")} == {
        "count": 4, "min": 1, "max": 9, "sum": 18, "average": 4.5, "median": 4}
    assert reply_queues(local_stack) == []


@pytest.mark.parametrize("digits", [3000, 20_000], ids=["below-cpython-limit", "above-it"])
def test_stats_of_huge_integers_is_exact(local_stack, digits):
    # Above 4,300 digits the CLI (a process of its own: CPython's limit in force) must
    # convert every integer itself, both ways.
    numbers = [10**digits + 1, -(10**digits), 7]
    done = run_client(local_stack, "stats", *map(str, numbers), "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["sum"] == sum(numbers) and document["median"] == 7


def test_a_bad_number_exits_non_zero_naming_it(local_stack):
    done = run_client(local_stack, "stats", "1", "x", "3")
    assert done.returncode == 2 and "'x'" in done.stderr and done.stdout == ""


def low_contrast(shape, seed):
    rng = np.random.default_rng(seed)
    base = np.linspace(90, 150, shape[0] * shape[1]).reshape(shape[:2])
    pixels = base[..., None] + rng.normal(0, 6, shape if len(shape) == 3 else shape + (1,))
    return np.clip(pixels, 0, 255).astype(np.uint8).squeeze()


def skimage_equalized(pixels):
    """The reference: one histogram over all channels, as the contract says."""
    return util.img_as_ubyte(exposure.equalize_hist(pixels))


def test_equalize_writes_the_images_with_skimage_pixels(local_stack, tmp_path):
    rgb = low_contrast((60, 80, 3), 1)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    Image.fromarray(low_contrast((50, 40, 3), 2)).save(tmp_path / "photo.jpg", quality=90)
    done = run_client(local_stack, "equalize", "photo.png", "photo.jpg", "-o", "out",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    png = np.asarray(Image.open(tmp_path / "out/photo-equalized.png"))
    assert np.array_equal(png, skimage_equalized(rgb))
    jpeg = Image.open(tmp_path / "out/photo-equalized.jpg")
    assert (jpeg.format, jpeg.mode, jpeg.size) == ("JPEG", "RGB", (40, 50))
    assert reply_queues(local_stack) == []


def test_equalize_of_a_text_file_fails_with_a_clear_error(local_stack, tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image at all")
    done = run_client(local_stack, "equalize", "notes.jpg", "--json", cwd=tmp_path)
    assert done.returncode == 1
    [row] = json.loads(done.stdout)["results"]
    assert row["error"]["code"] == "bad_input"


def test_status_shows_the_queues(local_stack):
    done = run_client(local_stack, "status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["dead_letters"] == 0 and status["stack"] == STACK


def test_ctrl_c_stops_the_local_stack_and_its_workers(local_stack):
    process, _ = local_stack
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    assert "stopping" in process.stderr.read()


def test_the_demo_runs_one_job_of_every_kind(tmp_path):
    from worker_src import registry

    result = subprocess.run([sys.executable, "-m", "client", "demo", "-o", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "median" in result.stdout
    images = [k.name for k in registry.kinds().values() if k.output == registry.IMAGE]
    assert len(images) >= 7
    for kind in images:
        assert (tmp_path / f"moon-{kind}.png").stat().st_size > 0, kind
