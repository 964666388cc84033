"""Jobs longer than the visibility timeout: kept by the heartbeat, redelivered if the worker
dies."""

import time

import pytest

from .harness import (
    VISIBILITY_TIMEOUT,
    Faults,
    TrackedClient,
    queue_depth,
    spawn_worker,
    stop_process,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_a_long_job_is_not_redelivered_while_its_worker_lives(stack, recorder, tmp_path):
    faults = Faults(tmp_path / "faults")
    faults.set([{"id": "long", "point": "before_compute", "action": "delay",
                 "seconds": 2 * VISIBILITY_TIMEOUT}])
    client = TrackedClient(stack.client())
    workers = [spawn_worker(stack, tmp_path / f"w{i}.log", faults.env()) for i in range(2)]
    try:
        [job_id] = client.submit([("stats", {"numbers": [5, 1, 4]})])
        outcome = client.collect([job_id], timeout=6 * VISIBILITY_TIMEOUT)
    finally:
        client.close()
        codes = stop_process(*workers)
    starts = faults.starts(job_id)
    beats = [e for e in faults.events("heartbeat") if job_id in e["jobs"]]
    recorder.add("long jobs", jobs=1, lost=len(outcome.lost), misrouted=client.misrouted,
                 duplicated=outcome.duplicated, crashes=sum(c != 0 for c in codes))
    assert outcome.results[job_id].ok and outcome.results[job_id].value["median"] == 4
    assert len(starts) == 1 and outcome.results[job_id].attempt == 1
    assert client.deliveries[job_id] == 1
    assert len(beats) >= 2  # the run spans several visibility timeouts
    assert codes == [0, 0]


def test_a_long_job_whose_worker_dies_is_redelivered_within_the_timeout(
        stack, recorder, tmp_path):
    faults = Faults(tmp_path / "faults")
    long_run = 3 * VISIBILITY_TIMEOUT
    faults.set([{"id": "long", "point": "before_compute", "action": "delay",
                 "seconds": long_run, "attempt": 1}])
    client = TrackedClient(stack.client())
    doomed = spawn_worker(stack, tmp_path / "doomed.log", faults.env())
    survivor = None
    try:
        [job_id] = client.submit([("stats", {"numbers": [2, 9]})])
        assert wait_until(lambda: faults.starts(job_id), timeout=30)
        survivor = spawn_worker(stack, tmp_path / "survivor.log", faults.env())
        assert wait_until(lambda: faults.events("started", pid=survivor.pid), timeout=30)
        doomed.kill()
        killed = time.time()
        outcome = client.collect([job_id], timeout=4 * VISIBILITY_TIMEOUT)
    finally:
        client.close()
        code = stop_process(doomed, survivor)[-1]
    first, *again = faults.starts(job_id)
    recorder.add("long jobs", jobs=1, lost=len(outcome.lost), misrouted=client.misrouted,
                 duplicated=outcome.duplicated, crashes=int(code != 0), faults=1)
    assert outcome.results[job_id].ok and outcome.results[job_id].attempt == 2
    [second] = again
    assert second["pid"] == survivor.pid
    # Redelivered within one visibility timeout of the death, long before the job would
    # have ended on the dead worker.
    assert second["t"] < first["t"] + long_run
    recorder.note(f"long jobs: a {long_run} s job whose worker was SIGKILLed ran again on "
                  f"another worker {second['t'] - killed:.1f} s after the kill (visibility "
                  f"timeout {VISIBILITY_TIMEOUT} s)")
    assert queue_depth(stack, stack.outputs["RequestQueueUrl"]) == 0
