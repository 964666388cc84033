"""Bad input of every kind: the specific error the client shows, the worker lives on, and a
good job sent right after still succeeds."""

import argparse
import io
import json
import os
import struct
import subprocess
import sys
import time
import uuid
import zlib

import numpy as np
import pytest
from PIL import Image

from client import cli_output
from client.local import LOCAL_CREDENTIALS
from tests.stats_reference import matches_exactly
from worker_src import wire, wire_lifecycle

from .harness import (
    REAL_WORKER,
    ROOT,
    TEST_WORKER_ENV,
    TrackedClient,
    dead_letters,
    queue_depth,
    stop_workers,
    wait_until,
)

pytestmark = pytest.mark.slow
SCENARIO = "bad input"


class Env:
    def __init__(self, stack, client, raw_reply):
        self.stack, self.client, self.raw_reply = stack, client, raw_reply
        # Not the client's own SQS client: what the test reads itself is not the client's.
        self.sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
        self.s3 = client.client.s3
        self.pids = [w.pid for w in stack.workers]
        self.exits = len(stack.worker_exits)
        self.jobs = 0
        self.cases = 0

    def send_raw(self, body):
        self.jobs += 1
        self.sqs.send_message(QueueUrl=self.stack.outputs["RequestQueueUrl"], MessageBody=body)

    def raw_result(self, job_id, timeout=20):
        """The result the worker sent to the test's own reply queue for `job_id`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.sqs.receive_message(QueueUrl=self.raw_reply, WaitTimeSeconds=1,
                                                MaxNumberOfMessages=10).get("Messages", [])
            for message in messages:
                self.sqs.delete_message(QueueUrl=self.raw_reply,
                                        ReceiptHandle=message["ReceiptHandle"])
                if wire_lifecycle.message_type(message["Body"]) is not None:
                    continue  # a running word (a job that outlasts a second)
                result = wire.decode_result(message["Body"])
                if result.job_id == job_id:
                    return result
        raise AssertionError(f"no result for {job_id}")

    def stored_result(self, job_id, timeout=20):
        def read():
            try:
                return self.s3.get_object(Bucket=self.stack.outputs["BucketName"],
                                          Key=f"results/{job_id}.json")["Body"].read()
            except self.s3.exceptions.NoSuchKey:
                return None
        body = wait_until(read, timeout=timeout)
        assert body, f"no stored result for {job_id}"
        return wire.decode_result(body)

    def run(self, kind, args, timeout=30):
        self.jobs += 1
        [job_id] = self.client.submit([(kind, args)])
        outcome = self.client.collect([job_id], timeout)
        assert outcome.lost == [], f"no result for {kind} {str(args)[:80]}"
        return outcome.results[job_id]

    def job_body(self, **fields):
        body = {"version": 1, "job_id": wire.new_job_id(), "kind": "stats",
                "args": {"numbers": [1]}, "reply_to": self.raw_reply,
                "submitted_at": time.time(), **fields}
        return body["job_id"], json.dumps({k: v for k, v in body.items() if v is not ...})

    def check_alive_and_serving(self):
        """The worker processes are the same ones, and a good job right after succeeds."""
        self.cases += 1
        result = self.run("stats", {"numbers": [2, 4, 9]})
        assert result.ok and result.value["median"] == 4
        assert [w.pid for w in self.stack.workers] == self.pids
        assert all(w.poll() is None for w in self.stack.workers)
        assert len(self.stack.worker_exits) == self.exits


@pytest.fixture(scope="module")
def env(stack, recorder):
    stack.start_workers(2, command=REAL_WORKER, env=TEST_WORKER_ENV)
    client = TrackedClient(stack.client())
    sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
    raw_reply = sqs.create_queue(
        QueueName=f"{stack.outputs['ReplyQueuePrefix']}raw{uuid.uuid4().hex[:8]}")["QueueUrl"]
    environment = Env(stack, client, raw_reply)
    try:
        yield environment
    finally:
        sqs.delete_queue(QueueUrl=raw_reply)
        client.close()
        codes = stop_workers(stack)
        crashes = sum(c != 0 for c in codes) + len(stack.worker_exits) - environment.exits
        recorder.add(SCENARIO, runs=environment.cases, jobs=environment.jobs,
                     misrouted=client.misrouted, crashes=crashes)


def shown(result):
    """The line the CLI prints for a failed job."""
    args = argparse.Namespace(json=False)
    stderr = io.StringIO()
    real, sys.stderr = sys.stderr, stderr
    try:
        assert cli_output.report_failure(args, result) == 1
    finally:
        sys.stderr = real
    return stderr.getvalue().strip()


# ---- the job message itself --------------------------------------------------------------

UNANSWERABLE = {
    "malformed JSON": ("{this is not json [1, 2]", "not valid JSON"),
    "JSON that is not an object": ('["stats", [1, 2]]', "must be a JSON object"),
    "a job id that is not a UUID": (None, "job_id must be a UUID string"),
}


@pytest.mark.parametrize("case", list(UNANSWERABLE))
def test_an_unanswerable_message_is_dead_lettered_at_once_with_the_reason(env, case):
    body, reason = UNANSWERABLE[case]
    if body is None:
        _, body = env.job_body(job_id="job-7")
    body = body.replace("[1, 2]", f"[1, 2, {time.time()}]")  # unique in the DLQ
    env.send_raw(body)
    dead = wait_until(lambda: [m for m in dead_letters(env.stack) if m["Body"] == body],
                      timeout=20)
    assert len(dead) == 1
    assert dead[0]["MessageAttributes"]["error"]["StringValue"].startswith("bad_input: ")
    assert reason in dead[0]["MessageAttributes"]["error"]["StringValue"]
    env.check_alive_and_serving()
    assert queue_depth(env.stack, env.stack.outputs["RequestQueueUrl"]) == 0


MALFORMED = {
    "wrong version": ({"version": 2}, "unsupported wire version 2"),
    "not a kind's name": ({"kind": "Resize!"}, "kind must be a job kind's name"),
    "missing fields": ({"submitted_at": ...}, "missing field(s): submitted_at"),
    "an unknown field": ({"priority": 9}, "unknown field(s): priority"),
    "args that are not an object": ({"args": [1, 2]}, "args must be a JSON object"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_job_is_answered_and_dead_lettered(env, case):
    fields, message = MALFORMED[case]
    job_id, body = env.job_body(**fields)
    env.send_raw(body)
    result = env.raw_result(job_id)
    assert (result.ok, result.error_code) == (False, wire.BAD_INPUT)
    line = shown(result)
    assert line.startswith(f"error: job {job_id} failed: bad_input: ") and message in line
    dead = wait_until(lambda: [m for m in dead_letters(env.stack) if job_id in m["Body"]],
                      timeout=20)
    assert dead and message in dead[0]["MessageAttributes"]["error"]["StringValue"]
    env.check_alive_and_serving()


# ---- the arguments -------------------------------------------------------------------------

BAD_ARGS = {
    "an empty list": ({"numbers": []}, "numbers is an empty list"),
    "a non-integer token": ({"numbers": [1, "x", 3]},
                            'item 2 of 3 ("x", a string) is not an integer'),
    "a float": ({"numbers": [1, 1.5]},
                "item 2 of 2 (1.5, a number with a fraction or exponent) is not an integer"),
    "a boolean": ({"numbers": [True, 2]}, "item 1 of 2 (true, a boolean) is not an integer"),
    "null": ({"numbers": [3, None]}, "item 2 of 2 (null, null) is not an integer"),
    "numbers that are not a list": ({"numbers": "1 2 3"},
                                    "numbers must be a list of integers, got '1 2 3'"),
    "a missing argument": ({}, "stats takes exactly one of numbers"),
    "an unknown argument": ({"numbers": [1], "extra": 1}, "stats has no argument 'extra'"),
}


@pytest.mark.parametrize("case", list(BAD_ARGS))
def test_bad_stats_arguments_are_bad_input_naming_the_offender(env, case):
    args, message = BAD_ARGS[case]
    result = env.run("stats", args)
    assert (result.ok, result.error_code) == (False, wire.BAD_INPUT)
    assert message in result.error_message
    assert shown(result).startswith(f"error: job {result.job_id} failed: bad_input: ")
    env.check_alive_and_serving()


def test_integers_with_thousands_of_digits_work_exactly(env):
    numbers = [7 * 10**4999 + 3, -(10**5000), 12345678901234567890 ** 300, 5]
    result = env.run("stats", {"numbers": numbers})
    assert result.ok, result.error_message
    assert matches_exactly(result.value, numbers)  # every digit of all six
    env.check_alive_and_serving()


def test_an_extra_large_job_travels_through_s3_and_works(env):
    numbers = list(range(-10**15, -10**15 + 70_000))  # about 1.3 MB of JSON: over 1 MiB
    assert len(json.dumps(numbers)) > wire.MAX_MESSAGE_BYTES
    result = env.run("stats", {"numbers": numbers})
    assert result.ok and result.value["count"] == len(numbers)
    assert result.value["average"] == sum(numbers) / len(numbers)
    env.check_alive_and_serving()


def test_a_message_over_the_sqs_limit_is_refused_by_sqs_not_lost(env):
    _, body = env.job_body(args={"numbers": list(range(200_000))})
    assert len(body) > wire.MAX_MESSAGE_BYTES
    with pytest.raises(env.sqs.exceptions.ClientError) as refused:
        env.sqs.send_message(QueueUrl=env.stack.outputs["RequestQueueUrl"], MessageBody=body)
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidParameterValue" and "1048576" in error["Message"]
    assert queue_depth(env.stack, env.stack.outputs["RequestQueueUrl"]) == 0
    env.check_alive_and_serving()


def test_args_key_naming_a_missing_object_is_not_found(env):
    job_id = wire.new_job_id()
    _, body = env.job_body(job_id=job_id, args=..., args_key=f"inputs/{job_id}/args.json")
    env.send_raw(body)
    result = env.raw_result(job_id)
    assert result.error_code == wire.NOT_FOUND and f"inputs/{job_id}/args.json" in (
        result.error_message)
    env.check_alive_and_serving()


def test_an_input_key_that_was_never_uploaded_is_not_found(env):
    job_id = wire.new_job_id()
    [job_id] = env.client.submit([("equalize", {"image": f"inputs/{job_id}/gone.png"})],
                                 job_ids=[job_id])
    env.jobs += 1
    result = env.client.collect([job_id], 30).results[job_id]
    assert result.error_code == wire.NOT_FOUND and "gone.png does not exist" in (
        result.error_message)
    env.check_alive_and_serving()


def test_a_key_of_another_job_is_refused(env):
    job_id, other = wire.new_job_id(), wire.new_job_id()
    env.client.submit([("equalize", {"image": f"inputs/{other}/a.png"})],
                      job_ids=[job_id])
    env.jobs += 1
    result = env.client.collect([job_id], 30).results[job_id]
    assert result.error_code == wire.BAD_INPUT
    assert f"image must be an S3 key under inputs/{job_id}/" in result.error_message
    env.check_alive_and_serving()


# ---- the reply queue -----------------------------------------------------------------------

def test_a_reply_queue_outside_the_stack_is_refused(env):
    other = env.sqs.create_queue(QueueName=f"someone-else-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    try:
        job_id, body = env.job_body(reply_to=other)
        env.send_raw(body)
        stored = env.stored_result(job_id)
        assert stored.error_code == wire.FORBIDDEN
        assert env.stack.outputs["ReplyQueuePrefix"] in stored.error_message
        assert env.sqs.receive_message(QueueUrl=other).get("Messages", []) == []
    finally:
        env.sqs.delete_queue(QueueUrl=other)
    env.check_alive_and_serving()


def test_a_reply_queue_that_no_longer_exists_leaves_the_result_in_s3(env):
    gone = env.sqs.create_queue(
        QueueName=f"{env.stack.outputs['ReplyQueuePrefix']}gone{uuid.uuid4().hex[:8]}")
    env.sqs.delete_queue(QueueUrl=gone["QueueUrl"])
    job_id, body = env.job_body(reply_to=gone["QueueUrl"], args={"numbers": [6, 1, 8]})
    env.send_raw(body)
    stored = env.stored_result(job_id)
    assert stored.ok and stored.value["median"] == 6
    env.check_alive_and_serving()


# ---- images, through the command line as a user runs it -------------------------------------

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encoded(image, fmt, **params):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def bad_images():
    gradient = Image.linear_gradient("L").resize((40, 30))
    jpeg = encoded(gradient.convert("RGB"), "JPEG", quality=90)
    png = bytearray(encoded(gradient, "PNG"))
    idat = png.index(b"IDAT")
    png[idat + 10] ^= 0xFF  # a pixel-data byte: Pillow alone would not notice
    huge = (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))
    frames = [Image.new("RGB", (16, 16), (90 * i, 40, 200 - 60 * i)) for i in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100)
    sixteen = Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)
    return {
        "empty.png": (b"", "bad_input", "the file is empty (0 bytes)"),
        "notes.jpg": (b"dear diary, this is not a picture\n", "bad_input", "not an image"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "bad_input", "truncated"),
        "badcrc.png": (bytes(png), "bad_input", "corrupt PNG: bad CRC in the IDAT chunk"),
        "huge.png": (huge, "too_large", "60000x60000 = 3600000000 pixels"),
        "deep.png": (encoded(sixteen, "PNG"), "bad_input", "16-bit PNG"),
        "cmyk.jpg": (encoded(Image.new("CMYK", (20, 20), (0, 50, 100, 0)), "JPEG"),
                     "bad_input", "CMYK JPEG is not supported"),
        "animated.gif": (gif.getvalue(), "bad_input",
                         "animated GIF (3 frames) is not supported"),
    }


def test_bad_images_each_get_their_own_error_line_from_the_cli(env, tmp_path):
    images = bad_images()
    for name, (data, _, _) in images.items():
        (tmp_path / name).write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-m", "client", "equalize", *images, "--stack", env.stack.stack_name,
         "-o", "out"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, **LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": env.stack.endpoint_url,
             "PYTHONPATH": str(ROOT)})
    env.jobs += len(images)
    lines = {line.split(":", 1)[0]: line for line in done.stderr.splitlines()}
    assert done.returncode == 1 and done.stdout == "", done.stderr
    for name, (_, code, message) in images.items():
        assert lines[name].startswith(f"{name}: {code}: "), lines.get(name)
        assert message in lines[name].replace(",", ""), lines[name]
    assert not (tmp_path / "out").exists()
    env.check_alive_and_serving()


def test_the_client_saw_only_results_of_its_own_jobs(env):
    """Last in this module: every result the client's reply queue carried was for its jobs."""
    assert env.client.submitted and env.client.misrouted == 0
