"""The work horse: a long-lived child process, forked in advance, that runs jobs sent to it as data.

    horse = workhorse.WorkHorse(handler, memory_limit_bytes=400 * 2**20)
    horse.prepare()                  # fork ahead, off any job's path (the worker does at start)
    value = horse.run(task, time_limit_s=60, on_progress=print, cancel=threading.Event())

As Celery's prefork pool does (with one child: a worker runs one job at a time), the process
that owns the queue never runs a job's code in its own interpreter. The child, forked after
the kinds are imported, waits on a pipe for a task (plain data, pickled: no closures), runs
`handler(task, progress)` and sends back progress messages and one outcome, while the
parent's other threads keep heartbeating. A warm child costs a job no fork. Whatever the
child does, the parent lives on:

- over its wall-clock limit, the child is killed: `wire.JobError(time_limit)`;
- an allocation beyond its memory limit (RLIMIT_AS, set for each job to the child's address
  space at its start plus the limit) fails with MemoryError: `wire.JobError(too_large)`;
- a crash (segfault in a decoder, the OOM killer) or any exception that is not a JobError:
  `Failed`, a failure that may pass (the worker retries the job);
- `cancel` set while it runs: the child is killed, `Cancelled`.

The child is replaced (and a new one forked at once, before the next job comes) after a
time limit, a cancel, a crash or a MemoryError; when its resident memory after a job has
grown by more than `max_growth_bytes` since it was forked (Celery's max_memory_per_child);
and after `max_jobs` jobs.

Fork safety: the child runs only the handler; it never uses a connection of the parent's
pools (the store makes its own client, store.py); logging's locks are reset at fork; no
other thread of the parent exists in it. It ignores SIGTERM/SIGINT (the parent decides),
dies with the thread that forked it (PR_SET_PDEATHSIG: the worker's main thread) or at the
end of its task pipe, and an RLIMIT_CPU a little above each job's time limit stops it if
all of that fails. It is a fault boundary, not a security one: it runs as the same user.
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
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from . import wire
from .registry import ArgError

log = logging.getLogger("worker")

# Messages either way: a length (8 bytes, big-endian) and a pickled tuple.
_HEADER = struct.Struct(">Q")
PROGRESS, RETURNED, JOB_ERROR, ARG_ERROR, OUT_OF_MEMORY, FAILED = (
    "progress", "returned", "job_error", "arg_error", "out_of_memory", "failed")
# How often the parent looks at `cancel` while the child is silent.
CANCEL_POLL_SECONDS = 0.05
# A retired child (its pipe closed) gets this long to exit before SIGKILL.
EXIT_GRACE_SECONDS = 2.0
# The CPU limit (the backstop if the parent cannot kill the child) is this much later.
CPU_LIMIT_MARGIN_SECONDS = 5
# A child whose resident memory after a job exceeds what it had when forked by more than
# this is replaced (Celery's max_memory_per_child); and one that has run this many jobs.
MAX_GROWTH_BYTES = 64 * 1024 * 1024
MAX_JOBS = 1000
_PR_SET_PDEATHSIG = 1


try:  # Linux's prctl, found once in the parent (a child only calls it)
    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

Progress = Callable[[Any], None]
Handler = Callable[[Any, Progress], Any]


class Failed(Exception):
    """The job failed in a way that may pass: a crash of the child, or an unexpected error."""


class Cancelled(Exception):
    """The job was cancelled while it ran; its child is gone."""


@dataclass
class _Child:
    pid: int
    tasks: int  # the parent's end of the task pipe
    outcomes: int  # the parent's end of the outcome pipe
    jobs: int = 0
    reaped: bool = False  # its pid may belong to another process now: never signalled


class WorkHorse:
    """One child process that runs `handler(task, progress)` for each task, replaced as needed."""

    def __init__(self, handler: Handler, *, memory_limit_bytes: int | None = None,
                 max_growth_bytes: int = MAX_GROWTH_BYTES, max_jobs: int = MAX_JOBS,
                 warm_up: Callable[[], None] | None = None) -> None:
        self.handler = handler
        self.warm_up = warm_up  # run in each new child before it waits for its first task
        self.memory_limit_bytes = memory_limit_bytes
        self.max_growth_bytes = max_growth_bytes
        self.max_jobs = max_jobs
        self.replaced = 0  # children retired so far (for tests and the log)
        # Fork each child ahead of its job (at `prepare` and right after a replacement); off,
        # a job forks its child (with max_jobs=1: a child per job, rq's model).
        self.fork_ahead = True
        self._child: _Child | None = None

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else None

    def start(self) -> None:
        """Fork the child now if there is none (raises Failed if it cannot be forked)."""
        if self._child is None:
            self._child = self._fork()

    def prepare(self) -> None:
        """Fork the child ahead of the first job (the worker does at start), if forking ahead."""
        if self.fork_ahead:
            self.start()

    def close(self) -> None:
        """Retire the child: it exits at the end of its task pipe."""
        self._retire(kill=False)

    def run(self, task: Any, *, time_limit_s: float, on_progress: Progress | None = None,
            cancel: threading.Event | None = None) -> Any:
        """What `handler(task, progress)` returns in the child (it must pickle).

        Raises wire.JobError (the handler's own, time_limit, too_large), registry.ArgError
        (the handler's own), Failed or Cancelled, as the module's docstring says.
        """
        self.start()
        child = self._child
        assert child is not None
        try:
            _send(child.tasks, (task, time_limit_s))
        except BrokenPipeError:  # it died while it waited: a new one takes the task
            self._retire(kill=True)
            self.start()
            child = self._child
            _send(child.tasks, (task, time_limit_s))
        child.jobs += 1
        try:
            tag, payload, growth = _wait(child, time.monotonic() + time_limit_s,
                                         on_progress, cancel, time_limit_s)
        except (wire.JobError, Cancelled):  # over its time, or cancelled: killed, replaced
            self._retire(kill=True)
            self._replace()
            raise
        except BaseException:  # the parent itself stopping: no grace, no replacement
            self._retire(kill=True)
            raise
        if child.reaped or tag == OUT_OF_MEMORY or growth > self.max_growth_bytes \
                or child.jobs >= self.max_jobs:
            self._retire(kill=tag == OUT_OF_MEMORY)
            self._replace()
        return _outcome(tag, payload, self.memory_limit_bytes)

    def _fork(self) -> _Child:
        task_reader, task_writer = os.pipe()
        reader, writer = os.pipe()
        for fd in (writer, task_writer):
            _widen(fd)
        _flush_all()  # or the child would write the parent's buffers too
        try:
            pid = os.fork()
        except OSError as exc:  # no memory or processes left for a child: a failure that may pass
            for fd in (task_reader, task_writer, reader, writer):
                os.close(fd)
            raise Failed(f"could not start a work horse: {type(exc).__name__}: {exc}") from None
        if pid == 0:  # the child: never returns
            os.close(task_writer)
            os.close(reader)
            _serve(self.handler, self.warm_up, task_reader, writer, self.memory_limit_bytes)
        os.close(task_reader)
        os.close(writer)
        return _Child(pid, task_writer, reader)

    def _replace(self) -> None:
        """A new child at once, so that the next job finds one ready."""
        try:
            self.prepare()
        except Failed as exc:  # the next job tries again, and fails as a job may
            log.warning("%s", exc)

    def _retire(self, *, kill: bool) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        self.replaced += 1
        for fd in (child.tasks, child.outcomes):  # an idle child reads the end and exits
            with suppress(OSError):
                os.close(fd)
        if child.reaped:
            return
        if kill:
            _kill(child.pid)
            _reap(child.pid)
        else:  # its teardown takes milliseconds: off the job's path
            threading.Thread(target=_reap, args=(child.pid,), name="reap", daemon=True).start()


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

def _wait(child: _Child, deadline: float, on_progress: Progress | None,
          cancel: threading.Event | None, time_limit_s: float) -> tuple[str, Any, int]:
    """The child's outcome (tag, payload, memory growth); progress handed on on the way."""
    buffer = bytearray()
    while True:
        while len(buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(buffer)
            if len(buffer) < _HEADER.size + length:
                break
            message = pickle.loads(buffer[_HEADER.size:_HEADER.size + length])
            del buffer[:_HEADER.size + length]
            if message[0] != PROGRESS:
                return message
            if on_progress is not None:
                try:
                    on_progress(message[1])
                except Exception as exc:  # a reporting problem never stops the job
                    log.warning("on_progress failed: %s: %s", type(exc).__name__, exc)
        if cancel is not None and cancel.is_set():
            raise Cancelled("the job was cancelled while it ran")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise wire.JobError(wire.TIME_LIMIT, f"the job ran longer than its time limit "
                                                 f"({time_limit_s:g} s) and was stopped")
        wait = min(remaining, CANCEL_POLL_SECONDS) if cancel is not None else remaining
        ready, _, _ = select.select([child.outcomes], [], [], wait)
        if not ready:
            continue
        chunk = os.read(child.outcomes, 1024 * 1024)
        if not chunk:
            child.reaped = True
            return FAILED, _crash_text(child.pid), 0
        buffer += chunk


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
    with suppress(ImportError, AttributeError, OSError):
        import fcntl
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1024 * 1024)


def _flush_all() -> None:
    for stream in (sys.stdout, sys.stderr):
        with suppress(AttributeError, OSError, ValueError):
            stream.flush()


# ---- the child ----------------------------------------------------------------------------

def _serve(handler: Handler, warm_up: Callable[[], None] | None, tasks: int, writer: int,
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
                _send(writer, (*outcome, _statm(1) - base))
            except MemoryError:
                _send(writer, (OUT_OF_MEMORY, "MemoryError while sending the result", 0))
            except Exception as exc:  # e.g. a value that does not pickle
                _send(writer, (FAILED, f"the job's result could not be sent: "
                                       f"{type(exc).__name__}: {exc}", 0))
    except BaseException:
        code = 70  # the parent reports the exit code: nothing else can be said
    finally:
        _flush_all()
        os._exit(code)


def _run_one(handler: Handler, task: Any, writer: int) -> tuple[str, Any]:
    def progress(payload: Any) -> None:
        _send(writer, (PROGRESS, payload))

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
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    data = _read_exactly(fd, _HEADER.unpack(header)[0])
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


def _send(writer: int, message: tuple) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    for part in (_HEADER.pack(len(data)), data):
        view = memoryview(part)
        while view:
            view = view[os.write(writer, view):]
