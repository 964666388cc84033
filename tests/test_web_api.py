"""The web tier's JSON API against in-process moto, with a worker thread serving the jobs."""

import io
import json
import re
import threading
import time
from fractions import Fraction
from pathlib import Path

import boto3
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from PIL import Image
from skimage import exposure, util
from starlette.testclient import TestClient

from client import api, cli, cli_jobs
from client.status import stack_status
from client.web import backend, histogram
from client.web.app import create_app
from client.web.security import CSP
from client.web.session import WebSession
from worker_src import registry
from worker_src.broker import SqsBroker
from worker_src.config import WorkerConfig
from worker_src.store import S3Store
from worker_src.worker import Worker

STACK = "wqw-web"
PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STATIC = Path(__file__).resolve().parent.parent / "client" / "web" / "static"
XSS_NAME = "<img src=x onerror=alert(1)>.png"
pytestmark = pytest.mark.filterwarnings("ignore:This might be a color image")



@pytest.fixture
def stack():
    """The stack's queues and bucket, made directly (CloudFormation in moto takes seconds)."""
    with mock_aws():
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName=f"{STACK}-dlq")["QueueUrl"]
        requests = sqs.create_queue(QueueName=f"{STACK}-requests")["QueueUrl"]
        boto3.client("s3").create_bucket(Bucket=f"{STACK}-bucket")
        yield api.StackInfo(name=STACK, request_queue_url=requests, dead_letter_queue_url=dlq,
                            bucket=f"{STACK}-bucket", reply_queue_prefix=f"{STACK}-reply-")


@pytest.fixture
def worker(stack):
    config = WorkerConfig(request_queue_url=stack.request_queue_url,
                          dead_letter_queue_url=stack.dead_letter_queue_url,
                          bucket=stack.bucket, reply_queue_prefix=stack.reply_queue_prefix,
                          wait_seconds=1)
    broker = SqsBroker(boto3.client("sqs"), config.request_queue_url,
                       config.dead_letter_queue_url, config.reply_queue_prefix)
    worker = Worker(config, broker, S3Store(boto3.client("s3"), config.bucket))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield worker
    worker.stop()
    thread.join(timeout=10)


def make_web(stack, **options):
    session = WebSession(api.Client(boto3.Session(), stack), receive_wait_seconds=1)
    session.start()
    app = create_app(session, token=TOKEN, host="127.0.0.1", port=PORT, **options)
    return session, TestClient(app, base_url=BASE)


@pytest.fixture
def web(stack):
    session, http = make_web(stack)
    yield http
    session.close()


@pytest.fixture
def session_and_http(stack):
    session, http = make_web(stack)
    yield session, http
    session.close()


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


# ---- the token, the Host, the Origin ----------------------------------------------------

ENDPOINTS = [("GET", "/"), ("GET", "/favicon.ico"), ("GET", "/static/app.js"),
             ("GET", "/api/info"), ("GET", "/api/kinds"), ("GET", "/api/status"),
             ("GET", "/api/jobs"), ("GET", "/api/jobs/x"), ("GET", "/api/jobs/x/output"),
             ("GET", "/api/jobs/x/input"), ("POST", "/api/stats"), ("POST", "/api/images")]


def test_every_request_without_the_token_gets_401_and_sends_nothing(stack, web):
    for method, path in ENDPOINTS:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                        {"Cookie": f"wqw_token_{PORT}=no"}, {"Cookie": f"other={TOKEN}"}):
            response = web.request(method, path, headers=headers, json={"numbers": [1]})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["content-security-policy"] == CSP
    assert web.get("/api/jobs", headers=AUTH).json() == {"jobs": []}
    assert requests_waiting(stack) == 0


def test_the_token_in_the_url_sets_a_strict_http_only_cookie_and_leaves_the_url(web):
    response = web.get(f"/?token={TOKEN}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"wqw_token_{PORT}={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = web.get("/")  # the cookie jar now holds it
    assert page.status_code == 200 and "<title>web-queue-worker</title>" in page.text
    web.cookies.clear()
    assert web.get("/?token=wrong", follow_redirects=False).status_code == 401
    # Only the page takes the token from its URL: an API URL never carries it.
    assert web.get(f"/api/jobs?token={TOKEN}").status_code == 401


@pytest.mark.parametrize("host", ["evil.example", f"evil.example:{PORT}", "127.0.0.1:9999",
                                  f"localhost.evil.example:{PORT}", ""])
def test_a_foreign_host_gets_403_even_with_the_token(stack, web, host):
    for method, path in [("GET", "/api/jobs"), ("POST", "/api/stats")]:
        response = web.request(method, path, headers={**AUTH, "Host": host},
                               json={"numbers": [1, 2]})
        assert response.status_code == 403, response.text
        assert "host" in response.json()["error"]["message"]
    assert requests_waiting(stack) == 0


def test_localhost_is_this_server_too(web):
    response = web.get("/api/info", headers={**AUTH, "Host": f"localhost:{PORT}"})
    assert response.status_code == 200


@pytest.mark.parametrize("origin", ["http://evil.example", f"http://127.0.0.1:{PORT + 1}",
                                    f"https://127.0.0.1:{PORT}", "null"])
def test_a_state_change_from_a_foreign_origin_gets_403(stack, web, origin):
    for path, kwargs in [("/api/stats", {"json": {"numbers": [1]}}),
                         ("/api/images", {"files": {"file": ("a.png", b"x")}})]:
        response = web.post(path, headers={**AUTH, "Origin": origin}, **kwargs)
        assert response.status_code == 403, response.text
        assert "cross-site" in response.json()["error"]["message"]
    assert web.get("/api/jobs", headers=AUTH).json() == {"jobs": []}
    assert requests_waiting(stack) == 0


def test_a_cookie_alone_may_change_state_only_with_its_own_origin(stack, worker, web):
    web.get(f"/?token={TOKEN}")
    assert web.post("/api/stats", json={"numbers": [1]}).status_code == 403
    ok = web.post("/api/stats", json={"numbers": [1]}, headers={"Origin": BASE})
    assert ok.status_code == 202


def test_every_response_carries_the_security_headers(web):
    for path, status in [("/", 200), ("/static/app.js", 200), ("/api/jobs/x", 404)]:
        response = web.get(path, headers=AUTH)
        assert response.status_code == status
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert "script-src 'self';" in CSP and "unsafe-inline" not in CSP and "http" not in CSP


def test_the_page_runs_no_inline_script_and_inserts_no_html():
    page = (STATIC / "index.html").read_text()
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/app.js" defer>']
    assert not re.search(r"\son[a-z]+=", page) and "style=" not in page
    script = (STATIC / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    assert "http://" not in script and "https://" not in script


def test_the_static_files_and_the_favicon(web):
    assert web.get("/static/app.js", headers=AUTH).headers["content-type"].startswith(
        "text/javascript")
    icon = web.get("/favicon.ico", headers=AUTH)
    assert icon.status_code == 200 and Image.open(io.BytesIO(icon.content)).format == "ICO"


# ---- numbers ---------------------------------------------------------------------------

def expected_stats(numbers):
    ordered = sorted(numbers)
    middle = len(ordered) // 2
    median = (Fraction(ordered[middle]) if len(ordered) % 2 else
              Fraction(ordered[middle - 1] + ordered[middle], 2))
    average = Fraction(sum(ordered), len(ordered))

    def exact(value):
        return value.numerator if value.denominator == 1 else value.numerator / value.denominator

    return {"count": len(ordered), "min": ordered[0], "max": ordered[-1], "sum": sum(ordered),
            "average": exact(average), "median": exact(median)}


def test_stats_through_the_api_prints_what_the_cli_prints(stack, worker, web, capsys,
                                                         monkeypatch):
    numbers = [10**40 + 3, -7, 5, 2]
    response = web.post("/api/stats", headers=AUTH, json={"numbers": numbers})
    assert response.status_code == 202
    job = wait_for(web, response.json()["job_id"])
    assert job["state"] == "done" and job["kind"] == "stats" and job["error"] is None
    assert job["result"] == expected_stats(numbers)
    monkeypatch.setattr(cli_jobs, "connect", lambda _args: api.Client(boto3.Session(), stack))
    assert cli.main(["stats", *map(str, numbers)]) == 0
    assert job["text"] == capsys.readouterr().out.rstrip("\n")
    assert set(job["timing"]) >= {"queued_s", "run_s"}


def test_stats_from_text_splits_as_the_cli_does(stack, worker, web):
    response = web.post("/api/stats", headers=AUTH, json={"text": "3, 1\n2  7\n"})
    job = wait_for(web, response.json()["job_id"])
    assert job["result"] == expected_stats([3, 1, 2, 7])


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(numbers=st.lists(st.integers(min_value=-(10**30), max_value=10**30), min_size=1,
                        max_size=40))
def test_stats_of_any_integers_are_exact(stack, worker, web, numbers):
    response = web.post("/api/stats", headers=AUTH, json={"numbers": numbers})
    assert wait_for(web, response.json()["job_id"])["result"] == expected_stats(numbers)


@pytest.mark.parametrize(("body", "message"), [
    ({"numbers": [1, "x", 3]}, 'item 2 of 3 ("x") is not an integer'),
    ({"numbers": [1, 2.5]}, "item 2 of 2 (2.5) is not an integer"),
    ({"numbers": [True]}, "item 1 of 1 (true) is not an integer"),
    ({"numbers": []}, "numbers is an empty list"),
    ({"numbers": "1 2"}, "numbers must be a list of integers"),
    ({"text": "1 x 3"}, "'x' is not an integer (item 2)"),
    ({"text": "  "}, "no integers given"),
    ({"text": 5}, "text must be a string"),
    ({"nums": [1]}, 'the body must be {"numbers"'),
    ({"numbers": [1], "text": "1"}, 'the body must be {"numbers"'),
    ([1, 2], 'the body must be {"numbers"'),
])
def test_a_bad_stats_body_is_400_naming_the_item_and_sends_nothing(stack, web, body, message):
    response = web.post("/api/stats", headers=AUTH, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_input" and message in error["message"]
    assert web.get("/api/jobs", headers=AUTH).json() == {"jobs": []}
    assert requests_waiting(stack) == 0


def test_a_body_that_is_not_json_is_400(web):
    response = web.post("/api/stats", headers={**AUTH, "Content-Type": "application/json"},
                        content=b"{not json")
    assert response.status_code == 400 and "must be JSON" in response.json()["error"]["message"]


# ---- images ----------------------------------------------------------------------------

def skimage_equalized(pixels):
    return util.img_as_ubyte(exposure.equalize_hist(pixels))


def colour_histogram(pixels):
    values = pixels[..., :3] if pixels.ndim == 3 else pixels
    return np.bincount(values.ravel(), minlength=256).tolist()


@pytest.mark.parametrize("shape", [(40, 60, 3), (30, 20)])
def test_an_image_job_gives_skimage_pixels_histograms_and_a_download(stack, worker, web,
                                                                     shape):
    pixels = low_contrast(shape, 3)
    response = post_image(web, "photo.png", png_bytes(pixels))
    assert response.status_code == 202, response.text
    job = wait_for(web, response.json()["job_id"])
    assert job["state"] == "done" and job["kind"] == "equalize" and job["name"] == "photo.png"
    output = web.get(job["output_url"], headers=AUTH)
    assert output.headers["content-type"] == "image/png"
    result = np.asarray(Image.open(io.BytesIO(output.content)))
    expected = skimage_equalized(pixels)
    assert np.array_equal(result, expected)
    assert job["histogram"]["input"] == colour_histogram(pixels)
    assert job["histogram"]["output"] == colour_histogram(expected)
    original = web.get(job["input_url"], headers=AUTH)
    assert original.content == png_bytes(pixels) and original.headers["content-type"] == (
        "image/png")
    download = web.get(job["output_url"] + "?download=1", headers=AUTH)
    assert download.content == output.content
    assert job["download_name"] == "photo-equalized.png"
    assert 'filename="photo-equalized.png"' in download.headers["content-disposition"]
    assert {"queued_s", "run_s"} <= set(job["timing"])


def test_a_file_that_is_not_an_image_fails_with_the_workers_sentence(stack, worker, web):
    response = post_image(web, "notes.png", b"not an image at all")
    job = wait_for(web, response.json()["job_id"])
    assert job["state"] == "failed" and job["error"]["code"] == "bad_input"
    assert job["error"]["message"] and job["output_url"] is None
    refused = web.get(f"/api/jobs/{job['job_id']}/output", headers=AUTH)
    assert refused.status_code == 409 and "failed" in refused.json()["error"]["message"]


def test_the_xss_file_name_is_data_never_markup(stack, worker, web):
    response = post_image(web, XSS_NAME, png_bytes(low_contrast((8, 8, 3), 1)))
    job = wait_for(web, response.json()["job_id"])
    assert job["name"] == XSS_NAME  # JSON data; the page sets it with textContent
    key = job["result"]["output_key"]
    assert re.fullmatch(r"outputs/[0-9a-f-]{36}/[A-Za-z0-9._-]+", key), key
    assert job["download_name"] == "_img_src_x_onerror_alert_1__-equalized.png"
    listed = web.get("/api/jobs", headers=AUTH).json()["jobs"]
    assert [j["name"] for j in listed] == [XSS_NAME]


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "nope"}, "unknown image operation 'nope'"),
    ({"kind": "stats"}, "unknown image operation 'stats'"),
    ({"gamma": "0.5"}, "equalize has no argument 'gamma'"),
])
def test_a_bad_operation_or_argument_is_400_and_uploads_nothing(stack, web, fields, message):
    response = post_image(web, "a.png", png_bytes(low_contrast((8, 8), 1)), **fields)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert boto3.client("s3").list_objects_v2(Bucket=stack.bucket).get("KeyCount") == 0
    assert requests_waiting(stack) == 0


def test_a_form_without_exactly_one_file_is_400(web):
    none = web.post("/api/images", headers=AUTH, data={"kind": "equalize"},
                    files={"other": ("a.png", b"x")})
    assert none.status_code == 400
    two = web.post("/api/images", headers=AUTH,
                   files=[("file", ("a.png", b"x")), ("file", ("b.png", b"y"))])
    assert two.status_code == 400 and "exactly one file" in two.json()["error"]["message"]
    raw = web.post("/api/images", headers=AUTH, content=b"x")
    assert raw.status_code == 400 and "multipart/form-data" in raw.json()["error"]["message"]


# ---- jobs, unknown ids, other paths -------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/jobs/{id}", "/api/jobs/{id}/output",
                                  "/api/jobs/{id}/input"])
def test_an_unknown_job_is_404(web, path):
    for job_id in ("0b0e2b4e-0f5c-4b43-9b8a-2d7c1f0e9a11", "not-a-job"):
        response = web.get(path.format(id=job_id), headers=AUTH)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_a_stats_job_has_no_files_and_a_queued_image_no_output_yet(stack, web):
    stats = web.post("/api/stats", headers=AUTH, json={"numbers": [1]}).json()["job_id"]
    assert web.get(f"/api/jobs/{stats}/output", headers=AUTH).status_code == 404
    image = post_image(web, "a.png", png_bytes(low_contrast((8, 8), 1))).json()["job_id"]
    pending = web.get(f"/api/jobs/{image}/output", headers=AUTH)  # no worker runs here
    assert pending.status_code == 409 and "still queued" in pending.json()["error"]["message"]
    jobs = web.get("/api/jobs", headers=AUTH).json()["jobs"]
    assert [(j["job_id"], j["state"]) for j in jobs] == [(stats, "queued"), (image, "queued")]


def test_unknown_paths_and_methods_answer_in_json(web):
    missing = web.get("/api/nope", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = web.get("/api/stats", headers=AUTH)
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_kinds_status_and_info(stack, web):
    kinds = {k["name"]: k for k in web.get("/api/kinds", headers=AUTH).json()["kinds"]}
    assert {"stats", "equalize"} <= set(kinds)
    assert kinds["equalize"] == backend.kinds()["equalize"].describe()
    status = web.get("/api/status", headers=AUTH).json()
    assert status == stack_status(api.Client(boto3.Session(), stack))
    info = web.get("/api/info", headers=AUTH).json()
    assert info["stack"] == STACK and info["max_upload_bytes"] == 50 * 1024 * 1024
    assert info["dead_letters"] is False


# ---- one reply queue -------------------------------------------------------------------

def reply_queues(stack):
    return boto3.client("sqs").list_queues(QueueNamePrefix=stack.reply_queue_prefix).get(
        "QueueUrls", [])


def test_one_reply_queue_for_the_session_deleted_at_close(stack, worker, session_and_http):
    session, http = session_and_http
    ids = [http.post("/api/stats", headers=AUTH, json={"numbers": [n]}).json()["job_id"]
           for n in range(12)]
    assert [wait_for(http, i)["result"]["sum"] for i in ids] == list(range(12))
    assert len(reply_queues(stack)) == 1
    session.close()
    assert reply_queues(stack) == []


def test_a_result_for_another_job_or_twice_is_dropped(stack, session_and_http):
    session, http = session_and_http
    from worker_src import wire

    job_id = http.post("/api/stats", headers=AUTH, json={"numbers": [1]}).json()["job_id"]
    session.deliver(wire.ok_result(wire.new_job_id(), {"count": 9}))
    session.deliver(wire.ok_result(job_id, {"count": 1}))
    session.deliver(wire.error_result(job_id, "internal", "late duplicate"))
    [job] = http.get("/api/jobs", headers=AUTH).json()["jobs"]
    assert job["state"] == "done" and job["result"] == {"count": 1}


def test_the_fallback_histogram_counts_colour_channels_only():
    rgba = np.dstack([low_contrast((10, 12, 3), 4), np.full((10, 12), 7, np.uint8)])
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    assert histogram.histogram(buffer.getvalue()) == colour_histogram(rgba)
    assert histogram.histogram(b"not an image") is None


# ---- the upload cap --------------------------------------------------------------------

CAP = 1024 * 1024
PROLOGUE = (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            b"Content-Type: image/png\r\n\r\n")


def call_asgi(app, headers, chunks):
    """POST /api/images with the body in `chunks`; returns (status, chunks the app read)."""
    import anyio

    read = 0
    sent = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/api/images", "raw_path": b"",
             "root_path": "", "query_string": b"", "server": ("127.0.0.1", PORT),
             "client": ("127.0.0.1", 50000),
             "headers": [(b"host", f"127.0.0.1:{PORT}".encode()),
                         (b"authorization", f"Bearer {TOKEN}".encode()),
                         (b"content-type", b"multipart/form-data; boundary=xyz"), *headers]}

    async def receive():
        nonlocal read
        read += 1
        return {"type": "http.request", "body": chunks[read - 1],
                "more_body": read < len(chunks)}

    async def send(message):
        sent.append(message)

    anyio.run(app, scope, receive, send)
    return sent[0]["status"], read, json.loads(sent[1]["body"])


def test_an_upload_over_the_cap_is_413_before_the_body_is_read_whole(stack):
    session = WebSession(api.Client(boto3.Session(), stack), receive_wait_seconds=1)
    app = create_app(session, token=TOKEN, host="127.0.0.1", port=PORT, max_upload_bytes=CAP)
    chunks = [PROLOGUE] + [b"\0" * 65536] * 100  # 6.4 MB
    total = sum(map(len, chunks))
    # Announced: refused from Content-Length, not a byte read.
    status, read, body = call_asgi(app, [(b"content-length", str(total).encode())], chunks)
    assert (status, read) == (413, 0) and body["error"]["code"] == "too_large"
    assert "1 MiB" in body["error"]["message"]
    # Streamed without a length: refused as soon as the bytes pass the cap.
    status, read, body = call_asgi(app, [], chunks)
    assert status == 413 and read == 1 + CAP // 65536  # the prologue, then 1 MiB: one byte over
    assert boto3.client("s3").list_objects_v2(Bucket=stack.bucket).get("KeyCount") == 0
    assert requests_waiting(stack) == 0


def test_an_upload_within_the_cap_passes(stack, worker):
    session, http = make_web(stack, max_upload_bytes=CAP)
    try:
        big = http.post("/api/images", headers=AUTH,
                        files={"file": ("big.png", b"\0" * (CAP + 1))})
        assert big.status_code == 413
        small = post_image(http, "small.png", png_bytes(low_contrast((16, 16), 2)))
        assert small.status_code == 202
    finally:
        session.close()


# ---- any registered kind: its arguments from the form ------------------------------------

def _never_run(args, files, limits):
    raise AssertionError("no worker runs in this test")


TINT = registry.Kind(
    name="tint", summary="a kind of this test only", run=_never_run, main_input="image",
    output=registry.IMAGE,
    args=(registry.Arg("image", registry.FILE, "the image"),
          registry.Arg("amount", registry.FLOAT, "how much", default=1.0, minimum=0,
                       maximum=2),
          registry.Arg("mode", registry.STR, "which way", default="a", choices=("a", "b")),
          registry.Arg("reference", registry.FILE, "another image", default=None)))


@pytest.fixture
def tint(monkeypatch):
    monkeypatch.setattr(registry, "_KINDS", {**registry.kinds(), "tint": TINT})


def sent_jobs(stack):
    response = boto3.client("sqs").receive_message(QueueUrl=stack.request_queue_url,
                                                   MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in response.get("Messages", [])]


def test_a_new_kind_is_listed_and_its_form_fields_become_checked_args(stack, web, tint):
    kinds = {k["name"]: k for k in web.get("/api/kinds", headers=AUTH).json()["kinds"]}
    assert kinds["tint"] == TINT.describe()
    image = png_bytes(low_contrast((8, 8), 1))
    files = {"file": ("x.png", image), "reference": ("r.png", image)}
    refused = web.post("/api/images", headers=AUTH, files=files,
                       data={"kind": "tint", "amount": "3"})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        "amount must be a number >= 0 and <= 2, got 3.0")
    wrong_choice = web.post("/api/images", headers=AUTH, files=files,
                            data={"kind": "tint", "mode": "c"})
    assert wrong_choice.status_code == 400 and "mode" in wrong_choice.json()["error"]["message"]
    assert requests_waiting(stack) == 0
    response = web.post("/api/images", headers=AUTH, files=files,
                        data={"kind": "tint", "amount": "0.5", "mode": "b"})
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    [job] = sent_jobs(stack)
    assert job["kind"] == "tint" and job["job_id"] == job_id
    assert job["args"] == {"amount": 0.5, "mode": "b", "image": f"inputs/{job_id}/x.png",
                           "reference": f"inputs/{job_id}/reference-r.png"}
    s3 = boto3.client("s3")
    for key in (job["args"]["image"], job["args"]["reference"]):
        assert s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read() == image


def test_defaults_fill_the_fields_left_out(stack, web, tint):
    response = web.post("/api/images", headers=AUTH, files={"file": ("x.png", b"data")},
                        data={"kind": "tint", "amount": ""})
    assert response.status_code == 202
    [job] = sent_jobs(stack)
    assert job["args"] == {"amount": 1.0, "mode": "a", "image": f"inputs/{job['job_id']}/x.png"}


def test_a_result_only_in_s3_is_found_when_the_reply_never_came(stack, session_and_http):
    session, http = session_and_http
    from worker_src import contract, wire

    job_id = http.post("/api/stats", headers=AUTH, json={"numbers": [1]}).json()["job_id"]
    stored = wire.error_result(job_id, "internal", "every worker holding it died")
    boto3.client("s3").put_object(Bucket=stack.bucket, Key=contract.result_key(job_id),
                                  Body=wire.encode_result(stored).encode())
    job = session.job(job_id)
    session._check_stored_results()  # too young: not looked for
    assert job.state == "queued"
    job.submitted_at -= 61
    job.next_stored_check -= 61
    session._last_stored_check -= 61
    session._check_stored_results()
    view = http.get(f"/api/jobs/{job_id}", headers=AUTH).json()
    assert view["state"] == "failed"
    assert view["error"] == {"code": "internal", "message": "every worker holding it died"}
    assert job.next_stored_check > time.time() + 60  # the next look waits as long again


# ---- the command-line options ----------------------------------------------------------

def test_the_options_and_their_defaults():
    import argparse

    from client.web.server import add_arguments, options_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert options_from_args(parser.parse_args([])) == {
        "host": "127.0.0.1", "port": 8765, "open_browser": True, "allow_remote": False}
    assert options_from_args(parser.parse_args(["--port", "0", "--no-browser",
                                                "--host", "192.0.2.7"])) == {
        "host": "192.0.2.7", "port": 0, "open_browser": False, "allow_remote": True}
    local = argparse.ArgumentParser()
    local.add_argument("--port", type=int, default=5000)  # the emulator's
    add_arguments(local, prefix="web-")
    args = local.parse_args(["--port", "0", "--web-port", "9000"])
    assert args.port == 0 and options_from_args(args, prefix="web-")["port"] == 9000


def test_another_address_needs_the_explicit_flag_and_every_address_is_refused(stack):
    from client.web.server import WebServer

    client = api.Client(boto3.Session(), stack)
    with pytest.raises(api.UsageError, match="on purpose"):
        WebServer(client, host="192.0.2.7", port=0)
    for wildcard in ("0.0.0.0", "::"):
        with pytest.raises(api.UsageError, match="every address"):
            WebServer(client, host=wildcard, port=0, allow_remote=True)
