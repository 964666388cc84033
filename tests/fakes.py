"""A worker loop on the shipped in-memory seams (worker_src.broker.MemoryBroker,
worker_src.store.MemoryStore), set up as the tests want it."""

from __future__ import annotations

from typing import Any

from worker_src import registry
from worker_src.broker import MemoryBroker
from worker_src.config import WorkerConfig
from worker_src.executor import Executor
from worker_src.store import MemoryStore
from worker_src.worker import Worker


def memory_worker(broker: MemoryBroker, store: MemoryStore,
                  kinds: dict[str, registry.Kind] | None = None, **config: Any) -> Worker:
    """A Worker whose loop runs `kinds` (None: every registered one) on `broker` and `store`;
    `config` overrides WorkerConfig's fields (wait_seconds is 1 unless given: a test's receive
    comes back in a second), and the executor takes its limits from it as the worker's does."""
    settings = WorkerConfig(request_queue_url="https://sqs.local/123/stack-requests",
                            dead_letter_queue_url="https://sqs.local/123/stack-dlq",
                            bucket="b", reply_queue_prefix="stack-reply-",
                            **{"wait_seconds": 1, **config})
    executor = Executor(store, identity="t", kinds=kinds, max_pixels=settings.max_pixels,
                        memory_budget_bytes=settings.memory_budget_bytes,
                        time_limit_s=settings.time_limit_s)
    return Worker(settings, broker, store, executor)


def memory_loop(kinds: dict[str, registry.Kind] | None = None,
                **config: Any) -> tuple[MemoryBroker, MemoryStore, Worker]:
    """A fresh in-memory broker and store, and a memory_worker on them."""
    broker, store = MemoryBroker(), MemoryStore()
    return broker, store, memory_worker(broker, store, kinds, **config)

