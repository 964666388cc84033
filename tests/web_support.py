"""Shared by the web tier's moto tests: constants and helpers (fixtures: web_fixtures.py)."""

import io
import time

import boto3
import numpy as np
from PIL import Image
from skimage import exposure, util
from starlette.testclient import TestClient

from client import api
from client.web.app import create_app
from client.web.session import WebSession

STACK = "wqw-web"
PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
XSS_NAME = "<img src=x onerror=alert(1)>.png"


def make_web(stack, **options):
    session = WebSession(api.Client(boto3.Session(), stack), receive_wait_seconds=1)
    session.start()
    app = create_app(session, token=TOKEN, host="127.0.0.1", port=PORT, **options)
    return session, TestClient(app, base_url=BASE)


def requests_waiting(stack):
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.request_queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def wait_for(http, job_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/api/jobs/{job_id}", headers=AUTH).json()
        if job["state"] in ("done", "failed") and (
                job.get("output_url") is None or job.get("histogram") is not None):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not finished: {job}")


def png_bytes(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def low_contrast(shape, seed):
    rng = np.random.default_rng(seed)
    base = np.linspace(90, 150, shape[0] * shape[1]).reshape(shape[:2])
    noise = rng.normal(0, 6, shape if len(shape) == 3 else shape + (1,))
    return np.clip(base[..., None] + noise, 0, 255).astype(np.uint8).squeeze()


def post_image(http, name, data, **fields):
    return http.post("/api/images", headers=AUTH, files={"file": (name, data, "image/png")},
                     data=fields)


def skimage_equalized(pixels):
    return util.img_as_ubyte(exposure.equalize_hist(pixels))


def colour_histogram(pixels):
    values = pixels[..., :3] if pixels.ndim == 3 else pixels
    return np.bincount(values.ravel(), minlength=256).tolist()


def reply_queues(stack):
    return boto3.client("sqs").list_queues(QueueNamePrefix=stack.reply_queue_prefix).get(
        "QueueUrls", [])
