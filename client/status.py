"""What the stack is doing: queue depths, workers, recent log lines (for the CLI and the web)."""

from __future__ import annotations

import time
from typing import Any

from .api import Client
from .errors import aws_call

DEPTHS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]


def stack_status(client: Client) -> dict[str, Any]:
    """The `status --json` document: requests waiting and in flight, dead letters, workers."""
    requests = aws_call(client.sqs.get_queue_attributes,
                        QueueUrl=client.stack.request_queue_url, AttributeNames=DEPTHS)
    dead = aws_call(client.sqs.get_queue_attributes,
                    QueueUrl=client.stack.dead_letter_queue_url, AttributeNames=DEPTHS)
    workers = []
    if client.stack.worker_group:
        groups = aws_call(client.aws_client("autoscaling").describe_auto_scaling_groups,
                          AutoScalingGroupNames=[client.stack.worker_group])
        for group in groups["AutoScalingGroups"]:
            workers += [{"id": i["InstanceId"], "state": i["LifecycleState"],
                         "health": i["HealthStatus"]} for i in group["Instances"]]
    return {
        "stack": client.stack.name,
        "waiting": int(requests["Attributes"]["ApproximateNumberOfMessages"]),
        "in_flight": int(requests["Attributes"]["ApproximateNumberOfMessagesNotVisible"]),
        "dead_letters": int(dead["Attributes"]["ApproximateNumberOfMessages"]),
        "workers": workers,
        "dashboard_url": client.stack.dashboard_url,
    }


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
