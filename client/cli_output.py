"""What the CLI prints: one JSON document, job ids, failures, and a progress bar on stderr."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from worker_src import wire

from . import numbers


def emit_json(document: Any) -> None:
    sys.stdout.write(wire.dumps(document, indent=2) + "\n")


def print_job_ids(args: argparse.Namespace, job_ids: list[str]) -> int:
    if args.json:
        emit_json({"job_ids": job_ids, "state": "queued"})
    else:
        print("\n".join(job_ids))
    return 0


def error_document(result: wire.Result) -> dict[str, str | None]:
    return {"code": result.error_code, "message": result.error_message}


def report_failure(args: argparse.Namespace, result: wire.Result) -> int:
    if args.json:
        state = "cancelled" if result.error_code == wire.CANCELLED else "failed"
        emit_json({"job_id": result.job_id, "ok": False, "error": error_document(result),
                   "state": state})
    print(f"error: job {result.job_id} failed: {result.error_code}: {result.error_message}",
          file=sys.stderr)
    return 1


def print_value(value: dict[str, Any]) -> None:
    """A result's value as aligned `key  value` lines."""
    width = max((len(key) for key in value), default=0)
    for key, item in value.items():
        print(f"{key:<{width}}  {numbers.shown(item)}")


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total: int, enabled: bool = True, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.count = 0
        self.label = ""
        self.stream = stream
        self.enabled = enabled and stream.isatty()
        self.running: int | None = None  # jobs running now, once the run waits

    def stage(self, label: str) -> None:
        self.label, self.count = label, 0
        self._draw()

    def show_running(self, running: int) -> None:
        self.running = running
        self._draw()

    def tick(self, value: Any) -> Any:
        self.count += 1
        self._draw()
        return value

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")

    def done(self) -> None:
        if self.enabled:
            self.clear()
            self.stream.flush()

    def _draw(self) -> None:
        if self.enabled:
            filled = 30 * self.count // max(1, self.total)
            counts = f"{self.count}/{self.total}"
            if self.running is not None:
                queued = max(0, self.total - self.count - self.running)
                counts = f"{queued} queued · {self.running} running · {self.count} done"
            self.stream.write(f"\r{self.label:<11} [{'#' * filled:<30}] {counts}\033[K")
            self.stream.flush()
