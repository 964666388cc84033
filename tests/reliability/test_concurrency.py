"""8 client processes x 25 mixed jobs at once against 2 workers: each gets exactly its own."""

import json
import os
import subprocess
import sys

import pytest

from client.local import LOCAL_CREDENTIALS

from .harness import (
    REAL_WORKER,
    ROOT,
    TEST_WORKER_ENV,
    queue_depth,
    reply_queues,
    stop_workers,
)

pytestmark = pytest.mark.slow
CLIENTS = 8
JOBS_PER_CLIENT = 25


def test_concurrent_clients_each_get_exactly_their_own_correct_results(
        stack, recorder, tmp_path):
    exits_before = len(stack.worker_exits)
    stack.start_workers(2, command=REAL_WORKER, env=TEST_WORKER_ENV)
    env = {**os.environ, **LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": stack.endpoint_url,
           "PYTHONPATH": str(ROOT)}
    try:
        clients = [subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.load_client", stack.stack_name, str(seed),
             str(JOBS_PER_CLIENT), str(tmp_path)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True) for seed in range(CLIENTS)]
        reports = []
        for process in clients:
            out, err = process.communicate(timeout=180)
            assert process.returncode == 0, err[-3000:]
            reports.append(json.loads(out))
    finally:
        codes = stop_workers(stack)
    crashes = sum(c != 0 for c in codes) + len(stack.worker_exits) - exits_before
    recorder.add("concurrency", jobs=sum(r["jobs"] for r in reports),
                 lost=sum(len(r["lost"]) for r in reports),
                 misrouted=sum(r["misrouted"] for r in reports),
                 duplicated=sum(r["duplicated"] for r in reports), crashes=crashes)
    assert sum(r["jobs"] for r in reports) == CLIENTS * JOBS_PER_CLIENT
    assert all(r["lost"] == [] and r["wrong"] == [] for r in reports)
    assert all(r["misrouted"] == 0 and r["duplicated"] == 0 for r in reports)
    assert len({r["reply_queue"] for r in reports}) == CLIENTS  # one reply queue per run
    assert reply_queues(stack) == []
    assert queue_depth(stack, stack.outputs["RequestQueueUrl"]) == 0
    assert crashes == 0
