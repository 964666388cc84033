"""In-memory stand-ins for the worker's two seams: a broker (SQS) and a store (S3).

They follow worker_src.broker.Broker and worker_src.store.Store, so tests drive the loop
and the executor without moto or the network, and see every call that was made.
"""

from __future__ import annotations

import io
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from worker_src import contract, registry, wire, wire_lifecycle
from worker_src.broker import Message, QueueGone
from worker_src.config import WorkerConfig
from worker_src.executor import Executor
from worker_src.worker import Worker

# The characters SQS accepts in a message body or attribute (anything else: InvalidMessageContents).
NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def check_sqs_text(text: str) -> None:
    if NOT_SQS_TEXT.search(text):
        raise client_error("InvalidMessageContents")


@dataclass
class MemoryBroker:
    """A request queue, reply queues by URL, and a dead-letter list, all in memory."""

    reply_prefix: str = "https://sqs.local/123/stack-reply-"
    waiting: list[Message] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    visibility: list[tuple[str, int]] = field(default_factory=list)
    replies: dict[str, list[str]] = field(default_factory=dict)
    dead: list[tuple[str, str]] = field(default_factory=list)
    refuse_replies: bool = False
    _ids: Any = field(default_factory=itertools.count)

    def reply_queue(self) -> str:
        url = f"{self.reply_prefix}{next(self._ids)}"
        self.replies[url] = []
        return url

    def put(self, body: str, receive_count: int = 1) -> Message:
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
        self.dead.append((body, wire.printable(reason)))  # as SqsBroker writes it

    def reply_allowed(self, queue_url: str | None) -> bool:
        return bool(queue_url) and queue_url.startswith(self.reply_prefix)

    def results(self, queue_url: str) -> list[wire.Result]:
        """The results sent to a queue; a long job's running words, sent there too, left out."""
        return [wire.decode_result(body) for body in self.replies[queue_url]
                if wire_lifecycle.message_type(body) is None]


class MemoryFile:
    def __init__(self, key: str, data: bytes) -> None:
        self.key, self.name, self.size, self._data = key, key.rsplit("/", 1)[-1], len(data), data
        self.opened = 0

    def open(self) -> io.BytesIO:
        self.opened += 1
        return io.BytesIO(self._data)

    def read(self) -> bytes:
        return self.open().read()

    def close(self) -> None:
        return None


@dataclass
class MemoryStore:
    """Objects by key, with their content types; `fail_reads` makes the next reads raise."""

    objects: dict[str, bytes] = field(default_factory=dict)
    content_types: dict[str, str] = field(default_factory=dict)
    fail_reads: int = 0

    def connect(self) -> None:
        return None

    def open(self, key: str, max_bytes: int) -> MemoryFile:
        if self.fail_reads > 0:
            self.fail_reads -= 1
            raise ConnectionError("injected: connection reset")
        if key not in self.objects:
            raise wire.JobError(wire.NOT_FOUND, f"{key} does not exist")
        if len(self.objects[key]) > max_bytes:
            raise wire.JobError(wire.TOO_LARGE, f"{key} is over {max_bytes} bytes")
        return MemoryFile(key, self.objects[key])

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = data
        self.content_types[key] = content_type

    def put_result(self, result: wire.Result) -> None:
        self.put(contract.result_key(result.job_id), wire.encode_result(result).encode(),
                 "application/json")

    def exists(self, key: str) -> bool:
        return key in self.objects

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.objects.pop(key, None)

    def result(self, job_id: str) -> wire.Result:
        return wire.decode_result(self.objects[contract.result_key(job_id)])


def memory_worker(broker: MemoryBroker, store: MemoryStore, kinds: dict[str, registry.Kind],
                  **config: Any) -> Worker:
    """A Worker whose loop runs `kinds` on `broker` and `store`; `config` overrides WorkerConfig's
    fields (wait_seconds is 1 unless given: a test's receive comes back in a second)."""
    settings = WorkerConfig(request_queue_url="https://sqs.local/123/stack-requests",
                            dead_letter_queue_url="https://sqs.local/123/stack-dlq",
                            bucket="b", reply_queue_prefix="stack-reply-",
                            **{"wait_seconds": 1, **config})
    executor = Executor(store, identity="t", kinds=kinds,
                        memory_budget_bytes=settings.memory_budget_bytes)
    return Worker(settings, broker, store, executor)


def memory_loop(kinds: dict[str, registry.Kind],
                **config: Any) -> tuple[MemoryBroker, MemoryStore, Worker]:
    """A fresh in-memory broker and store, and a memory_worker on them."""
    broker, store = MemoryBroker(), MemoryStore()
    return broker, store, memory_worker(broker, store, kinds, **config)


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "Operation")
