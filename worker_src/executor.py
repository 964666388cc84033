"""Executing one job: its arguments, its input files, the kind's function, its output.

The executor never touches SQS (the loop in worker.py does): given a decoded job it
returns the job's result, or raises for a failure that may pass (the loop retries).
Override points, as in rq: `find_kind`, `load_args`, `open_files`, `perform`,
`store_output`; the fault-injection harness and tests override them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from . import contract, lifecycle, registry, wire
from .store import Store

# Arguments travel through S3 when they do not fit in one message; they are read whole.
MAX_ARGS_BYTES = 256 * 1024 * 1024
DEFAULT_MEMORY_BUDGET = 400 * 1024 * 1024


@dataclass(frozen=True)
class Execution:
    """A job's result, with what the per-job metric line needs beside it."""

    result: wire.Result
    kind: str
    input_bytes: int


class Executor:
    def __init__(self, store: Store, *, identity: str,
                 kinds: dict[str, registry.Kind] | None = None,
                 max_pixels: int | None = None,
                 memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET) -> None:
        self.store = store
        self.identity = identity
        self.kinds = kinds if kinds is not None else registry.kinds()
        self.max_pixels = max_pixels
        self.memory_budget_bytes = memory_budget_bytes
        # The running job's watch (progress and cancel), set by the worker around execute().
        self.watch: lifecycle.Watch | None = None
        # Run each job in a work horse child with this time limit (None: in this process).
        self.time_limit_s: float | None = None

    def execute(self, job: wire.Job, attempt: int) -> Execution:
        """Run `job`; a JobError becomes an error result, anything else propagates."""
        started = time.time()
        timing = {"queued_s": round(max(0.0, started - job.submitted_at), 6)}
        extra = {"timing": timing, "worker": self.identity, "attempt": attempt}
        input_bytes = 0
        files: dict[str, Any] = {}
        try:
            kind = self.find_kind(job.kind)
            args = kind.check_args(self.load_args(job))
            files = self.open_files(job, kind, args)
            input_bytes = sum(f.size for f in files.values())
            timing["fetch_s"] = _since(started)
            ran = time.time()
            plain = {k: v for k, v in args.items() if k not in files}
            output = self.perform(kind, plain, files, self.limits(kind))
            timing["run_s"] = _since(ran)
            stored = time.time()
            value = self.store_output(job, kind, output, files)
            timing["store_s"] = _since(stored)
            return Execution(wire.ok_result(job.job_id, value, **extra), job.kind, input_bytes)
        except registry.ArgError as exc:
            return Execution(wire.error_result(job.job_id, wire.BAD_INPUT, exc.message, **extra),
                             job.kind, input_bytes)
        except wire.JobError as exc:
            return Execution(wire.error_result(job.job_id, exc.code, exc.message, **extra),
                             job.kind, input_bytes)
        finally:
            for file in files.values():
                file.close()

    # ---- the steps (override points) ---------------------------------------------------

    def find_kind(self, name: str) -> registry.Kind:
        if name not in self.kinds:
            raise wire.JobError(wire.BAD_INPUT, f"unknown job kind {name!r}; this worker runs "
                                                f"{', '.join(sorted(self.kinds))}")
        return self.kinds[name]

    def load_args(self, job: wire.Job) -> dict[str, Any]:
        if job.args_key is None:
            return dict(job.args or {})
        key = own_key(job.args_key, contract.input_prefix(job.job_id), "args_key")
        file = self.store.open(key, MAX_ARGS_BYTES)
        try:
            args = json.loads(file.read())
        except ValueError as exc:
            raise wire.JobError(wire.BAD_INPUT, f"{key} is not valid JSON: {exc}") from None
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
                               memory_budget_bytes=self.memory_budget_bytes)

    def perform(self, kind: registry.Kind, args: dict[str, Any], files: dict[str, Any],
                limits: registry.Limits) -> registry.Output:
        return lifecycle.call_kind(kind, args, files, limits, self.watch,
                                   time_limit_s=self.time_limit_s)

    def store_output(self, job: wire.Job, kind: registry.Kind, output: registry.Output,
                     files: dict[str, Any]) -> dict[str, Any]:
        """Put the output file (if any) under outputs/<job_id>/; the result's value."""
        value = dict(output.value)
        if output.data is not None:
            main = files.get(kind.main_input) if kind.main_input else None
            stem = PurePosixPath(main.name).stem if main is not None else "output"
            key = contract.output_key(job.job_id, f"{stem}-{kind.name}{output.suffix}")
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
