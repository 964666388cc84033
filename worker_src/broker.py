"""The worker's side of SQS: every request-queue, reply-queue and dead-letter call.

The worker loop talks to a `Broker`, never to boto3: `SqsBroker` is the real one;
`MemoryBroker` stands in for it in memory (tests, and a new kind's test through the
real loop: docs/adding-a-job.md).
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from . import wire_lifecycle
from .aws import error_text, queue_missing, sqs_batches
from .contract import MessageAttribute, string_attributes
from .wire import Result, decode_result, printable

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
    """The worker's queue calls: the request queue, reply queues and the dead-letter queue."""

    def check(self) -> None:
        """Return if the request queue answers; raise the SDK's error if it does not."""

    def receive(self, max_messages: int, wait_seconds: int) -> list[Message]:
        """Up to `max_messages` job messages, waiting up to `wait_seconds` for the first;
        [] when none came. Received messages are hidden for the visibility timeout.
        Raises the SDK's error if the queue cannot be reached."""

    def delete(self, messages: list[Message]) -> None:
        """Acknowledge `messages` (they will not come back). Never raises: a failed delete
        is logged, and only means a job may run again."""

    def change_visibility(self, messages: list[Message], seconds: int) -> None:
        """Hide `messages` for `seconds` more from now (0: back on the queue at once).
        Never raises: a failure is logged."""

    def send_results(self, queue_url: str, bodies: list[str]) -> set[int]:
        """Send `bodies` to the reply queue `queue_url`; return the indexes in `bodies`
        that were refused (empty when all went). Raise QueueGone if the queue does not
        exist, or the SDK's error if it cannot be reached."""

    def dead_letter(self, body: str, reason: str) -> None:
        """Put `body` on the dead-letter queue with `reason` (made printable, at most 1,000
        characters) as its attribute; raise the SDK's error if that fails."""

    def reply_allowed(self, queue_url: str | None) -> bool:
        """Whether results may go to `queue_url`: one of this stack's reply queues, in
        the request queue's account (False for None or anything that is not a URL)."""


class SqsBroker:
    """The Broker on SQS (a boto3 client), batching within SQS's limits."""

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


# The characters SQS accepts in a message body or attribute (anything else: InvalidMessageContents).
NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def check_sqs_text(text: str) -> None:
    """Raise the ClientError SQS answers (InvalidMessageContents) if it would refuse `text`."""
    if NOT_SQS_TEXT.search(text):
        raise ClientError({"Error": {"Code": "InvalidMessageContents",
                                     "Message": "InvalidMessageContents"}}, "SendMessage")


@dataclass
class MemoryBroker:
    """The Broker in memory: a request queue, reply queues by URL and a dead-letter list.

    Stands in for SqsBroker in tests: it refuses the text SQS refuses, raises QueueGone for
    an unknown reply queue and allows only URLs under `reply_prefix`. It records for tests
    what was deleted (`deleted`, receipts), hidden (`visibility`, receipt and seconds),
    sent (`replies`, bodies by queue URL) and dead-lettered (`dead`, body and reason);
    `refuse_replies` makes every send_results fail as an unreachable queue would.
    """

    reply_prefix: str = "https://sqs.local/123/stack-reply-"
    waiting: list[Message] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    visibility: list[tuple[str, int]] = field(default_factory=list)
    replies: dict[str, list[str]] = field(default_factory=dict)
    dead: list[tuple[str, str]] = field(default_factory=list)
    refuse_replies: bool = False
    _ids: Any = field(default_factory=itertools.count)

    def reply_queue(self) -> str:
        """Create a reply queue; its URL."""
        url = f"{self.reply_prefix}{next(self._ids)}"
        self.replies[url] = []
        return url

    def put(self, body: str, receive_count: int = 1) -> Message:
        """Put a job message on the request queue (as received `receive_count` times)."""
        number = next(self._ids)
        message = Message(f"m{number}", body, f"r{number}", receive_count)
        self.waiting.append(message)
        return message

    def check(self) -> None:
        return None

    def receive(self, max_messages: int, wait_seconds: int) -> list[Message]:
        taken, self.waiting = self.waiting[:max_messages], self.waiting[max_messages:]
        return taken

    def delete(self, messages: list[Message]) -> None:
        self.deleted += [m.receipt for m in messages]

    def change_visibility(self, messages: list[Message], seconds: int) -> None:
        self.visibility += [(m.receipt, seconds) for m in messages]

    def send_results(self, queue_url: str, bodies: list[str]) -> set[int]:
        if self.refuse_replies:
            raise ConnectionError("injected: reply queue unreachable")
        if queue_url not in self.replies:
            raise QueueGone(queue_url)
        for body in bodies:
            check_sqs_text(body)
        self.replies[queue_url] += bodies
        return set()

    def dead_letter(self, body: str, reason: str) -> None:
        check_sqs_text(body)
        self.dead.append((body, printable(reason)))  # as SqsBroker writes it

    def reply_allowed(self, queue_url: str | None) -> bool:
        return bool(queue_url) and queue_url.startswith(self.reply_prefix)

    def results(self, queue_url: str) -> list[Result]:
        """The results sent to a queue; a long job's running words, sent there too, left out."""
        return [decode_result(body) for body in self.replies[queue_url]
                if wire_lifecycle.message_type(body) is None]


def _sent_at(message: Mapping[str, Any]) -> float | None:
    try:
        return int(message["Attributes"]["SentTimestamp"]) / 1000
    except (KeyError, TypeError, ValueError):
        return None


def _chunks(messages: list[Message]) -> list[list[Message]]:
    return [[messages[i] for i in indexes]
            for indexes in sqs_batches([len(m.receipt) for m in messages])]
