"""The same job delivered twice, or raced by two workers: same outputs, reported once."""

import time

import pytest

from worker_src import wire

from .harness import (
    VISIBILITY_TIMEOUT,
    Faults,
    TrackedClient,
    equalize_input,
    is_equalized,
    queue_depth,
    spawn_worker,
    stop_process,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:This might be a color image")]


def replies(faults):
    return sum(len(e["jobs"]) for e in faults.events("replied"))


def pull_late_replies(client):
    """A last job: while waiting for it the client reads (and drops) any late duplicate."""
    [sentinel] = client.submit([("stats", {"numbers": [1]})])
    return client.collect([sentinel], timeout=20)


def check_twice_reported_once(stack, client, outcome, job_id, pixels):
    bodies = [wire.decode_result(b) for b in client.raw[job_id]]
    assert len(bodies) == 2 and all(b.ok for b in bodies)
    assert bodies[0].value == bodies[1].value  # same output key, same bytes
    assert outcome.yielded[job_id] == 1 and outcome.duplicated == 0
    if pixels is not None:
        key = outcome.results[job_id].value["output_key"]
        assert key.startswith(f"outputs/{job_id}/")
        assert is_equalized(stack, key, pixels)


def test_a_job_sent_twice_runs_twice_and_is_reported_once(stack, recorder, tmp_path):
    faults = Faults(tmp_path / "faults")
    client = TrackedClient(stack.client())
    sqs = client.client.sqs
    workers = []
    try:
        image_id, image_args, pixels = equalize_input(client, tmp_path, (20, 30, 3), 1)
        [stats_id] = client.submit([("stats", {"numbers": [3, 3, 10**40]})])
        client.submit([("equalize", image_args)], job_ids=[image_id])
        for job_id, kind, args in ((image_id, "equalize", image_args),
                                   (stats_id, "stats", {"numbers": [3, 3, 10**40]})):
            sqs.send_message(QueueUrl=stack.outputs["RequestQueueUrl"],
                             MessageBody=wire.encode_job(wire.Job(
                                 job_id=job_id, kind=kind, args=args,
                                 reply_to=client.client.reply_queue_url,
                                 submitted_at=time.time())))
        workers = [spawn_worker(stack, tmp_path / f"w{i}.log", faults.env()) for i in range(2)]
        outcome = client.collect([image_id, stats_id], timeout=30)
        assert wait_until(lambda: replies(faults) >= 4, timeout=20)
        late = pull_late_replies(client)
    finally:
        client.close()
        codes = stop_process(*workers)
    recorder.add("duplicate delivery", jobs=2, lost=len(outcome.lost) + len(late.lost),
                 misrouted=client.misrouted, duplicated=outcome.duplicated,
                 crashes=sum(c != 0 for c in codes), faults=2)
    check_twice_reported_once(stack, client, outcome, image_id, pixels)
    check_twice_reported_once(stack, client, outcome, stats_id, None)
    assert outcome.results[stats_id].value["sum"] == 6 + 10**40
    assert client.misrouted == 0 and codes == [0, 0]
    assert queue_depth(stack, stack.outputs["RequestQueueUrl"]) == 0


def test_two_workers_racing_on_one_job_write_the_same_output(stack, recorder, tmp_path):
    """Worker A holds the job past the visibility timeout without a heartbeat; B takes it too."""
    faults = Faults(tmp_path / "faults")
    faults.set([{"id": "slow", "point": "before_compute", "action": "delay",
                 "seconds": 1.5 * VISIBILITY_TIMEOUT, "attempt": 1}])
    client = TrackedClient(stack.client())
    slow = spawn_worker(stack, tmp_path / "slow.log", {**faults.env(),
                                                       "WQW_FAULT_NO_HEARTBEAT": "1"})
    fast = None
    try:
        job_id, args, pixels = equalize_input(client, tmp_path, (20, 30, 3), 2)
        client.submit([("equalize", args)], job_ids=[job_id])
        assert wait_until(lambda: faults.starts(job_id), timeout=30)
        fast = spawn_worker(stack, tmp_path / "fast.log", faults.env())
        outcome = client.collect([job_id], timeout=6 * VISIBILITY_TIMEOUT)
        assert wait_until(lambda: replies(faults) >= 2, timeout=20)
        late = pull_late_replies(client)
    finally:
        client.close()
        codes = stop_process(slow, fast)
    starts = faults.starts(job_id)
    recorder.add("duplicate delivery", jobs=1, lost=len(outcome.lost) + len(late.lost),
                 misrouted=client.misrouted, duplicated=outcome.duplicated,
                 crashes=sum(c != 0 for c in codes), faults=1)
    assert {s["pid"] for s in starts} == {slow.pid, fast.pid}
    check_twice_reported_once(stack, client, outcome, job_id, pixels)
    assert client.misrouted == 0 and codes == [0, 0]
    assert queue_depth(stack, stack.outputs["RequestQueueUrl"]) == 0
