"""The work horse: a job's function run in a child process forked from the worker, within limits.

    value = workhorse.run(lambda progress: kind.run(args, files, limits),
                          time_limit_s=60, memory_limit_bytes=400 * 2**20,
                          on_progress=print, cancel=threading.Event())

As rq's work horse and Celery's prefork pool do, the process that owns the queue never
runs a job's code in its own interpreter: it forks a child per job (after the kinds are
imported, so a fork costs milliseconds) and waits for one message from it, while its
other threads keep heartbeating. Whatever the child does, the parent lives on:

- over its wall-clock limit, the child is killed: `wire.JobError(time_limit)`;
- an allocation beyond its memory limit (RLIMIT_AS: what it inherits plus the limit)
  fails with MemoryError in the child: `wire.JobError(too_large)`;
- a crash (segfault in a decoder, SIGKILL from the OOM killer) or any exception that is
  not a JobError: `Failed`, a failure that may pass (the worker retries the job);
- `cancel` set while it runs: the child is killed, `Cancelled`.

The child reports progress with the callable its target receives; each report reaches
the parent's `on_progress` while the job runs (hooks for job lifecycles, issue 18).

Fork safety: the child runs only the target. It never uses a connection of the parent's
pools (the store opens fresh ones in a child, store.py), logging's locks are reset by the
logging module at fork, and no other thread of the parent exists in the child. The child
ignores SIGTERM/SIGINT (the parent decides its end) and dies with its parent
(PR_SET_PDEATHSIG); an RLIMIT_CPU a little above the time limit stops it if both fail.
The child is a fault boundary, not a security one: it runs as the same user.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import pickle
import resource
import select
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from . import wire
from .registry import ArgError

log = logging.getLogger("worker")

# Messages from the child: a length (8 bytes, big-endian) and a pickled (tag, payload).
_HEADER = struct.Struct(">Q")
PROGRESS, RETURNED, JOB_ERROR, ARG_ERROR, OUT_OF_MEMORY, FAILED = (
    "progress", "returned", "job_error", "arg_error", "out_of_memory", "failed")
# How often the parent looks at `cancel` while the child is silent.
CANCEL_POLL_SECONDS = 0.05
# After its last message the child exits at once; it gets this long before SIGKILL.
EXIT_GRACE_SECONDS = 2.0
# The CPU limit (the backstop if the parent cannot kill the child) is this much later.
CPU_LIMIT_MARGIN_SECONDS = 5
_PR_SET_PDEATHSIG = 1


def _find_prctl() -> Any:
    """Linux's prctl, found once in the parent (a child only calls it)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

Progress = Callable[[Any], None]


class Failed(Exception):
    """The job failed in a way that may pass: a crash of the child, or an unexpected error."""


class Cancelled(Exception):
    """The job was cancelled while it ran; its child is gone."""


def run(target: Callable[[Progress], Any], *, time_limit_s: float,
        memory_limit_bytes: int | None = None, on_progress: Progress | None = None,
        cancel: threading.Event | None = None) -> Any:
    """`target(progress)` run in a child process; what it returns (it must pickle).

    Raises wire.JobError (the target's own, time_limit, too_large), registry.ArgError
    (the target's own), Failed or Cancelled, as the module's docstring says.
    """
    reader, writer = os.pipe()
    _widen(writer)
    # Worked out here: a child's first steps copy pages; the fewer, the faster.
    address_space = (None if memory_limit_bytes is None
                     else _address_space() + memory_limit_bytes)
    for stream in (sys.stdout, sys.stderr):  # or the child would write the parent's buffers too
        _flush(stream)
    started = time.monotonic()
    try:
        pid = os.fork()
    except OSError as exc:  # no memory or processes left for a child: a failure that may pass
        os.close(reader)
        os.close(writer)
        raise Failed(f"could not start a work horse: {type(exc).__name__}: {exc}") from None
    if pid == 0:  # the child: never returns
        os.close(reader)
        _child(target, writer, time_limit_s, address_space)
    os.close(writer)
    finished = False
    try:
        tag, payload = _wait(pid, reader, started + time_limit_s, on_progress, cancel,
                             time_limit_s)
        finished = True
    finally:
        os.close(reader)
        if finished:  # the child is exiting: reaped meanwhile (its teardown takes ms)
            threading.Thread(target=_reap, args=(pid,), name="reap", daemon=True).start()
        else:  # a limit, a cancel, or the parent itself stopping: no grace
            _kill(pid)
            _reap(pid)
    return _outcome(tag, payload, memory_limit_bytes)


def _outcome(tag: str, payload: Any, memory_limit_bytes: int | None) -> Any:
    if tag == RETURNED:
        return payload
    if tag == JOB_ERROR:
        raise wire.JobError(*payload)
    if tag == ARG_ERROR:
        raise ArgError(*payload)
    if tag == OUT_OF_MEMORY:
        limit = (f"{memory_limit_bytes / 2**20:,.0f} MiB" if memory_limit_bytes
                 else "the memory it may use")
        raise wire.JobError(wire.TOO_LARGE, f"the job needs more memory than this worker "
                                            f"gives a job ({limit}): {payload}")
    raise Failed(payload)


# ---- the parent -------------------------------------------------------------------------

def _wait(pid: int, reader: int, deadline: float, on_progress: Progress | None,
          cancel: threading.Event | None, time_limit_s: float) -> tuple[str, Any]:
    """The child's final (tag, payload); progress handed to on_progress on the way."""
    buffer = bytearray()
    while True:
        while len(buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(buffer)
            if len(buffer) < _HEADER.size + length:
                break
            tag, payload = pickle.loads(buffer[_HEADER.size:_HEADER.size + length])
            del buffer[:_HEADER.size + length]
            if tag != PROGRESS:
                return tag, payload
            _report(on_progress, payload)
        if cancel is not None and cancel.is_set():
            raise Cancelled("the job was cancelled while it ran")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise wire.JobError(wire.TIME_LIMIT, f"the job ran longer than its time limit "
                                                 f"({time_limit_s:g} s) and was stopped")
        wait = min(remaining, CANCEL_POLL_SECONDS) if cancel is not None else remaining
        ready, _, _ = select.select([reader], [], [], wait)
        if not ready:
            continue
        chunk = os.read(reader, 1024 * 1024)
        if not chunk:
            return FAILED, _crash_text(pid)
        buffer += chunk


def _report(on_progress: Progress | None, payload: Any) -> None:
    if on_progress is None:
        return
    try:
        on_progress(payload)
    except Exception as exc:  # a reporting problem never stops the job
        log.warning("on_progress failed: %s: %s",
                                            type(exc).__name__, exc)


def _crash_text(pid: int) -> str:
    """Why the child ended without a message (it is reaped here)."""
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"the job's process was killed by {name}"
    return f"the job's process exited with code {os.WEXITSTATUS(status)} without a result"


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Wait for the child (killed if it lingers); never leave a zombie."""
    deadline = time.monotonic() + EXIT_GRACE_SECONDS
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # already reaped
        if done:
            return
        if time.monotonic() >= deadline:
            _kill(pid)
            os.waitpid(pid, 0)
            return
        time.sleep(0.001)


def _widen(fd: int) -> None:
    """A larger pipe (1 MiB): big outputs cross in fewer rounds."""
    try:
        import fcntl
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1024 * 1024)
    except (ImportError, AttributeError, OSError):
        pass


def _flush(stream: Any) -> None:
    try:
        stream.flush()
    except (AttributeError, OSError, ValueError):
        pass


# ---- the child ----------------------------------------------------------------------------

def _child(target: Callable[[Progress], Any], writer: int, time_limit_s: float,
           address_space: int | None) -> None:
    """Run the target, send one final message, exit. Never returns, never raises."""
    code = 0
    try:
        _prepare_child(time_limit_s, address_space)

        def progress(payload: Any) -> None:
            _send(writer, PROGRESS, payload)

        try:
            message = (RETURNED, target(progress))
        except MemoryError as exc:
            message = (OUT_OF_MEMORY, f"MemoryError: {exc}" if str(exc) else "MemoryError")
        except wire.JobError as exc:
            message = (JOB_ERROR, (exc.code, exc.message))
        except BaseException as exc:
            message = _other_error(exc)
        try:
            _send(writer, *message)
        except MemoryError:
            _send(writer, OUT_OF_MEMORY, "MemoryError while sending the result")
        except Exception as exc:  # e.g. a value that does not pickle
            _send(writer, FAILED, f"the job's result could not be sent: "
                                  f"{type(exc).__name__}: {exc}")
    except BaseException:
        code = 70  # the parent reports the exit code: nothing else can be said
    finally:
        for stream in (sys.stdout, sys.stderr):
            _flush(stream)
        os._exit(code)


def _other_error(exc: BaseException) -> tuple[str, Any]:
    if isinstance(exc, ArgError):
        return ARG_ERROR, (exc.name, exc.message)
    return FAILED, f"{type(exc).__name__}: {exc}"


def _prepare_child(time_limit_s: float, address_space: int | None) -> None:
    parent = os.getppid()
    if _PRCTL is not None:  # elsewhere than Linux the CPU limit below still ends an orphan
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(71)  # the parent died before the line above
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, signal.SIG_IGN)
    # A child's CPU time starts at 0 (fork resets it).
    for limit, value in ((resource.RLIMIT_CPU, math.ceil(time_limit_s) + CPU_LIMIT_MARGIN_SECONDS),
                         (resource.RLIMIT_AS, address_space)):
        _, hard = resource.getrlimit(limit)
        if value is not None and (hard == resource.RLIM_INFINITY or value <= hard):
            resource.setrlimit(limit, (value, hard))


def _address_space() -> int:
    """This process's virtual size now (what a child forked now inherits)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[0]) * _PAGE_SIZE


def _send(writer: int, tag: str, payload: Any) -> None:
    data = pickle.dumps((tag, payload), protocol=pickle.HIGHEST_PROTOCOL)
    for part in (_HEADER.pack(len(data)), data):
        view = memoryview(part)
        while view:
            view = view[os.write(writer, view):]
