"""End to end: the local stack, the web server as a user starts it, jobs through its API."""

import io
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import boto3
import httpx2
import numpy as np
import pytest
from PIL import Image
from skimage import exposure, util

from client.local import LOCAL_CREDENTIALS, LocalStack
from tests.moto_stack import LOCAL_STACK

ROOT = Path(__file__).resolve().parent.parent
STACK = LOCAL_STACK
READY_LINE = re.compile(r"web: (http://127\.0\.0\.1:(\d+))/\?token=([A-Za-z0-9_-]+)")
WEB_COMMAND = [sys.executable, "-m", "client", "web", "--port", "0", "--no-browser",
               "--stack", STACK]
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:This might be a color image")]


@pytest.fixture(scope="module")
def stack():
    with LocalStack(stack_name=STACK, port=0, workers=2) as local:
        yield local


def client_env(stack):
    return {**os.environ, **LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": stack.endpoint_url,
            "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


class Web:
    def __init__(self, stack):
        self.process = subprocess.Popen(WEB_COMMAND, cwd=ROOT, env=client_env(stack),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        line = self.process.stdout.readline()
        match = READY_LINE.fullmatch(line.strip())
        if match is None:
            self.process.kill()
            pytest.fail(f"no ready line, got {line!r}: {self.process.stderr.read()[-3000:]}")
        self.base, self.port, self.token = match.group(1), int(match.group(2)), match.group(3)
        self.http = httpx2.Client(base_url=self.base, timeout=60,
                                  headers={"Authorization": f"Bearer {self.token}"})

    def stop(self, sig=signal.SIGINT):
        self.http.close()
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        return code, self.process.stdout.read(), self.process.stderr.read()

    def wait(self, job_id, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.http.get(f"/api/jobs/{job_id}").json()
            if job["state"] in ("done", "failed") and (
                    job.get("output_url") is None or job.get("histogram") is not None):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not finish: {job}")


@pytest.fixture(scope="module")
def web(stack):
    server = Web(stack)
    yield server
    if server.process.poll() is None:
        server.stop()


def reply_queues(stack):
    sqs = boto3.client("sqs", endpoint_url=stack.endpoint_url, **boto_credentials())
    return sqs.list_queues(QueueNamePrefix=stack.outputs["ReplyQueuePrefix"]).get(
        "QueueUrls", [])


def boto_credentials():
    return {"aws_access_key_id": "local", "aws_secret_access_key": "local",
            "region_name": "us-east-1"}


def low_contrast(shape, seed):
    rng = np.random.default_rng(seed)
    base = np.linspace(90, 150, shape[0] * shape[1]).reshape(shape[:2])
    noise = rng.normal(0, 6, shape if len(shape) == 3 else shape + (1,))
    return np.clip(base[..., None] + noise, 0, 255).astype(np.uint8).squeeze()


def encoded(pixels, fmt, **options):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def skimage_equalized(pixels):
    return util.img_as_ubyte(exposure.equalize_hist(pixels))


def test_stats_through_the_api_are_exact_and_printed_as_the_cli_prints(stack, web):
    numbers = [10**30 + 1, 5, -3, 8]
    response = web.http.post("/api/stats", json={"numbers": numbers})
    assert response.status_code == 202
    job = web.wait(response.json()["job_id"])
    ordered = sorted(numbers)
    assert job["result"]["sum"] == sum(numbers) and job["result"]["count"] == 4
    assert job["result"]["median"] == Fraction(ordered[1] + ordered[2], 2)
    assert job["result"]["average"] == sum(numbers) / 4
    cli = subprocess.run([sys.executable, "-m", "client", "stats", *map(str, numbers),
                          "--stack", STACK], cwd=ROOT, env=client_env(stack),
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert job["text"] == cli.stdout.rstrip("\n")


def test_images_through_the_api_give_skimage_pixels(web, tmp_path):
    rgb, gray = low_contrast((48, 64, 3), 5), low_contrast((30, 40), 6)
    cases = [("photo.png", encoded(rgb, "PNG"), rgb), ("gray.png", encoded(gray, "PNG"), gray)]
    for name, data, pixels in cases:
        response = web.http.post("/api/images", files={"file": (name, data)},
                                 data={"kind": "equalize"})
        assert response.status_code == 202, response.text
        job = web.wait(response.json()["job_id"])
        assert job["state"] == "done", job
        output = web.http.get(job["output_url"])
        assert output.headers["content-type"] == "image/png"
        expected = skimage_equalized(pixels)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(output.content))), expected)
        values = expected if expected.ndim == 2 else expected[..., :3]
        assert job["histogram"]["output"] == np.bincount(values.ravel(), minlength=256).tolist()


def test_a_jpeg_gives_what_the_cli_gives(stack, web, tmp_path):
    data = encoded(low_contrast((50, 40, 3), 7), "JPEG", quality=90)
    (tmp_path / "photo.jpg").write_bytes(data)
    response = web.http.post("/api/images", files={"file": ("photo.jpg", data)})
    job = web.wait(response.json()["job_id"])
    output = web.http.get(job["output_url"] + "?download=1")
    assert output.headers["content-type"] == "image/jpeg"
    assert job["download_name"] == "photo-equalized.jpg"
    cli = subprocess.run([sys.executable, "-m", "client", "equalize", "photo.jpg", "-o", "out",
                          "--stack", STACK], cwd=tmp_path, env=client_env(stack),
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert output.content == (tmp_path / "out" / job["download_name"]).read_bytes()


def test_twenty_images_at_once_are_all_processed(web):
    images = {f"img{i:02d}.png": encoded(low_contrast((24, 32, 3), 100 + i), "PNG")
              for i in range(20)}

    def upload(item):
        name, data = item
        return web.http.post("/api/images", files={"file": (name, data)}).json()["job_id"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = list(pool.map(upload, images.items()))
    jobs = [web.wait(job_id, timeout=120) for job_id in ids]
    assert [job["state"] for job in jobs] == ["done"] * 20
    listed = {job["job_id"] for job in web.http.get("/api/jobs").json()["jobs"]}
    assert set(ids) <= listed


def test_without_the_token_with_another_host_or_origin_nothing_happens(web):
    bare = httpx2.Client(base_url=web.base, timeout=30)
    assert bare.get("/api/jobs").status_code == 401
    assert bare.post("/api/stats", json={"numbers": [1]}).status_code == 401
    auth = {"Authorization": f"Bearer {web.token}"}
    rebound = bare.get("/api/jobs", headers={**auth, "Host": f"attacker.example:{web.port}"})
    assert rebound.status_code == 403
    forged = bare.post("/api/stats", json={"numbers": [1]},
                       headers={**auth, "Origin": "http://attacker.example"})
    assert forged.status_code == 403
    page = bare.get(f"/?token={web.token}", follow_redirects=True)  # sets the cookie
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    bare.close()


def test_status_is_the_cli_status_document(stack, web):
    status = web.http.get("/api/status").json()
    assert status["stack"] == STACK and {"waiting", "in_flight", "dead_letters",
                                         "workers"} <= set(status)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_ends_the_server_and_deletes_its_reply_queue(stack, sig):
    before = set(reply_queues(stack))
    server = Web(stack)
    [own] = set(reply_queues(stack)) - before
    code, out, err = server.stop(sig)
    assert code == 0, err
    assert out == ""  # the ready line was the only one
    assert own not in reply_queues(stack)


def test_local_web_serves_the_page_beside_the_local_stack_and_stops_cleanly():
    process = subprocess.Popen(
        [sys.executable, "-m", "client", "local", "--port", "0", "--stack", STACK,
         "--web", "--web-port", "0", "--no-browser"], cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        match = None
        for _ in range(40):  # the local stack's own lines come first
            line = process.stdout.readline()
            if not line:
                break
            match = READY_LINE.fullmatch(line.strip())
            if match:
                break
        assert match, process.stderr.read()[-3000:] if process.poll() is not None else line
        with httpx2.Client(base_url=match.group(1), timeout=60,
                           headers={"Authorization": f"Bearer {match.group(3)}"}) as http:
            assert http.get("/api/status").json()["stack"] == STACK
            job_id = http.post("/api/stats", json={"numbers": [4, 1, 7]}).json()["job_id"]
            deadline = time.monotonic() + 60
            while (job := http.get(f"/api/jobs/{job_id}").json())["state"] not in (
                    "done", "failed") and time.monotonic() < deadline:
                time.sleep(0.1)
        assert job["state"] == "done" and job["result"]["median"] == 4
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
