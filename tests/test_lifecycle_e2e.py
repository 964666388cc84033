"""Running words and cancels on the local stack (in-process moto) with a real worker thread."""

from __future__ import annotations

import gc
import json
import signal
import threading
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from client import api, cli, lifecycle
from tests.lifecycle_kinds import kinds_with_slow
from tests.moto_stack import deploy, serving_worker
from worker_src import contract, registry, wire
from worker_src import wire_lifecycle as lw
from worker_src.executor import Executor

pytestmark = pytest.mark.slow
STACK = "wqw-life"


def horse_executor(store, identity):
    executor = Executor(store, identity=identity, kinds=kinds_with_slow())
    executor.time_limit_s = 120.0  # each job in a work horse child, which a cancel kills
    return executor


@pytest.fixture(autouse=True)
def slow_registered(monkeypatch):
    """The client checks kinds against the registry: it knows `slow` too."""
    monkeypatch.setattr(registry, "_KINDS", kinds_with_slow())


@pytest.fixture
def stack():
    with mock_aws():
        yield deploy(STACK)


@pytest.fixture
def worker(stack):
    with serving_worker(stack, executor=horse_executor) as worker:
        yield worker


def new_client(stack):
    return api.Client(boto3.Session(), stack)


def submit_slow(client, *, wait=True, **args):
    return client.submit([("slow", {"steps": 20, **args})], wait=wait)[0]


def wait_running(client, job_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    while job_id not in client.running:
        assert time.monotonic() < deadline, "no running word came"
        for result in client.receive_results(wait_seconds=1):
            client._arrived[result.job_id] = result
    return client.running[job_id]


def finished_stats_job(client):
    """A stats job submitted without waiting for it, once its result is stored."""
    [job_id] = client.submit([("stats", {"numbers": [1]})], wait=False)
    deadline = time.monotonic() + 10
    while lifecycle.job_state(client, job_id)["state"] != lifecycle.DONE:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return job_id


def requests_held(sqs, stack):
    """The messages in the request queue, waiting or held by a worker."""
    attributes = sqs.get_queue_attributes(QueueUrl=stack.request_queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(value) for value in attributes.values())


def record_calls(boto_client, calls):
    boto_client.meta.events.register("before-call", lambda model, **_: calls.append(model.name))


def test_a_long_job_says_it_started_then_how_far_in_order(stack, worker):
    with new_client(stack) as client:
        words = []
        client.on_word = lambda: words.extend(dict(client.running).values())
        job_id = submit_slow(client, seconds=5.0)
        [result] = list(client.wait([job_id], timeout=30))
    assert result.ok
    mine = [w for w in words if w.job_id == job_id]
    assert mine[0].worker == worker.identity and mine[0].elapsed_s >= 0.9
    # (a word before the work horse's first report has no fraction yet)
    fractions = [w.fraction for w in mine if w.fraction is not None]
    assert len(set(fractions)) >= 2 and fractions == sorted(fractions)
    assert 0 < fractions[0] < fractions[-1] < 1
    assert [w.elapsed_s for w in mine] == sorted(w.elapsed_s for w in mine)


def test_a_short_job_sends_nothing_extra(stack, worker):
    time.sleep(1.5)  # the worker's first polls are over
    worker_calls: list[str] = []
    record_calls(worker.broker.sqs, worker_calls)
    record_calls(worker.store.s3, worker_calls)
    with new_client(stack) as client:
        client_calls: list[str] = []
        record_calls(client.sqs, client_calls)
        record_calls(client.s3, client_calls)
        [job_id] = client.submit([("stats", {"numbers": [3, 1, 2]})])
        [result] = list(client.wait([job_id], timeout=30))
        assert result.ok and client.running == {}
    time.sleep(0.5)
    job_calls = [c for c in worker_calls if c != "ReceiveMessage"]
    assert job_calls == ["SendMessageBatch", "DeleteMessageBatch"]
    assert worker.lifecycle.marker_checks == 0
    assert client_calls.count("SendMessage") == 0 and "PutObject" not in client_calls


def test_cancel_of_a_queued_job_never_calls_its_function(stack, worker, tmp_path):
    trace = tmp_path / "called"
    data = tmp_path / "data.txt"
    data.write_text("unused")
    with new_client(stack) as client:
        busy = submit_slow(client, seconds=4.0)
        [queued] = client.submit_files("slow", [data], {"trace": str(trace), "seconds": 0.1})
        wait_running(client, busy)
        with new_client(stack) as other:
            [outcome] = lifecycle.cancel(other, [queued], wait_seconds=20)
        results = {r.job_id: r for r in client.wait([busy, queued], timeout=30)}
    assert outcome.outcome == lifecycle.CANCELLED, outcome
    assert results[busy].ok
    assert results[queued].error_code == wire.CANCELLED
    assert "never ran" in results[queued].error_message
    assert not trace.exists()  # the slow function never ran for it
    listed = boto3.client("s3").list_objects_v2(Bucket=stack.bucket,
                                                Prefix=contract.input_prefix(queued))
    assert listed.get("KeyCount", 0) == 0  # its input is deleted


def test_cancel_of_a_running_job_stops_it_within_5_s_and_the_worker_goes_on(stack, worker):
    with new_client(stack) as client:
        job_id = submit_slow(client, seconds=60.0, report=False)
        wait_running(client, job_id)
        started = time.monotonic()
        with new_client(stack) as other:
            [outcome] = lifecycle.cancel(other, [job_id], wait_seconds=0)
        [result] = list(client.wait([job_id], timeout=30))
        latency = time.monotonic() - started
        [after] = client.submit([("stats", {"numbers": [1, 2]})])
        [next_result] = list(client.wait([after], timeout=30))
    assert outcome.outcome == lifecycle.REQUESTED
    assert result.error_code == wire.CANCELLED and "while running" in result.error_message
    assert latency < 5.0, latency
    assert next_result.ok and next_result.worker == result.worker == worker.identity
    print(f"cancel latency: {latency:.2f} s")


@pytest.mark.parametrize("cancel_after", [0.8, 1.15])
def test_a_cancel_racing_the_jobs_end_gives_exactly_one_answer(stack, worker, cancel_after):
    sqs = boto3.client("sqs")
    with new_client(stack) as client:
        job_id = submit_slow(client, seconds=1.2, steps=4)
        time.sleep(cancel_after)
        with new_client(stack) as other:
            lifecycle.cancel(other, [job_id], wait_seconds=0)
        answers = []
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            # A worker answers before it deletes what it answers: once the job's and the
            # cancel's messages are gone, a receive that finds nothing means no answer is left.
            settled = requests_held(sqs, stack) == 0
            messages = sqs.receive_message(QueueUrl=client.reply_queue_url,
                                           MaxNumberOfMessages=10,
                                           WaitTimeSeconds=1).get("Messages", [])
            for message in messages:
                if lw.message_type(message["Body"]) is None:
                    answers.append(wire.decode_result(message["Body"]))
                sqs.delete_message(QueueUrl=client.reply_queue_url,
                                   ReceiptHandle=message["ReceiptHandle"])
            if settled and not messages:
                break
    assert [a.job_id for a in answers] == [job_id]
    assert answers[0].ok or answers[0].error_code == wire.CANCELLED


def test_ctrl_c_with_cancel_on_interrupt_cancels_the_whole_run(stack, worker, tmp_path,
                                                               capsys):
    files = []
    for name in ("a", "b", "c"):
        files.append(tmp_path / f"{name}.txt")
        files[-1].write_text(name)
    s3 = boto3.client("s3")

    def interrupt_when_running():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if s3.list_objects_v2(Bucket=stack.bucket, Prefix=contract.RUNNING).get("KeyCount"):
                break
            time.sleep(0.2)
        # A real SIGINT to the main thread, as a terminal's Ctrl-C: it also cuts short a wait
        # in C (interrupt_main() only sets a flag that such a wait does not see).
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    # A KeyboardInterrupt raised inside a gc callback (hypothesis, imported by other tests of
    # this process, registers one) is unraisable: the Ctrl-C would be lost.
    callbacks = gc.callbacks[:]
    gc.callbacks.clear()
    try:
        threading.Thread(target=interrupt_when_running, daemon=True).start()
        code = cli.main(["run", "slow", *map(str, files), "-a", "seconds=30", "-a",
                         "report=false", "--stack", STACK, "--cancel-on-interrupt",
                         "-o", str(tmp_path / "out")])
    finally:
        gc.callbacks.extend(callbacks)
    err = capsys.readouterr().err
    assert code == 130
    lines = [line for line in err.splitlines() if ": cancelled" in line]
    job_ids = [line.split(":")[0] for line in lines]
    assert len(job_ids) == 3, err
    for job_id in job_ids:
        stored = api.Client(boto3.Session(), stack).fetch_result(job_id)
        assert stored.error_code == wire.CANCELLED


def test_result_says_running_for_a_job_nobody_waits_for(stack, worker, capsys):
    with new_client(stack) as client:
        # Long enough that a poll on a loaded machine sees it running (its record is written
        # after the first seconds).
        job_id = submit_slow(client, wait=False, seconds=10.0)
    deadline = time.monotonic() + 60  # the shared worker may be busy with another test's job
    while True:
        code = cli.main(["result", job_id, "--stack", STACK])
        out = capsys.readouterr().out
        if "running" in out or code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert code == 1 and f"job {job_id}: running" in out and worker.identity in out
    deadline = time.monotonic() + 30
    while cli.main(["result", job_id, "--stack", STACK, "--json"]) != 0:
        assert time.monotonic() < deadline, "the job never finished"
        capsys.readouterr()
        time.sleep(0.5)
    assert '"slept": 10.0' in capsys.readouterr().out


def test_cancel_of_a_finished_or_unknown_job_says_so(stack, worker):
    with new_client(stack) as client:
        done = finished_stats_job(client)
        unknown = wire.new_job_id()
        outcomes = lifecycle.cancel(client, [done, unknown], wait_seconds=3)
    assert [o.outcome for o in outcomes] == [lifecycle.FINISHED, lifecycle.REQUESTED]
    assert "result is kept" in outcomes[0].message
    assert "never submitted" in outcomes[1].message
    with pytest.raises(api.UsageError, match="not a job id"):
        lifecycle.check_ids(["nope"])


def test_the_cancel_command_says_what_became_of_each_job(stack, worker, capsys):
    with new_client(stack) as client:
        done = finished_stats_job(client)
    assert cli.main(["cancel", done, "--stack", STACK, "--json", "--wait", "1"]) == 0
    [outcome] = json.loads(capsys.readouterr().out)["cancels"]
    assert outcome["outcome"] == "finished" and "result is kept" in outcome["message"]
    assert cli.main(["cancel", "not-a-job", "--stack", STACK]) == 2
    assert "'not-a-job' is not a job id" in capsys.readouterr().err


def test_path_helpers_agree():
    assert contract.cancel_key("x").startswith(contract.CANCELS)
    assert Path(contract.running_key("x")).name == "x.json"
