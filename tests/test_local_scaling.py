"""The local stack follows its Auto Scaling group: a burst raises capacity, idleness lowers it."""

from __future__ import annotations

import time

import pytest

from client.local import LocalStack
from worker_src.contract import Env

STACK = "wqw-elastic"


@pytest.mark.slow
def test_a_burst_raises_capacity_and_the_group_falls_back_to_its_minimum(tmp_path) -> None:
    context = {"min_workers": "0", "max_workers": "3"}
    # 1 s long polls: a worker told to go (SIGTERM) leaves at the end of its poll, 20 s by default.
    with LocalStack(stack_name=STACK, context=context, follow_group=True, start_delay=1.0,
                    idle_seconds=3.0, worker_log=tmp_path / "workers.log",
                    worker_env={Env.WAIT_SECONDS: "1"}) as stack:
        follower = stack.follower
        autoscaling = stack.session().client("autoscaling", endpoint_url=stack.endpoint_url)
        sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
        assert follower is not None
        time.sleep(1.5)
        assert follower.running() == 0  # min_workers=0: nothing runs while nothing waits

        jobs = [("stats", {"numbers": [n, n + 1, n + 2]}) for n in range(200)]
        with stack.client() as client:
            job_ids = client.submit(jobs)
            # the client raised the group at once: one worker from 0, one more per 75 waiting
            (group,) = autoscaling.describe_auto_scaling_groups(
                AutoScalingGroupNames=[stack.stack.worker_group])["AutoScalingGroups"]
            assert group["DesiredCapacity"] == 3
            results = {r.job_id: r for r in client.wait(job_ids, timeout=120)}
        assert set(results) == set(job_ids)
        assert all(r.ok for r in results.values())
        assert max(s.desired for s in follower.samples) == 3
        assert max(s.running for s in follower.samples) >= 2

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (follower.running() or
                                               follower.samples[-1].desired):
            time.sleep(0.5)
        assert follower.samples[-1].desired == 0 and follower.running() == 0
        # nothing lost: no dead letter, no job left in the queue
        for url in (stack.stack.dead_letter_queue_url, stack.stack.request_queue_url):
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
            counts = attributes["Attributes"]
            assert counts["ApproximateNumberOfMessages"] == "0"
            assert counts["ApproximateNumberOfMessagesNotVisible"] == "0"
