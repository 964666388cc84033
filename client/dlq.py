"""Dead letters: list, show, redrive and purge the stack's dead-letter queue (CLI and web alike).

    listing = list_dead_letters(client)           # nothing consumed: all visible again after
    report = redrive(client, ["<job id>"])        # back on the request queue, result rule kept
    report = redrive(client, all=True)            # StartMessageMoveTask where the endpoint has it

Reading the dead-letter queue means receiving its messages: they are hidden for a short
visibility timeout and made visible again at once. The queue has no redrive policy of its
own, so receiving its messages never moves them anywhere. Never lose a message: a redrive
sends a job to the request queue first and deletes it from the dead-letter queue after, so a
crash in between leaves a duplicate (the worker's outputs are idempotent), never a gap.
docs/dead-letters.md describes the workflow.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from worker_src import aws, contract, wire
from worker_src.contract import MessageAttribute, string_attributes

from . import numbers
from .api import Client
from .errors import AwsUnavailable, ClientFailure, aws_call

# A message being read is hidden this long at most (a reader that dies gives it back then).
VISIBILITY_SECONDS = 30
# At most this many dead letters are read in one go (100 receives of 10).
MAX_MESSAGES = 1000
# An unreadable body is shown by its first characters, escaped.
PREVIEW_CHARS = 80
# Each read is a 1 s long poll: a short poll asks only some of SQS's servers and may come back
# empty while messages wait; a long poll asks all and returns as soon as one has any.
WAIT_SECONDS = 1


class NotFound(ClientFailure):
    """No dead letter has that job id or message id."""


@dataclass(frozen=True)
class DeadLetter:
    """One message of the dead-letter queue, read without consuming it."""

    message_id: str
    receipt: str
    body: str
    sent_at: float  # when it entered SQS (the client's send, or the worker's dead-lettering)
    job_id: str | None
    kind: str | None
    submitted_at: float | None
    readable: bool  # the body is a valid job message
    problem: str | None  # why it is not
    size: int  # the body's length in bytes (UTF-8)
    receives: int | None  # receives on the request queue, where known
    reason: str
    attributes: dict[str, str] = field(default_factory=dict)
    system_attributes: dict[str, str] = field(default_factory=dict)

    def matches(self, ident: str) -> bool:
        return ident in (self.job_id, self.message_id)

    @property
    def preview(self) -> str | None:
        """An unreadable body's first characters, control characters and non-ASCII escaped."""
        if self.readable:
            return None
        head = ascii(self.body[:PREVIEW_CHARS])[1:-1]
        return head + ("..." if len(self.body) > PREVIEW_CHARS else "")

    def summary(self) -> dict[str, Any]:
        """The `dlq list --json` entry."""
        return {"message_id": self.message_id, "job_id": self.job_id, "kind": self.kind,
                "submitted_at": self.submitted_at, "sent_at": self.sent_at,
                "receives": self.receives, "reason": self.reason, "readable": self.readable,
                "size": self.size, "preview": self.preview}

    def document(self) -> dict[str, Any]:
        """The `dlq show --json` document: the whole message and its attributes.

        A readable body as its JSON; an unreadable one as its text (it may not even parse).
        """
        body: Any = self.body
        if self.readable:
            try:  # integers of any size the wire allows, without the interpreter's limit
                body = numbers.load_json(self.body)
            except ValueError:
                pass
        return {**self.summary(), "problem": self.problem, "body": body,
                "message_attributes": self.attributes, "attributes": self.system_attributes}


@dataclass
class Listing:
    dead_letters: list[DeadLetter]
    truncated: bool  # more than MAX_MESSAGES: only the first ones were read

    def document(self) -> dict[str, Any]:
        """The `dlq list --json` document (the web API's too)."""
        return {"dead_letters": [letter.summary() for letter in self.dead_letters],
                "count": len(self.dead_letters), "truncated": self.truncated}


@dataclass
class RedriveReport:
    method: str  # "move-task" or "send-delete"
    redriven: list[str] = field(default_factory=list)  # job ids (message ids if unreadable)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (id, why)
    missing: list[str] = field(default_factory=list)  # asked for, not in the queue
    left_behind: list[str] = field(default_factory=list)  # sent, but still a dead letter too
    task_handle: str | None = None
    fallback: str | None = None  # why the move task was not used

    def document(self) -> dict[str, Any]:
        return {"method": self.method, "redriven": self.redriven,
                "refused": [{"id": i, "why": why} for i, why in self.refused],
                "missing": self.missing, "left_behind": self.left_behind,
                "task_handle": self.task_handle, "fallback": self.fallback}


# ---- reading ------------------------------------------------------------------------

def max_receive_count(client: Client) -> int:
    """The request queue's redrive policy: receives before SQS moves a message here."""
    attributes = aws_call(client.sqs.get_queue_attributes,
                          QueueUrl=client.stack.request_queue_url,
                          AttributeNames=["RedrivePolicy"])["Attributes"]
    try:
        return int(json.loads(attributes["RedrivePolicy"])["maxReceiveCount"])
    except (KeyError, ValueError, TypeError):
        return contract.MAX_RECEIVE_COUNT


def _parse(message: dict[str, Any], max_receives: int) -> DeadLetter:
    body = message["Body"]
    system = message.get("Attributes", {})
    attributes = string_attributes(message)
    job_id, kind, submitted_at, problem = _read_job(body)
    if MessageAttribute.REASON in attributes:  # the worker answered it and moved it here itself
        reason, receives = attributes[MessageAttribute.REASON], None
    else:  # SQS moved it on the receive after the last one allowed
        reason, receives = f"received {max_receives} times without an answer", max_receives
    return DeadLetter(
        message_id=message["MessageId"], receipt=message["ReceiptHandle"], body=body,
        sent_at=int(system.get("SentTimestamp", 0)) / 1000, job_id=job_id, kind=kind,
        submitted_at=submitted_at, readable=problem is None, problem=problem,
        size=len(body.encode("utf-8", "surrogatepass")), receives=receives, reason=reason,
        attributes=attributes, system_attributes=system)


def _read_job(body: str) -> tuple[str | None, str | None, float | None, str | None]:
    """(job id, kind, submitted at, problem): whatever the body holds, never an exception.

    Anyone may write to the request queue, so a dead letter may be anything SQS takes:
    a decoder's surprise (deep nesting, a number that overflows) only makes it unreadable.
    """
    try:
        job = wire.decode_job(body)
    except wire.WireError as exc:
        return exc.job_id, None, None, exc.message
    except (ValueError, TypeError, ArithmeticError, RecursionError, MemoryError) as exc:
        return None, None, None, f"the body cannot be decoded ({type(exc).__name__})"
    return job.job_id, job.kind, job.submitted_at, None


def _receive_all(client: Client, visibility: int, limit: int,
                 wait_seconds: int | None) -> tuple[list[DeadLetter], bool]:
    """Receive every dead letter (bounded); they stay hidden until released."""
    wait_seconds = WAIT_SECONDS if wait_seconds is None else wait_seconds
    max_receives = max_receive_count(client)
    found: dict[str, DeadLetter] = {}
    while len(found) < limit:
        response = aws_call(client.sqs.receive_message,
                            QueueUrl=client.stack.dead_letter_queue_url,
                            MaxNumberOfMessages=min(10, limit - len(found)),
                            VisibilityTimeout=visibility, WaitTimeSeconds=wait_seconds,
                            MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"])
        messages = response.get("Messages", [])
        if not messages:
            return list(found.values()), False
        for message in messages:
            found[message["MessageId"]] = _parse(message, max_receives)
    return list(found.values()), True


def release(client: Client, letters: Iterable[DeadLetter]) -> None:
    """Make messages read with _receive_all visible again at once."""
    letters = list(letters)
    for indexes in aws.sqs_batches([len(letter.receipt) for letter in letters]):
        entries = [{"Id": str(i), "ReceiptHandle": letters[i].receipt, "VisibilityTimeout": 0}
                   for i in indexes]
        aws_call(client.sqs.change_message_visibility_batch,
                 QueueUrl=client.stack.dead_letter_queue_url, Entries=entries)


def list_dead_letters(client: Client, *, visibility: int = VISIBILITY_SECONDS,
                      limit: int = MAX_MESSAGES, wait_seconds: int | None = None) -> Listing:
    """Every dead letter (up to `limit`), oldest first, all left in the queue."""
    letters, truncated = _receive_all(client, visibility, limit, wait_seconds)
    release(client, letters)
    return Listing(sorted(letters, key=lambda letter: letter.sent_at), truncated)


def show(client: Client, ident: str, *, visibility: int = VISIBILITY_SECONDS) -> DeadLetter:
    """The dead letter with job id or message id `ident`."""
    for letter in list_dead_letters(client, visibility=visibility).dead_letters:
        if letter.matches(ident):
            return letter
    raise NotFound(f"no dead letter with job id or message id {ident}")


# ---- redriving ----------------------------------------------------------------------

def redrive(client: Client, idents: Iterable[str] = (), *, every: bool = False,
            force: bool = False, visibility: int = VISIBILITY_SECONDS,
            wait_seconds: int | None = None) -> RedriveReport:
    """Put dead letters back on the request queue: those named (job or message ids), or every one.

    An unreadable message would only fail again: it is refused unless `force`. Every one
    goes through SQS's move task where the endpoint has it (and no message is refused).
    """
    idents = list(dict.fromkeys(idents))
    if every == bool(idents):
        raise ValueError("name the dead letters to redrive, or every=True; not both")
    report = RedriveReport(method="send-delete")
    letters, _truncated = _receive_all(client, visibility, MAX_MESSAGES, wait_seconds)
    chosen = _choose(letters, idents, every, force, report)
    release(client, [letter for letter in letters if letter not in chosen])
    if not chosen:
        return report
    if every and not report.refused:
        if _move_task(client, chosen, report):
            return report
        # No move task here: read the queue again (the move task's attempt released it).
        letters, _truncated = _receive_all(client, visibility, MAX_MESSAGES, wait_seconds)
        chosen = _choose(letters, idents, every, force, report)
        release(client, [letter for letter in letters if letter not in chosen])
    _send_back(client, chosen, report)
    return report


def _choose(letters: list[DeadLetter], idents: list[str], every: bool, force: bool,
            report: RedriveReport) -> list[DeadLetter]:
    """The letters to redrive; the refused and the missing ones go into `report`."""
    if every:
        wanted = letters
    else:
        wanted = [letter for letter in letters if any(letter.matches(i) for i in idents)]
        report.missing = [i for i in idents if not any(w.matches(i) for w in wanted)]
    chosen = []
    for letter in wanted:
        if letter.readable or force:
            chosen.append(letter)
        else:
            report.refused.append((_name(letter), f"its body is not a job message "
                                                  f"({letter.problem}): it would fail the same "
                                                  f"way; --force redrives it anyway"))
    return chosen


def _name(letter: DeadLetter) -> str:
    return letter.job_id or letter.message_id


def _delete_stale_results(client: Client, letters: Iterable[DeadLetter]) -> None:
    """Remove the old results (the worker's stand-ins) of jobs about to run again.

    Before the send: a worker may store the new result as soon as the job is back.
    """
    keys = sorted({contract.result_key(letter.job_id) for letter in letters if letter.job_id})
    for start in range(0, len(keys), 1000):
        aws_call(client.s3.delete_objects, Bucket=client.stack.bucket,
                 Delete={"Objects": [{"Key": key} for key in keys[start:start + 1000]],
                         "Quiet": True})


def _move_task(client: Client, letters: list[DeadLetter], report: RedriveReport) -> bool:
    """Start SQS's own move task; False (report.fallback says why) where the endpoint lacks it.

    The task keeps each message as it is, without the REDRIVEN mark: a result then goes to
    S3 only when its reply queue is gone, so the stale results are removed first.
    """
    _delete_stale_results(client, letters)
    release(client, letters)
    sqs = client.sqs
    source = _arn(client, client.stack.dead_letter_queue_url)
    destination = _arn(client, client.stack.request_queue_url)
    try:
        response = sqs.start_message_move_task(SourceArn=source, DestinationArn=destination)
    except (ClientError, BotoCoreError, NotImplementedError) as exc:
        report.fallback = (f"StartMessageMoveTask failed ({aws.error_text(exc)}); "
                           f"sent one by one")
        return False
    report.method = "move-task"
    report.task_handle = response.get("TaskHandle")
    report.redriven = [_name(letter) for letter in letters]
    return True


def _arn(client: Client, queue_url: str) -> str:
    return aws_call(client.sqs.get_queue_attributes, QueueUrl=queue_url,
                    AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _send_back(client: Client, letters: list[DeadLetter], report: RedriveReport) -> None:
    """Send each message to the request queue, marked REDRIVEN; then delete the dead letter."""
    _delete_stale_results(client, letters)
    for batch in _batches(letters):
        entries = [{"Id": str(i), "MessageBody": letter.body,
                    "MessageAttributes": {MessageAttribute.REDRIVEN: {"DataType": "String",
                                                               "StringValue": "1"}}}
                   for i, letter in enumerate(batch)]
        response = aws_call(client.sqs.send_message_batch,
                            QueueUrl=client.stack.request_queue_url, Entries=entries)
        sent = [batch[int(entry["Id"])] for entry in response.get("Successful", [])]
        for failure in response.get("Failed", []):
            letter = batch[int(failure["Id"])]
            report.refused.append((_name(letter),
                                   f"SQS refused the send: {failure.get('Message')}"))
        if not sent:
            continue
        # Only now: a crash before this line leaves the job in both queues, never in neither.
        response = aws_call(client.sqs.delete_message_batch,
                            QueueUrl=client.stack.dead_letter_queue_url,
                            Entries=[{"Id": str(i), "ReceiptHandle": letter.receipt}
                                     for i, letter in enumerate(sent)])
        report.redriven += [_name(letter) for letter in sent]
        report.left_behind += [_name(sent[int(f["Id"])]) for f in response.get("Failed", [])]
    unsent = {name for name, _ in report.refused}
    release(client, [letter for letter in letters if _name(letter) in unsent])


def _batches(letters: list[DeadLetter]) -> list[list[DeadLetter]]:
    """Groups of letters as SendMessageBatch takes them."""
    return [[letters[i] for i in indexes]
            for indexes in aws.sqs_batches([letter.size for letter in letters])]


# ---- purging ----------------------------------------------------------------------------

def purge(client: Client) -> int:
    """Delete every dead letter for good; how many there were (approximately)."""
    attributes = aws_call(client.sqs.get_queue_attributes,
                          QueueUrl=client.stack.dead_letter_queue_url,
                          AttributeNames=["ApproximateNumberOfMessages",
                                          "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    try:
        aws_call(client.sqs.purge_queue, QueueUrl=client.stack.dead_letter_queue_url)
    except AwsUnavailable as exc:
        if "PurgeQueueInProgress" in str(exc):
            raise ClientFailure("the dead-letter queue was purged less than 60 s ago (SQS "
                                "allows one purge a minute); try again shortly") from None
        raise
    return sum(int(value) for value in attributes.values())
