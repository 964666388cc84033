"""The web tier's JSON API against in-process moto, with a worker thread serving the jobs."""

import io
import json
import time

import boto3
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from client import api, cli, cli_jobs
from client.status import stack_status
from client.web import histogram
from tests.moto_stack import serving_worker
from tests.stats_reference import matches_exactly
from tests.web_support import (
    AUTH,
    STACK,
    colour_histogram,
    low_contrast,
    png_bytes,
    post_image,
    reply_queues,
    requests_waiting,
    skimage_equalized,
    wait_for,
)
from worker_src import registry

# The fixtures stack, worker, web and session_and_http.
pytest_plugins = ["tests.web_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:This might be a color image")


# ---- numbers ---------------------------------------------------------------------------

def test_stats_through_the_api_prints_what_the_cli_prints(stack, worker, web, capsys,
                                                         monkeypatch):
    numbers = [10**40 + 3, -7, 5, 2]
    response = web.post("/api/stats", headers=AUTH, json={"numbers": numbers})
    assert response.status_code == 202
    job = wait_for(web, response.json()["job_id"])
    assert job["state"] == "done" and job["kind"] == "stats" and job["error"] is None
    assert matches_exactly(job["result"], numbers)
    monkeypatch.setattr(cli_jobs, "connect", lambda _args: api.Client(boto3.Session(), stack))
    assert cli.main(["stats", *map(str, numbers)]) == 0
    assert job["text"] == capsys.readouterr().out.rstrip("\n")
    assert set(job["timing"]) >= {"queued_s", "run_s"}


def test_stats_from_text_splits_as_the_cli_does(stack, worker, web):
    response = web.post("/api/stats", headers=AUTH, json={"text": "3, 1\n2  7\n"})
    job = wait_for(web, response.json()["job_id"])
    assert matches_exactly(job["result"], [3, 1, 2, 7])


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(numbers=st.lists(st.integers(min_value=-(10**30), max_value=10**30), min_size=1,
                        max_size=40))
def test_stats_of_any_integers_are_exact(stack, worker, web, numbers):
    response = web.post("/api/stats", headers=AUTH, json={"numbers": numbers})
    assert matches_exactly(wait_for(web, response.json()["job_id"])["result"], numbers)


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


@pytest.mark.parametrize("body", [
    b'{"numbers": [1, ' + b"8" * 100_001 + b"]}",
    b'{"text": "2 -' + b"8" * 100_001 + b'"}',
], ids=["numbers", "text"])
def test_an_integer_past_the_digit_bound_is_400_naming_it_and_sends_nothing(stack, web, body):
    response = web.post("/api/stats", headers={**AUTH, "Content-Type": "application/json"},
                        content=body)
    error = response.json()["error"]
    assert response.status_code == 400 and "more digits than an integer may have" in \
        error["message"] and "888888 ... (" not in error["message"]
    assert "characters)" in error["message"] and len(error["message"]) < 300
    assert requests_waiting(stack) == 0


def test_a_body_that_is_not_json_is_400(web):
    response = web.post("/api/stats", headers={**AUTH, "Content-Type": "application/json"},
                        content=b"{not json")
    assert response.status_code == 400 and "must be JSON" in response.json()["error"]["message"]

# ---- images ----------------------------------------------------------------------------

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

@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "nope"}, "unknown image operation 'nope'"),
    ({"kind": "stats"}, "unknown image operation 'stats'"),
    ({"gamma": "0.5"}, "equalize has no argument 'gamma'"),
    ({"kind": "clahe", "nbins": "9" * 1_000_000}, "nbins must be"),  # refused by its length
], ids=["unknown", "not an image kind", "no such argument", "a million digits"])
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
    assert kinds["equalize"] == registry.get_kind("equalize").describe()
    status = web.get("/api/status", headers=AUTH).json()
    assert status == stack_status(api.Client(boto3.Session(), stack))
    info = web.get("/api/info", headers=AUTH).json()
    assert info == {"stack": STACK, "max_upload_bytes": 50 * 1024 * 1024,
                    "default_kind": "equalize"}

# ---- one reply queue -------------------------------------------------------------------

def test_one_reply_queue_for_the_session_deleted_at_close(stack, worker, session_and_http):
    session, http = session_and_http
    ids = [http.post("/api/stats", headers=AUTH, json={"numbers": [n]}).json()["job_id"]
           for n in range(12)]
    assert [wait_for(http, i)["result"]["sum"] for i in ids] == list(range(12))
    assert len(reply_queues(stack)) == 1
    session.close()
    assert reply_queues(stack) == []


def test_a_session_whose_reply_queue_is_deleted_still_shows_its_results(stack,
                                                                        session_and_http):
    session, http = session_and_http
    before = http.post("/api/stats", headers=AUTH, json={"numbers": [1, 2]}).json()["job_id"]
    [queue] = reply_queues(stack)
    boto3.client("sqs").delete_queue(QueueUrl=queue)  # e.g. another machine's cleanup
    after = http.post("/api/stats", headers=AUTH, json={"numbers": [3, 4]}).json()["job_id"]
    with serving_worker(stack):  # finds the queue gone: the results go to S3
        assert wait_for(http, before)["result"]["sum"] == 3
        assert wait_for(http, after)["result"]["sum"] == 7
        later = http.post("/api/stats", headers=AUTH, json={"numbers": [5]}).json()["job_id"]
        assert wait_for(http, later)["result"]["sum"] == 5  # through a new reply queue
    assert reply_queues(stack) == [session.client.reply_queue_url] != [queue]


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

# ---- any registered kind: its arguments from the form ------------------------------------

def _never_run(ctx):
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
