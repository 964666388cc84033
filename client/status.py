"""What the stack is doing: queue depths, oldest ages, workers, recent log lines (CLI and web).

The age of the oldest waiting job comes from CloudWatch (SQS's ApproximateAgeOfOldestMessage,
one-minute data): SQS has no attribute for it, and reading request-queue messages to find it
would count as receives toward the dead-letter limit. The oldest dead letter is read from the
dead-letter queue itself (its messages' SentTimestamp): that queue has no such limit.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from . import dlq, lifecycle
from .api import Client
from .errors import AwsUnavailable, aws_call

DEPTHS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
# CloudWatch's SQS metrics have one point a minute: asking more often gets the same answer.
# A watch reads the dead letters' ages again this often too (or when their number changes).
CLOUDWATCH_REFRESH_SECONDS = 60.0
# How far back to look for the newest point (SQS metrics arrive a few minutes late).
CLOUDWATCH_LOOKBACK_SECONDS = 900
# A dead letter read for its age is hidden this long at most (released at once).
PEEK_VISIBILITY_SECONDS = 10


class StatusReader:
    """Reads the `status --json` document; a watch reuses one reader for its caches."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._oldest_waiting: tuple[float, dict[str, Any]] | None = None  # (read at, value)
        self._oldest_dead: tuple[int, float, float | None] | None = None  # depth, read at, sent

    def read(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        client = self.client
        requests = _depths(client, client.stack.request_queue_url)
        dead = _depths(client, client.stack.dead_letter_queue_url)
        waiting = self._waiting_age(requests[0], now)
        dead_letters = sum(dead)  # those being read (e.g. by `dlq list`) included
        dead_sent_at = self._oldest_dead_letter(dead_letters, now)
        return {
            "stack": client.stack.name,
            "waiting": requests[0],
            "in_flight": requests[1],
            "running": lifecycle.running_now(client, now),
            "oldest_waiting_age_s": waiting["age_s"],
            "oldest_waiting_as_of": waiting["as_of"],
            "oldest_waiting_note": waiting["note"],
            "dead_letters": dead_letters,
            "oldest_dead_letter_age_s": (None if dead_sent_at is None
                                         else round(max(0.0, now - dead_sent_at), 3)),
            "workers": _workers(client),
            "dashboard_url": client.stack.dashboard_url,
        }

    def _waiting_age(self, waiting: int, now: float) -> dict[str, Any]:
        if waiting == 0:
            return {"age_s": None, "as_of": None, "note": None}
        cached = self._oldest_waiting
        if cached is None or now - cached[0] >= CLOUDWATCH_REFRESH_SECONDS:
            cached = self._oldest_waiting = (now, oldest_waiting(self.client, now))
        return cached[1]

    def _oldest_dead_letter(self, depth: int, now: float) -> float | None:
        """The oldest dead letter's SentTimestamp; read again when the depth changes."""
        if depth == 0:
            self._oldest_dead = None
            return None
        cached = self._oldest_dead
        if (cached is None or cached[0] != depth
                or now - cached[1] >= CLOUDWATCH_REFRESH_SECONDS):
            letters = dlq.list_dead_letters(self.client,
                                            visibility=PEEK_VISIBILITY_SECONDS).dead_letters
            cached = self._oldest_dead = (depth, now,
                                          min((d.sent_at for d in letters), default=None))
        return cached[2]


def stack_status(client: Client) -> dict[str, Any]:
    """The `status --json` document: requests waiting and in flight, ages, dead letters, workers."""
    return StatusReader(client).read()


def oldest_waiting(client: Client, now: float) -> dict[str, Any]:
    """CloudWatch's newest ApproximateAgeOfOldestMessage of the request queue (Maximum)."""
    queue_name = client.stack.request_queue_url.rstrip("/").rsplit("/", 1)[-1]
    end = datetime.fromtimestamp(now, UTC)
    try:
        response = aws_call(client.aws_client("cloudwatch").get_metric_statistics,
                            Namespace="AWS/SQS", MetricName="ApproximateAgeOfOldestMessage",
                            Dimensions=[{"Name": "QueueName", "Value": queue_name}],
                            StartTime=end - timedelta(seconds=CLOUDWATCH_LOOKBACK_SECONDS),
                            EndTime=end, Period=60, Statistics=["Maximum"])
    except AwsUnavailable as exc:
        return {"age_s": None, "as_of": None, "note": f"CloudWatch: {exc}"}
    points = sorted(response.get("Datapoints", []), key=lambda point: point["Timestamp"])
    if not points:
        return {"age_s": None, "as_of": None,
                "note": "no CloudWatch data for the request queue in the last 15 minutes "
                        "(the local stack's emulator publishes no SQS metrics)"}
    newest = points[-1]
    return {"age_s": float(newest["Maximum"]),
            "as_of": newest["Timestamp"].astimezone(UTC).isoformat(), "note": None}


def _depths(client: Client, queue_url: str) -> tuple[int, int]:
    attributes = aws_call(client.sqs.get_queue_attributes, QueueUrl=queue_url,
                          AttributeNames=DEPTHS)["Attributes"]
    return int(attributes[DEPTHS[0]]), int(attributes[DEPTHS[1]])


def _workers(client: Client) -> list[dict[str, str]]:
    workers: list[dict[str, str]] = []
    if client.stack.worker_group:
        groups = aws_call(client.aws_client("autoscaling").describe_auto_scaling_groups,
                          AutoScalingGroupNames=[client.stack.worker_group])
        for group in groups["AutoScalingGroups"]:
            workers += [{"id": i["InstanceId"], "state": i["LifecycleState"],
                         "health": i["HealthStatus"]} for i in group["Instances"]]
    return workers


def recent_log_lines(client: Client, seconds: float, limit: int) -> list[dict[str, str]]:
    """The newest `limit` lines of the stack's log group from the last `seconds`."""
    logs = client.aws_client("logs")
    start = int((time.time() - seconds) * 1000)
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"logGroupName": client.stack.log_group, "startTime": start}
    for _page in range(100):  # bounded: at most 100 pages of up to 10,000 events
        response = aws_call(logs.filter_log_events, **kwargs)
        events += response.get("events", [])
        events = events[-limit:]
        if not response.get("nextToken"):
            break
        kwargs["nextToken"] = response["nextToken"]
    return [{"time": time.strftime("%Y-%m-%d %H:%M:%S",
                                   time.localtime(event["timestamp"] / 1000)),
             "stream": event.get("logStreamName", ""),
             "message": event["message"].rstrip("\n")} for event in events]
