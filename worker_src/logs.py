"""The worker's log: one record per line, untrusted text escaped, so no sender can forge a line.

The worker logs parts of what senders wrote (field names, file names, error texts). The
CloudWatch agent ships the log file, and CloudWatch Logs reads every line that is a JSON
object with an `_aws` member as an Embedded Metric Format metric (metrics.py writes the
worker's own, bare on stdout). A newline in a logged text would let a sender start such a
line. So every record goes through `OneLineFormatter`: the whole formatted record (its
traceback included) has each character that is not printable written as an escape
(`\\n`, `\\x1b`, `\\u2028`), and each record starts with its timestamp, never with `{`.
`configure` installs it for the root logger, Python's warnings and uncaught exceptions.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType
from typing import Any

from .wire import printable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def escape(text: str) -> str:
    """`text` on one line: each non-printable character as a Python-style escape."""
    return printable(text)


class OneLineFormatter(logging.Formatter):
    """A record as one line: the standard format, then every non-printable escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return escape(super().format(record))


def configure(level: int = logging.INFO, stream: Any = None) -> logging.Handler:
    """The worker's logging: one escaped line per record on stderr (or `stream`)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(OneLineFormatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings through the formatter, not raw on stderr
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda args: _log_uncaught(args.exc_type, args.exc_value,
                                                      args.exc_traceback)
    return handler


def _log_uncaught(kind: type[BaseException], value: BaseException | None,
                  traceback: TracebackType | None) -> None:
    if issubclass(kind, SystemExit):
        return
    logging.getLogger("worker").critical("uncaught exception", exc_info=(kind, value, traceback))
