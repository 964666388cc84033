"""The work horse's child process: what runs after the fork, and the messages on its pipes.

The parent's side (fork, send, wait, replace) is workhorse.py, whose docstring says what a
child does and when it is replaced.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import pickle
import resource
import signal
import struct
import sys
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from . import wire
from .registry import ArgError

log = logging.getLogger("worker")

# Messages either way: a length (8 bytes, big-endian) and a pickled tuple.
HEADER = struct.Struct(">Q")
PROGRESS, RETURNED, JOB_ERROR, ARG_ERROR, OUT_OF_MEMORY, FAILED = (
    "progress", "returned", "job_error", "arg_error", "out_of_memory", "failed")
# The CPU limit (the backstop if the parent cannot kill the child) is this much later.
CPU_LIMIT_MARGIN_SECONDS = 5
_PR_SET_PDEATHSIG = 1


try:  # Linux's prctl, found once in the parent (a child only calls it)
    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

Progress = Callable[[Any], None]
Handler = Callable[[Any, Progress], Any]


def serve(handler: Handler, warm_up: Callable[[], None] | None, tasks: int, writer: int,
          memory_limit_bytes: int | None) -> None:
    """Run tasks until the task pipe closes, each with one outcome message. Never returns."""
    code = 0
    try:
        _prepare_child()
        if warm_up is not None:
            try:
                warm_up()
            except Exception as exc:  # the first job meets the same problem, and reports it
                log.warning("the work horse's warm-up failed: %s: %s", type(exc).__name__, exc)
        base = _statm(1)
        while True:
            message = _receive(tasks)
            if message is None:
                break  # the parent retired this child, or died
            task, time_limit_s = message
            _set_limits(time_limit_s, memory_limit_bytes)
            outcome = _run_one(handler, task, writer)
            try:
                send(writer, (*outcome, _statm(1) - base))
            except MemoryError:
                send(writer, (OUT_OF_MEMORY, "MemoryError while sending the result", 0))
            except Exception as exc:  # e.g. a value that does not pickle
                send(writer, (FAILED, f"the job's result could not be sent: "
                                       f"{type(exc).__name__}: {exc}", 0))
    except BaseException:
        code = 70  # the parent reports the exit code: nothing else can be said
    finally:
        flush_all()
        os._exit(code)


def _run_one(handler: Handler, task: Any, writer: int) -> tuple[str, Any]:
    def progress(payload: Any) -> None:
        send(writer, (PROGRESS, payload))

    try:
        return RETURNED, handler(task, progress)
    except MemoryError as exc:
        return OUT_OF_MEMORY, f"MemoryError: {exc}" if str(exc) else "MemoryError"
    except wire.JobError as exc:
        return JOB_ERROR, (exc.code, exc.message)
    except ArgError as exc:
        return ARG_ERROR, (exc.name, exc.message)
    except BaseException as exc:
        return FAILED, f"{type(exc).__name__}: {exc}"


def _prepare_child() -> None:
    parent = os.getppid()
    if _PRCTL is not None:  # elsewhere than Linux the closed pipe and the CPU limit end it
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(71)  # the parent died before the line above
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, signal.SIG_IGN)


def _set_limits(time_limit_s: float, memory_limit_bytes: int | None) -> None:
    """This job's limits: CPU and address space from what the child has used and holds now."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = math.ceil(usage.ru_utime + usage.ru_stime + time_limit_s) + CPU_LIMIT_MARGIN_SECONDS
    address_space = None if memory_limit_bytes is None else _statm(0) + memory_limit_bytes
    for limit, value in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, address_space)):
        _, hard = resource.getrlimit(limit)
        if value is not None and (hard == resource.RLIM_INFINITY or value <= hard):
            resource.setrlimit(limit, (value, hard))


def _statm(field: int) -> int:
    """A field of /proc/self/statm in bytes: 0 the address space, 1 the resident set."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[field]) * _PAGE_SIZE


def _receive(fd: int) -> Any:
    """The next message on `fd`, or None at its end."""
    header = _read_exactly(fd, HEADER.size)
    if header is None:
        return None
    data = _read_exactly(fd, HEADER.unpack(header)[0])
    return None if data is None else pickle.loads(data)


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1024 * 1024))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def send(writer: int, message: tuple) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    for part in (HEADER.pack(len(data)), data):
        view = memoryview(part)
        while view:
            view = view[os.write(writer, view):]


def flush_all() -> None:
    for stream in (sys.stdout, sys.stderr):
        with suppress(AttributeError, OSError, ValueError):
            stream.flush()
