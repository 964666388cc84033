"""Reply queues: each client's own, named and tagged as its stack's, and the cleanup of dead ones.

A reply queue is `<stack>_reply_<random>` (contract.reply_queue_prefix), tagged at
creation with its stack (STACK_TAG) and the time it was last polled (POLLED_TAG), which
a live client refreshes every POLLED_TAG_REFRESH_SECONDS. Cleanup deletes a queue only
when both tags say it is this stack's and nobody polled it for a while: a stranger's
queue that shares the prefix, or a live client's, is never deleted.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from botocore.exceptions import ClientError

from .errors import aws_call
from .stack import StackInfo

STACK_TAG = "wqw:stack"
POLLED_TAG = "wqw:polled-at"
# A live client refreshes its queue's last-poll tag this often (one TagQueue request).
POLLED_TAG_REFRESH_SECONDS = 300
# A reply queue unpolled for this long belongs to a run that died; `cleanup` may be
# told a shorter age, never one a live client could have reached between two refreshes.
STALE_SECONDS = 24 * 3600
MIN_STALE_SECONDS = 3 * POLLED_TAG_REFRESH_SECONDS
# Replies wait this long in a queue nobody reads (SQS's maximum is 14 days).
RETENTION_SECONDS = 4 * 24 * 3600


def create(sqs: Any, stack: StackInfo) -> str:
    """A new reply queue for this stack, tagged as its own and as polled now; its URL."""
    name = f"{stack.reply_queue_prefix}{uuid.uuid4().hex[:16]}"
    response = aws_call(sqs.create_queue, QueueName=name, Attributes={
        "MessageRetentionPeriod": str(RETENTION_SECONDS),
        "SqsManagedSseEnabled": "true",
    }, tags={STACK_TAG: stack.name, POLLED_TAG: str(int(time.time()))})
    return str(response["QueueUrl"])


def mark_polled(sqs: Any, queue_url: str, when: float) -> None:
    aws_call(sqs.tag_queue, QueueUrl=queue_url, Tags={POLLED_TAG: str(int(when))})


def remove_stale(sqs: Any, stack: StackInfo, older_than_seconds: float = STALE_SECONDS,
                 keep: str | None = None) -> list[str]:
    """Delete the stack's reply queues (but `keep`) unpolled for this long; their URLs.

    The age is never taken below MIN_STALE_SECONDS, whatever is asked.
    """
    older_than = max(older_than_seconds, MIN_STALE_SECONDS)
    response = aws_call(sqs.list_queues, QueueNamePrefix=stack.reply_queue_prefix,
                        MaxResults=1000)
    removed = []
    for url in response.get("QueueUrls", []):
        if url == keep:
            continue
        try:
            tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
            if (tags.get(STACK_TAG) == stack.name
                    and time.time() - _seconds(tags.get(POLLED_TAG)) >= older_than):
                sqs.delete_queue(QueueUrl=url)
                removed.append(url)
        except ClientError:
            continue  # deleted meanwhile by another run
    return removed


def _seconds(text: str | None) -> float:
    """A last-poll tag's time; +inf (never stale) when missing or not a number."""
    try:
        return float(text) if text is not None else float("inf")
    except ValueError:
        return float("inf")
