"""Raise the worker group's desired capacity where a backlog is first seen (client and worker).

The alarm policy (infra/scaling.py) waits for CloudWatch's one-minute datapoints; a client
that has just sent a run, or a worker that keeps receiving full batches, knows sooner. Both
call raise_capacity(): it only ever raises the group's desired capacity, never above its
MaxSize, to the workers the waiting jobs justify (the policy's own rule). Lowering is the
policy's alone, and busy workers protect themselves from it (protection.py). Without the
permission (AccessDenied) or on any AWS error it logs one line and returns: a raise is a
head start, never a reason to fail a run.

boto3 only, so the client can import it without the worker's libraries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .aws import error_text
from .contract import JOBS_PER_WORKER

log = logging.getLogger("capacity")

# A worker raises capacity after this many full batches in a row (the queue holds more
# than it takes), and at most once per RAISE_INTERVAL_SECONDS.
FULL_BATCHES_IN_A_ROW = 3
RAISE_INTERVAL_SECONDS = 30.0


def workers_for_backlog(waiting: int, min_size: int,
                        jobs_per_worker: int = JOBS_PER_WORKER) -> int:
    """Workers that `waiting` jobs justify: min_size plus one per `jobs_per_worker`, and from
    a minimum of 0 one more, so a single job gets a worker (the alarm policy's steps)."""
    if waiting <= 0:
        return min_size
    return min_size + waiting // jobs_per_worker + (1 if min_size == 0 else 0)


def waiting_jobs(sqs: Any, queue_url: str) -> int:
    """The queue's visible (waiting) messages, as SQS approximates them."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def raise_capacity(autoscaling: Any, sqs: Any, group: str, queue_url: str,
                   at_least_waiting: int = 0) -> int | None:
    """Raise `group`'s desired capacity to what the queue's waiting jobs justify.

    `at_least_waiting`: jobs the caller knows are waiting (a client's just-sent run, which
    SQS's approximate count may not show yet). Returns the new desired capacity, or None when
    it was left alone (enough already, at MaxSize, or not allowed: one warning line).
    """
    try:
        waiting = max(at_least_waiting, waiting_jobs(sqs, queue_url))
        groups = autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=[group])["AutoScalingGroups"]
        if not groups:
            log.warning("capacity not raised: no Auto Scaling group named %r", group)
            return None
        current = groups[0]
        wanted = min(current["MaxSize"], workers_for_backlog(waiting, current["MinSize"]))
        if wanted <= current["DesiredCapacity"]:
            return None
        # HonorCooldown=False: the group's cooldown is the alarm policy's business.
        autoscaling.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=wanted,
                                         HonorCooldown=False)
    except (ClientError, BotoCoreError) as exc:
        log.warning("capacity of %s not raised (%s); the backlog alarm will raise it "
                    "within minutes", group, error_text(exc))
        return None
    log.info("raised the desired capacity of %s from %d to %d for %d waiting job(s)",
             group, current["DesiredCapacity"], wanted, waiting)
    return wanted


@dataclass(eq=False)
class BacklogSignal:
    """A worker's view of the backlog: after FULL_BATCHES_IN_A_ROW full receives, raise the
    group's capacity (at most once per RAISE_INTERVAL_SECONDS). Without a group (the worker
    outside an Auto Scaling group) it does nothing."""

    autoscaling: Any
    sqs: Any
    group: str | None
    queue_url: str
    clock: Callable[[], float] = time.monotonic
    full_in_a_row: int = field(default=0, init=False)
    last_raise: float = field(default=float("-inf"), init=False)
    raises: int = field(default=0, init=False)  # calls made, for the local stack's and tests' eyes

    def observe(self, received: int, asked: int) -> None:
        """One receive's outcome: `received` messages of the `asked` most."""
        if not self.group:
            return
        self.full_in_a_row = self.full_in_a_row + 1 if received >= asked > 0 else 0
        if self.full_in_a_row < FULL_BATCHES_IN_A_ROW:
            return
        if self.clock() - self.last_raise < RAISE_INTERVAL_SECONDS:
            return
        self.last_raise = self.clock()
        self.raises += 1
        try:
            raise_capacity(self.autoscaling, self.sqs, self.group, self.queue_url)
        except Exception as exc:  # a raise is a courtesy: the worker loop goes on
            log.warning("capacity of %s not raised: %s", self.group, exc)
