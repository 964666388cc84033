"""Client-side faults: each ends the CLI with one line on stderr and its own exit code."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import boto3
import pytest

from client.local import LOCAL_CREDENTIALS

from .harness import (
    REAL_WORKER,
    ROOT,
    TEST_WORKER_ENV,
    drain,
    reply_queues,
    stop_workers,
    wait_until,
)

pytestmark = pytest.mark.slow
SCENARIO = "client-side faults"


def cli_env(endpoint):
    return {**os.environ, **LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint,
            "PYTHONPATH": str(ROOT)}


def run_cli(endpoint, *argv, cwd=ROOT):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "client", *argv], cwd=cwd,
                          env=cli_env(endpoint), capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - started


def one_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def purged(stack):
    """The request queue is emptied afterwards: these jobs have no worker on purpose."""
    yield
    assert drain(stack) == 1


def test_no_such_stack_exits_3(stack, recorder):
    done, _ = run_cli(stack.endpoint_url, "stats", "1", "--stack", "no-such-stack")
    recorder.add(SCENARIO)
    assert done.returncode == 3 and done.stdout == ""
    assert one_line(done.stderr).startswith("error: no stack named 'no-such-stack'")


def test_an_endpoint_that_is_down_exits_5_quickly(stack, recorder):
    down = f"http://127.0.0.1:{free_port()}"
    done, seconds = run_cli(down, "stats", "1", "--stack", stack.stack_name)
    recorder.add(SCENARIO)
    recorder.note(f"client-side faults: with the endpoint down the CLI gave up after "
                  f"{seconds:.1f} s (3 attempts, 5 s connect timeout)")
    assert done.returncode == 5 and done.stdout == ""
    line = one_line(done.stderr)
    assert line.startswith("error: cannot reach AWS: Could not connect to the endpoint URL")
    assert down in line


def test_timeout_exits_4_and_removes_the_reply_queue(stack, recorder, purged):
    done, _ = run_cli(stack.endpoint_url, "stats", "1", "2", "--timeout", "2",
                      "--stack", stack.stack_name)
    recorder.add(SCENARIO, jobs=1)
    assert done.returncode == 4 and done.stdout == ""
    assert one_line(done.stderr) == "error: timed out after 2 s waiting for 1 job(s)"
    assert reply_queues(stack) == []


def test_ctrl_c_while_waiting_exits_130_and_removes_the_reply_queue(stack, recorder, purged):
    process = subprocess.Popen(
        [sys.executable, "-m", "client", "stats", "5", "--stack", stack.stack_name],
        cwd=ROOT, env=cli_env(stack.endpoint_url), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: reply_queues(stack), timeout=30)
        time.sleep(0.5)  # submitted, and in its long poll
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    recorder.add(SCENARIO, jobs=1)
    assert process.returncode == 130 and out == ""
    # Not on a terminal: no question; the job keeps running and the way to cancel it is named.
    hint, last = err.strip().splitlines()
    assert "1 job(s) keep running" in hint and "python -m client cancel " in hint
    assert last == "interrupted"
    assert reply_queues(stack) == []


def test_a_job_that_fails_exits_1_naming_the_error(stack, recorder, tmp_path):
    stack.start_workers(1, command=REAL_WORKER, env=TEST_WORKER_ENV)
    try:
        (tmp_path / "scan.jpg").write_text("not a picture")
        done, _ = run_cli(stack.endpoint_url, "equalize", "scan.jpg", "--stack",
                          stack.stack_name, cwd=tmp_path)
    finally:
        codes = stop_workers(stack)
    recorder.add(SCENARIO, jobs=1, crashes=sum(c != 0 for c in codes))
    assert done.returncode == 1 and done.stdout == ""
    assert one_line(done.stderr).startswith("scan.jpg: bad_input: not an image")


def test_bad_usage_exits_2_before_sending_anything(stack, recorder):
    done, _ = run_cli(stack.endpoint_url, "stats", "1", "2.5", "--stack", stack.stack_name)
    recorder.add(SCENARIO)
    assert done.returncode == 2 and done.stdout == ""
    assert one_line(done.stderr) == "error: '2.5' is not an integer (item 2)"


TEMPLATE = {
    "Resources": {
        "Dlq": {"Type": "AWS::SQS::Queue"},
        "Requests": {"Type": "AWS::SQS::Queue"},
        "Bucket": {"Type": "AWS::S3::Bucket"},
    },
    "Outputs": {
        "RequestQueueUrl": {"Value": {"Ref": "Requests"}},
        "DeadLetterQueueUrl": {"Value": {"Ref": "Dlq"}},
        "BucketName": {"Value": {"Ref": "Bucket"}},
        "ReplyQueuePrefix": {"Value": "doomed-reply-"},
    },
}


def test_the_emulator_dying_while_the_client_waits_exits_5(recorder, tmp_path):
    """A separate emulator process, killed while the CLI is in its long poll."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(tmp_path / "moto.log", "wb") as log:
        emulator = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                     "-p", str(port)], stdout=log, stderr=log)
    client = None
    try:
        cloudformation = boto3.client("cloudformation", endpoint_url=endpoint,
                                      region_name="us-east-1")
        assert wait_until(lambda: _answers(cloudformation), timeout=30)
        cloudformation.create_stack(StackName="doomed", TemplateBody=json.dumps(TEMPLATE))
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
        client = subprocess.Popen(
            [sys.executable, "-m", "client", "stats", "1", "--stack", "doomed"], cwd=ROOT,
            env=cli_env(endpoint), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert wait_until(lambda: sqs.list_queues(QueueNamePrefix="doomed-reply-").get(
            "QueueUrls"), timeout=30)
        time.sleep(0.5)
        emulator.kill()
        out, err = client.communicate(timeout=60)
    finally:
        emulator.kill()
        emulator.wait()
        if client is not None and client.poll() is None:
            client.kill()
    recorder.add(SCENARIO, jobs=1)
    assert client.returncode == 5 and out == ""
    assert one_line(err).startswith("error: cannot reach AWS: ")


def _answers(cloudformation):
    try:
        cloudformation.list_stacks()
        return True
    except Exception:
        return False
