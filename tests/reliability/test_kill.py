"""Workers SIGKILLed at every point of a job: every job still gets its one, correct result."""

import time

import numpy as np
import pytest

from worker_src import wire

from .harness import (
    FAULTY_WORKER,
    TEST_WORKER_ENV,
    Faults,
    TrackedClient,
    dead_letters,
    equalize_input,
    is_equalized,
    queue_depth,
    reply_queues,
    stop_workers,
)

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:This might be a color image")]

# Every point of an equalize job, from receiving it to deleting its message.
POINTS = ("receive", "before_read", "after_read", "before_compute", "after_compute",
          "before_write", "after_write", "before_reply", "after_reply", "before_delete",
          "after_delete", "heartbeat")
KILLS_PER_POINT = 2
MAX_JOBS = 120


def test_every_job_gets_its_result_while_workers_are_killed_at_every_point(
        stack, recorder, tmp_path):
    faults = Faults(tmp_path / "faults")
    job_ids = [wire.new_job_id() for _ in range(MAX_JOBS)]
    # SQS dead-letters a message on its 4th receive whatever the worker does, so a kill is
    # only armed while every message the worker holds has been received at most twice:
    # each job then survives two deaths of the worker holding it and runs on its 3rd receive.
    kills = [{"id": f"kill-{point}-{n}", "point": point, "action": "kill", "times": 1,
              "max_batch_receive_count": 2}
             for n in range(KILLS_PER_POINT) for point in POINTS]
    # Some jobs run long enough for the heartbeat to fire while they run.
    slow = {"id": "slow", "point": "before_compute", "action": "delay", "seconds": 1.6,
            "jobs": job_ids[::4]}
    faults.set([*kills, slow])
    exits_before = len(stack.worker_exits)
    stack.start_workers(3, command=FAULTY_WORKER, env={**faults.env(), **TEST_WORKER_ENV})
    client = TrackedClient(stack.client())
    submitted: dict[str, np.ndarray] = {}
    try:
        deadline = time.monotonic() + 75
        while (len(list(faults.state.glob("kill-*"))) < len(kills)
               and time.monotonic() < deadline and len(submitted) < MAX_JOBS):
            batch = job_ids[len(submitted):len(submitted) + 2]
            for job_id in batch:
                _, args, pixels = equalize_input(client, tmp_path, (12 + len(submitted) % 5, 16),
                                                 seed=len(submitted), job_id=job_id)
                client.submit([("equalize", args)], job_ids=[job_id])
                submitted[job_id] = pixels
            time.sleep(0.4)
        outcome = client.collect(list(submitted), timeout=60)
    finally:
        client.close()
        final_exits = stop_workers(stack)
    exits = stack.worker_exits[exits_before:]
    injected = faults.injected()
    crashes = sum(code != -9 for code in exits) + sum(code != 0 for code in final_exits)
    recorder.add("worker killed mid-job", jobs=len(submitted), lost=len(outcome.lost),
                 misrouted=client.misrouted, duplicated=outcome.duplicated, crashes=crashes,
                 faults=len(injected))
    replayed = sum(n - 1 for n in client.deliveries.values() if n > 1)
    recorder.note(f"worker killed mid-job: {len(injected)} SIGKILLs at "
                  f"{len({e['point'] for e in injected})} different points; {replayed} "
                  f"result(s) reached the client twice (a kill between reply and delete) and "
                  f"were reported once")

    assert outcome.lost == []
    assert len(injected) >= 20 and {e["point"] for e in injected} == set(POINTS)
    assert exits.count(-9) == len(injected) and crashes == 0
    assert client.misrouted == 0 and outcome.duplicated == 0
    for job_id, pixels in submitted.items():
        result = outcome.results[job_id]
        assert result.ok, result.error_message
        assert result.value["output_key"] == f"outputs/{job_id}/{job_id}-equalize.png"
        assert is_equalized(stack, result.value["output_key"], pixels)
    assert queue_depth(stack, stack.outputs["RequestQueueUrl"]) == 0
    dead = {m["Body"] for m in dead_letters(stack)}
    assert not any(job_id in body for body in dead for job_id in submitted)
    assert reply_queues(stack) == []
