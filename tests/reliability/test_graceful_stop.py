"""SIGTERM: the job in hand finishes and is deleted, nothing new is taken, exit 0."""

import signal
import time

import pytest

from .harness import (
    VISIBILITY_TIMEOUT,
    Faults,
    TrackedClient,
    drain,
    queue_depth,
    spawn_worker,
    stop_process,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def faults(tmp_path):
    return Faults(tmp_path / "faults")


def stats_jobs(count, offset=0):
    return [("stats", {"numbers": [offset + i, 2 * (offset + i), 7]}) for i in range(count)]


def run_released(stack, faults, client, job_ids, log):
    """Run the released jobs on a fresh worker, without faults; return the outcome."""
    faults.set([])
    worker = spawn_worker(stack, log, faults.env())
    try:
        return client.collect(job_ids, timeout=30)
    finally:
        stop_process(worker)


def test_sigterm_mid_job_finishes_it_releases_the_rest_and_exits_0(
        stack, recorder, faults, tmp_path):
    faults.set([{"id": "slow", "point": "before_compute", "action": "delay", "seconds": 2}])
    client = TrackedClient(stack.client())
    try:
        ids = client.submit(stats_jobs(4))  # all waiting before the worker takes its batch
        worker = spawn_worker(stack, tmp_path / "worker.log", faults.env())
        first = wait_until(lambda: faults.events("start"), timeout=30)
        assert first, "the worker never started a job"
        signalled = time.time()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=VISIBILITY_TIMEOUT)  # raises if it outlives the timeout
        exited = time.time()
        [received] = faults.events("received", pid=worker.pid)
        started = {e["job"] for e in faults.events("start", pid=worker.pid)}
        deleted = [j for e in faults.events("deleted", pid=worker.pid) for j in e["jobs"]]
        # The released messages are visible again at once: nothing else is in flight.
        waiting = queue_depth(stack, stack.outputs["RequestQueueUrl"])
        finished = client.collect([first[0]["job"]], timeout=10)
        rest = run_released(stack, faults, client, [i for i in ids if i != first[0]["job"]],
                           tmp_path / "drain.log")
    finally:
        client.close()
    lost = len(finished.lost) + len(rest.lost)
    recorder.add("graceful stop", jobs=len(ids), lost=lost, misrouted=client.misrouted,
                 duplicated=finished.duplicated + rest.duplicated, crashes=int(code != 0),
                 faults=1)
    recorder.note(f"graceful stop: SIGTERM mid-job, worker exited {code} "
                  f"{exited - signalled:.1f} s after the signal (visibility timeout "
                  f"{VISIBILITY_TIMEOUT} s)")
    assert code == 0
    assert sorted(received["jobs"]) == sorted(ids)  # one batch held all four
    assert started == {first[0]["job"]} and deleted == [first[0]["job"]]
    assert not [e for e in faults.events("received", pid=worker.pid) if e["t"] > signalled]
    assert waiting == 3
    assert finished.results[first[0]["job"]].ok and lost == 0
    assert all(r.ok and r.attempt == 2 for r in rest.results.values())
    assert queue_depth(stack, stack.outputs["RequestQueueUrl"]) == 0


def test_sigterm_while_idle_ends_the_poll_and_hands_back_what_it_took(
        stack, recorder, faults, tmp_path):
    """The poll is not cut short (a poll abandoned mid-way may still take messages on the
    server, hiding them until their visibility timeout): it ends by itself, and a message
    it takes after the signal is made visible again at once."""
    poll = 3
    worker = spawn_worker(stack, tmp_path / "worker.log", {**faults.env(),
                                                           "WQW_WAIT_SECONDS": str(poll)})
    sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
    queue = stack.outputs["RequestQueueUrl"]
    try:
        assert wait_until(worker.ready_file.exists, timeout=60)  # it polls
        time.sleep(0.5)  # in its long poll by now
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        sqs.send_message(QueueUrl=queue, MessageBody="canary")
        code = worker.wait(timeout=VISIBILITY_TIMEOUT)
        exited = time.monotonic()
        visible = visible_messages(sqs, queue)
        assert drain(stack) == 1
    finally:
        stop_process(worker)
    recorder.add("graceful stop", crashes=int(code != 0), faults=1)
    recorder.note(f"graceful stop while idle: exit {code} {exited - signalled:.1f} s after "
                  f"SIGTERM (long poll {poll} s); a message sent after the signal was visible "
                  f"again at once: {visible == 1}")
    assert code == 0 and faults.events("signal")
    assert faults.events("exit", code=0)
    assert visible == 1  # handed back or never taken: not hidden until a timeout
    assert queue_depth(stack, queue) == 0


def visible_messages(sqs, queue):
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_sigterm_during_a_job_longer_than_the_visibility_timeout(
        stack, recorder, faults, tmp_path):
    """The heartbeat keeps the message invisible until the job is done, signal or not."""
    faults.set([{"id": "long", "point": "before_compute", "action": "delay",
                 "seconds": 2 * VISIBILITY_TIMEOUT}])
    client = TrackedClient(stack.client())
    first = spawn_worker(stack, tmp_path / "first.log", faults.env())
    second = None
    try:
        [job_id] = client.submit(stats_jobs(1))
        assert wait_until(lambda: faults.starts(job_id), timeout=30)
        first.send_signal(signal.SIGTERM)
        second = spawn_worker(stack, tmp_path / "second.log", faults.env())
        outcome = client.collect([job_id], timeout=6 * VISIBILITY_TIMEOUT)
        first.wait(timeout=2 * VISIBILITY_TIMEOUT)
    finally:
        client.close()
        code, *others = stop_process(first, second)
    second_code = others[0] if others else 0
    starts = faults.starts(job_id)
    recorder.add("graceful stop", jobs=1, lost=len(outcome.lost), misrouted=client.misrouted,
                 duplicated=outcome.duplicated,
                 crashes=int(code != 0) + int(second_code != 0), faults=1)
    assert code == 0 and second_code == 0
    assert outcome.results[job_id].ok and outcome.results[job_id].attempt == 1
    assert [s["pid"] for s in starts] == [first.pid]  # never redelivered
    assert client.deliveries[job_id] == 1
