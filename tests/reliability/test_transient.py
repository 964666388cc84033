"""Transient S3 and SQS failures: retried with backoff, dead-lettered with a reason at the end,
and the worker goes on receiving whatever it went through."""

import json

import pytest

from worker_src import wire

from .harness import (
    Faults,
    TrackedClient,
    dead_letters,
    equalize_input,
    is_equalized,
    queue_depth,
    spawn_worker,
    stop_process,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:This might be a color image")]
SCENARIO = "transient failures"


@pytest.fixture(scope="module")
def worker(stack, tmp_path_factory):
    """One worker process for the whole module: it must live through every fault."""
    faults = Faults(tmp_path_factory.mktemp("transient"))
    process = spawn_worker(stack, faults.plan.parent / "worker.log", faults.env())
    assert wait_until(lambda: faults.events("started"), timeout=30)
    yield process, faults
    stop_process(process)


def test_failures_the_sdk_or_the_worker_retries_end_in_correct_results(
        stack, recorder, worker, tmp_path):
    process, faults = worker
    client = TrackedClient(stack.client())
    try:
        images = {name: equalize_input(client, tmp_path, (16, 24), seed)
                  for seed, name in enumerate(("throttled", "dropped", "failed_once", "raised"))}
        ids = {name: job_id for name, (job_id, _, _) in images.items()}
        ids["reply_500"], ids["delete_throttled"] = (wire.new_job_id() for _ in range(2))
        faults.set([
            # Absorbed by the SDK's own retries (5 attempts, exponential backoff with jitter).
            {"id": "s3-slowdown", "point": "before_read", "action": "throttle", "times": 2,
             "jobs": [ids["throttled"]]},
            {"id": "s3-drop", "point": "before_write", "action": "drop", "times": 2,
             "jobs": [ids["dropped"]]},
            {"id": "sqs-500", "point": "before_reply", "action": "error", "times": 2,
             "status": 500, "code": "InternalError", "jobs": [ids["reply_500"]]},
            {"id": "sqs-throttle", "point": "before_delete", "action": "throttle", "times": 1,
             "jobs": [ids["delete_throttled"]]},
            {"id": "receive-drop", "point": "receive_call", "action": "drop", "times": 2},
            # Beyond the SDK's retries: the job fails its first receive, the worker backs off.
            {"id": "s3-503-first", "point": "before_read", "action": "error", "status": 503,
             "code": "ServiceUnavailable", "attempt": 1, "jobs": [ids["failed_once"]]},
            {"id": "job-raises", "point": "after_read", "action": "raise", "attempt": 1,
             "jobs": [ids["raised"]]},
        ])
        for name in ("throttled", "dropped", "failed_once", "raised"):
            client.submit([("equalize", images[name][1])], job_ids=[ids[name]])
        client.submit([("stats", {"numbers": [4, 8, 15, 16, 23, 42]})],
                      job_ids=[ids["reply_500"]])
        client.submit([("stats", {"numbers": [-1, 1]})], job_ids=[ids["delete_throttled"]])
        outcome = client.collect(ids.values(), timeout=60)
    finally:
        client.close()
    injected = faults.injected()
    recorder.add(SCENARIO, jobs=len(ids), lost=len(outcome.lost), misrouted=client.misrouted,
                 duplicated=outcome.duplicated, crashes=int(process.poll() is not None),
                 faults=len(injected))
    results = outcome.results
    assert outcome.lost == [] and all(r.ok for r in results.values())
    for name in ("throttled", "dropped", "failed_once", "raised"):
        job_id, args, pixels = images[name]
        key = results[job_id].value["output_key"]
        assert is_equalized(stack, key, pixels)
    assert results[ids["reply_500"]].value["median"] == 15.5
    assert results[ids["delete_throttled"]].value["sum"] == 0
    for name in ("throttled", "dropped", "reply_500"):
        assert results[ids[name]].attempt == 1, name  # the SDK's retries were enough
    assert results[ids["failed_once"]].attempt == 2  # came back after the worker's backoff
    assert results[ids["raised"]].attempt == 2
    assert {e["rule"] for e in injected} >= {"s3-slowdown", "s3-drop", "sqs-500",
                                             "sqs-throttle", "receive-drop", "s3-503-first",
                                             "job-raises"}
    assert process.poll() is None


def test_a_job_failing_on_every_receive_gets_an_internal_error_and_is_dead_lettered(
        stack, recorder, worker, tmp_path):
    process, faults = worker
    client = TrackedClient(stack.client())
    try:
        job_id, args, _ = equalize_input(client, tmp_path, (16, 24), 7)
        faults.set([{"id": "s3-always", "point": "before_read", "action": "error",
                     "status": 500, "code": "InternalError", "jobs": [job_id]}])
        client.submit([("equalize", args)], job_ids=[job_id])
        outcome = client.collect([job_id], timeout=60)
    finally:
        client.close()
    dead = [m for m in dead_letters(stack) if job_id in m["Body"]]
    recorder.add(SCENARIO, jobs=1, lost=len(outcome.lost), misrouted=client.misrouted,
                 duplicated=outcome.duplicated, crashes=int(process.poll() is not None),
                 faults=len([e for e in faults.injected() if e["rule"] == "s3-always"]))
    result = outcome.results[job_id]
    assert (result.ok, result.error_code, result.attempt) == (False, wire.INTERNAL, 3)
    assert "3 attempts" in result.error_message and "InternalError" in result.error_message
    [message] = dead
    assert json.loads(message["Body"])["job_id"] == job_id
    assert message["MessageAttributes"]["error"]["StringValue"].startswith("internal: ")
    assert "InternalError" in message["MessageAttributes"]["error"]["StringValue"]
    assert queue_depth(stack, stack.outputs["RequestQueueUrl"]) == 0
    assert process.poll() is None


def test_after_fifty_failures_the_worker_still_takes_the_next_job(
        stack, recorder, worker, tmp_path):
    process, faults = worker
    # Make sure at least 50 failures hit this worker: the remainder on its receive calls.
    missing = max(0, 50 - len(faults.injected()))
    faults.set([{"id": "receive-500", "point": "receive_call", "action": "error",
                 "status": 500, "code": "InternalError", "times": missing}])
    assert wait_until(lambda: len(faults.injected()) >= 50, timeout=60)
    client = TrackedClient(stack.client())
    try:
        [job_id] = client.submit([("stats", {"numbers": [10**100, 2]})])
        outcome = client.collect([job_id], timeout=30)
    finally:
        client.close()
    injected = faults.injected()
    recorder.add(SCENARIO, jobs=1, lost=len(outcome.lost), misrouted=client.misrouted,
                 duplicated=outcome.duplicated, crashes=int(process.poll() is not None),
                 faults=missing)
    recorder.note(f"transient failures: one worker process went through {len(injected)} "
                  f"injected S3/SQS failures (errors, throttling, dropped connections, "
                  f"exceptions in the job) and still took the next job")
    assert len(injected) >= 50 and {e["pid"] for e in injected} == {process.pid}
    assert outcome.results[job_id].ok and outcome.results[job_id].value["max"] == 10**100
    assert process.poll() is None
