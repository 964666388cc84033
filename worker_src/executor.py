"""Executing one job: its arguments, its input files, the kind's function, its output.

The executor never touches SQS (the loop in worker.py does): given a decoded job it
returns the job's result, or raises for a failure that may pass (the loop retries).
Override points, as in rq: `find_kind`, `perform`, `load_args`, `open_files`, `compute`,
`store_output`; the fault-injection harness and tests override them.

In this process: finding the kind (its limits), handing the job to the work horse as data
(`perform`), storing the output. In the work horse (workhorse.py, a long-lived child process,
each job with the kind's time limit and a memory limit from the budget): `in_work_horse`:
reading args.json (bounded: its size by the memory budget, its integers by their digits,
its depth), checking the arguments, opening the input objects (their sizes checked before a
byte is read, with the child's own S3 client) and `compute`, the kind's function.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from . import contract, lifecycle, registry, wire, workhorse
from .store import Store

DEFAULT_MEMORY_BUDGET = 400 * 1024 * 1024
# args.json is read whole: its values take up to ~25 times its bytes in memory (an
# empty list, 3 bytes of text, is a 56-byte object and a pointer).
ARGS_MEMORY_FACTOR = 25
# The work horse may grow its address space by the budget and this much: thread stacks
# and malloc arenas reserve address space that the budget (resident bytes) does not count.
ADDRESS_SPACE_HEADROOM = 128 * 1024 * 1024


def max_args_bytes(memory_budget_bytes: int) -> int:
    """The largest args.json this worker reads: the wire's limit, less on a small budget."""
    return min(wire.MAX_ARGS_BYTES, memory_budget_bytes // ARGS_MEMORY_FACTOR)


@dataclass(frozen=True)
class Execution:
    """A job's result, with what the per-job metric line needs beside it."""

    result: wire.Result
    kind: str
    input_bytes: int


@dataclass(frozen=True)
class Computed:
    """What the work horse sends back for a job: its output and how it got there."""

    output: registry.Output
    input_name: str | None  # the main input's file name (the output is named after it)
    input_bytes: int
    fetch_s: float
    run_s: float


class Executor:
    def __init__(self, store: Store, *, identity: str,
                 kinds: dict[str, registry.Kind] | None = None,
                 max_pixels: int | None = None,
                 memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
                 time_limit_s: float | None = None) -> None:
        self.store = store
        self.identity = identity
        if kinds is None:
            registry.load_implementations()  # once, before the work horse is forked
        self.kinds = kinds if kinds is not None else registry.kinds()
        self.max_pixels = max_pixels
        self.memory_budget_bytes = memory_budget_bytes
        self.time_limit_s = time_limit_s  # lowers every kind's own (WQW_TIME_LIMIT_S)
        # The running job's watch (progress and cancel), set by the worker around execute().
        self.watch: lifecycle.Watch | None = None
        self.work_horse = workhorse.WorkHorse(
            self.in_work_horse, memory_limit_bytes=memory_budget_bytes + ADDRESS_SPACE_HEADROOM,
            warm_up=self.store.connect)

    def start(self) -> None:
        """Fork the work horse now, before any job (a job forks it if it is not there)."""
        self.work_horse.prepare()

    def close(self) -> None:
        self.work_horse.close()

    def execute(self, job: wire.Job, attempt: int) -> Execution:
        """Run `job`; a JobError becomes an error result, anything else propagates."""
        started = time.time()
        timing = {"queued_s": round(max(0.0, started - job.submitted_at), 6)}
        extra = {"timing": timing, "worker": self.identity, "attempt": attempt}
        input_bytes = 0
        try:
            kind = self.find_kind(job.kind)
            computed = self.perform(job, kind)
            input_bytes = computed.input_bytes
            timing.update(fetch_s=computed.fetch_s, run_s=computed.run_s)
            stored = time.time()
            value = self.store_output(job, kind, computed.output, computed.input_name)
            timing["store_s"] = _since(stored)
            return Execution(wire.ok_result(job.job_id, value, **extra), job.kind, input_bytes)
        except registry.ArgError as exc:
            return Execution(wire.error_result(job.job_id, wire.BAD_INPUT, exc.message, **extra),
                             job.kind, input_bytes)
        except wire.JobError as exc:
            return Execution(wire.error_result(job.job_id, exc.code, exc.message, **extra),
                             job.kind, input_bytes)

    # ---- the steps (override points) ---------------------------------------------------

    def find_kind(self, name: str) -> registry.Kind:
        if name not in self.kinds:
            raise wire.JobError(wire.BAD_INPUT, f"unknown job kind {name!r}; this worker runs "
                                                f"{', '.join(sorted(self.kinds))}")
        return self.kinds[name]

    def perform(self, job: wire.Job, kind: registry.Kind) -> Computed:
        """The job, sent as data to the work horse: its time and memory limited, its crash not ours.

        Over its time: time_limit; over its memory: too_large; a crash of the work horse
        or an unexpected error in it: workhorse.Failed (the loop retries the job). The
        kind's progress reaches the watch; the watch's cancel kills the work horse: cancelled.
        """
        watch = self.watch
        if watch is not None and watch.cancel.is_set():
            raise wire.JobError(wire.CANCELLED, watch.cancelled_message())
        try:
            return self.work_horse.run(
                job, time_limit_s=self.limits(kind).time_limit_s,
                on_progress=watch.reported if watch is not None else None,
                cancel=watch.cancel if watch is not None else None)
        except workhorse.Cancelled:
            assert watch is not None
            raise wire.JobError(wire.CANCELLED, watch.cancelled_message()) from None

    def in_work_horse(self, job: wire.Job, progress: registry.Progress) -> Computed:
        """The job's part that runs in the work horse: arguments, inputs, the kind's function."""
        started = time.time()
        kind = self.find_kind(job.kind)
        args = kind.check_args(self.load_args(job))
        files = self.open_files(job, kind, args)
        try:
            fetch_s = _since(started)
            ran = time.time()
            plain = {k: v for k, v in args.items() if k not in files}
            output = self.compute(kind, registry.JobContext(
                plain, files, self.limits(kind), lifecycle.throttled(progress)))
            main = files.get(kind.main_input) if kind.main_input else None
            return Computed(output, main.name if main is not None else None,
                            sum(f.size for f in files.values()), fetch_s, _since(ran))
        finally:
            for file in files.values():
                file.close()

    def load_args(self, job: wire.Job) -> dict[str, Any]:
        if job.args_key is None:
            return dict(job.args or {})
        key = own_key(job.args_key, contract.input_prefix(job.job_id), "args_key")
        file = self.store.open(key, max_args_bytes(self.memory_budget_bytes))
        try:
            args = wire.parse_json(file.read())
        except ValueError as exc:
            raise wire.JobError(wire.BAD_INPUT, f"{key} is not valid JSON: {exc}") from None
        finally:
            file.close()
        if not isinstance(args, dict):
            raise wire.JobError(wire.BAD_INPUT, f"{key} must hold a JSON object")
        return args

    def open_files(self, job: wire.Job, kind: registry.Kind,
                   args: dict[str, Any]) -> dict[str, Any]:
        """The job's file arguments, opened (sizes checked before any byte is read)."""
        files: dict[str, Any] = {}
        try:
            for name in kind.file_args():
                if args.get(name) is not None:
                    key = own_key(args[name], contract.input_prefix(job.job_id), name)
                    files[name] = self.store.open(key, kind.max_input_bytes)
        except BaseException:
            for file in files.values():
                file.close()
            raise
        return files

    def limits(self, kind: registry.Kind) -> registry.Limits:
        return registry.Limits(max_input_bytes=kind.max_input_bytes,
                               # WQW_MAX_PIXELS replaces every kind's own cap (larger instances)
                               max_pixels=self.max_pixels or kind.max_pixels,
                               memory_budget_bytes=self.memory_budget_bytes,
                               time_limit_s=min(kind.time_limit_s,
                                                self.time_limit_s or kind.time_limit_s))

    def compute(self, kind: registry.Kind, ctx: registry.JobContext) -> registry.Output:
        """The kind's function (runs in the work horse)."""
        return kind.run(ctx)

    def store_output(self, job: wire.Job, kind: registry.Kind, output: registry.Output,
                     input_name: str | None) -> dict[str, Any]:
        """Put the output file (if any) under outputs/<job_id>/; the result's value."""
        value = dict(output.value)
        if output.data is not None:
            stem = PurePosixPath(input_name).stem if input_name is not None else "output"
            key = contract.output_key(job.job_id,
                                      contract.output_name(stem, kind.name, output.suffix))
            content_type = output.content_type or "application/octet-stream"
            self.store.put(key, output.data, content_type)
            value.update(output_key=key, content_type=content_type, bytes=len(output.data))
        return value


def own_key(key: Any, prefix: str, name: str) -> str:
    """`key` if it is an object under `prefix` (the job's own), else bad_input."""
    if not isinstance(key, str) or not key.startswith(prefix) or len(key) == len(prefix):
        raise wire.JobError(wire.BAD_INPUT, f"{name} must be an S3 key under {prefix}")
    return key


def _since(start: float) -> float:
    return round(time.time() - start, 6)
