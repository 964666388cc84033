"""The worker's side of SQS: every request-queue, reply-queue and dead-letter call.

The worker loop talks to a broker, never to boto3: `SqsBroker` is the real one; tests
drive the loop with an in-memory broker of the same shape (tests/fakes.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from .aws import error_text, queue_missing, sqs_batches
from .contract import MessageAttribute, string_attributes
from .wire import printable

log = logging.getLogger("worker")


@dataclass(frozen=True)
class Message:
    """A received job message (with the attributes the worker asks for)."""

    message_id: str
    body: str
    receipt: str
    receive_count: int
    attributes: Mapping[str, str] = field(default_factory=dict)
    # When SQS accepted the message (its own clock), seconds since the epoch.
    sent_at: float | None = None


class QueueGone(Exception):
    """The reply queue no longer exists (its client has finished or died)."""


class Broker(Protocol):
    def check(self) -> None: ...
    def receive(self, max_messages: int, wait_seconds: int) -> list[Message]: ...
    def delete(self, messages: list[Message]) -> None: ...
    def change_visibility(self, messages: list[Message], seconds: int) -> None: ...
    def send_results(self, queue_url: str, bodies: list[str]) -> set[int]: ...
    def dead_letter(self, body: str, reason: str) -> None: ...
    def reply_allowed(self, queue_url: str | None) -> bool: ...


class SqsBroker:
    def __init__(self, sqs: Any, request_queue_url: str, dead_letter_queue_url: str,
                 reply_queue_prefix: str) -> None:
        self.sqs = sqs
        self.request_queue_url = request_queue_url
        self.dead_letter_queue_url = dead_letter_queue_url
        self.reply_queue_prefix = reply_queue_prefix

    def check(self) -> None:
        """Raise if the request queue does not answer."""
        self.sqs.get_queue_attributes(QueueUrl=self.request_queue_url,
                                      AttributeNames=["QueueArn"])

    def receive(self, max_messages: int, wait_seconds: int) -> list[Message]:
        response = self.sqs.receive_message(
            QueueUrl=self.request_queue_url, MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            MessageAttributeNames=[MessageAttribute.REDRIVEN])
        return [Message(m["MessageId"], m["Body"], m["ReceiptHandle"],
                        int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
                        string_attributes(m), _sent_at(m))
                for m in response.get("Messages", [])]

    def delete(self, messages: list[Message]) -> None:
        """Acknowledge; a failed delete only means the job may run again (idempotent)."""
        for chunk in _chunks(messages):
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)]
            try:
                response = self.sqs.delete_message_batch(QueueUrl=self.request_queue_url,
                                                         Entries=entries)
                for failure in response.get("Failed", []):
                    log.warning("delete failed for a message: %s", failure.get("Message"))
            except Exception as exc:
                log.warning("delete failed (%s); the job(s) may run again", error_text(exc))

    def change_visibility(self, messages: list[Message], seconds: int) -> None:
        for chunk in _chunks(messages):
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt, "VisibilityTimeout": seconds}
                       for i, m in enumerate(chunk)]
            try:
                self.sqs.change_message_visibility_batch(QueueUrl=self.request_queue_url,
                                                         Entries=entries)
            except Exception as exc:
                log.warning("could not change visibility (%s)", error_text(exc))

    def send_results(self, queue_url: str, bodies: list[str]) -> set[int]:
        """Send result bodies (in batches within SQS's limits); the indexes SQS refused.

        Raises QueueGone if the queue does not exist, or the SDK's error (after its
        retries) if it cannot be reached.
        """
        failed: set[int] = set()
        for indexes in sqs_batches([len(body.encode()) for body in bodies]):
            entries = [{"Id": str(i), "MessageBody": bodies[i]} for i in indexes]
            try:
                response = self.sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except ClientError as exc:
                if queue_missing(exc):
                    raise QueueGone(queue_url) from None
                raise
            failed |= {int(f["Id"]) for f in response.get("Failed", [])}
        return failed

    def dead_letter(self, body: str, reason: str) -> None:
        """Move a message's body to the dead-letter queue, the reason as its attribute."""
        self.sqs.send_message(
            QueueUrl=self.dead_letter_queue_url, MessageBody=body,
            MessageAttributes={MessageAttribute.REASON: {"DataType": "String",
                                                  "StringValue": printable(reason)[:1000]}})

    def reply_allowed(self, queue_url: str | None) -> bool:
        """Only this stack's reply queues, in the request queue's account."""
        if not queue_url:
            return False
        own = urlparse(self.request_queue_url).path.strip("/").split("/")
        try:
            theirs = urlparse(queue_url).path.strip("/").split("/")
        except ValueError:  # e.g. "https://[" : not a URL at all
            return False
        return (len(theirs) == 2 and theirs[0] == own[0]
                and theirs[1].startswith(self.reply_queue_prefix))


def _sent_at(message: Mapping[str, Any]) -> float | None:
    try:
        return int(message["Attributes"]["SentTimestamp"]) / 1000
    except (KeyError, TypeError, ValueError):
        return None


def _chunks(messages: list[Message]) -> list[list[Message]]:
    return [[messages[i] for i in indexes]
            for indexes in sqs_batches([len(m.receipt) for m in messages])]
