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

import logging
import os
import pickle
import select
import signal
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from . import wire
from .registry import ArgError
from .workhorse_child import (
    ARG_ERROR,
    FAILED,
    HEADER,
    JOB_ERROR,
    OUT_OF_MEMORY,
    PROGRESS,
    RETURNED,
    Handler,
    Progress,
    flush_all,
    send,
    serve,
)

log = logging.getLogger("worker")

# How often the parent looks at `cancel` while the child is silent.
CANCEL_POLL_SECONDS = 0.05
# A retired child (its pipe closed) gets this long to exit before SIGKILL.
EXIT_GRACE_SECONDS = 2.0
# A child whose resident memory after a job exceeds what it had when forked by more than
# this is replaced (Celery's max_memory_per_child); and one that has run this many jobs.
MAX_GROWTH_BYTES = 64 * 1024 * 1024
MAX_JOBS = 1000



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
        self.replaced = 0  # children retired so far (tests read it)
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
            send(child.tasks, (task, time_limit_s))
        except BrokenPipeError:  # it died while it waited: a new one takes the task
            self._retire(kill=True)
            self.start()
            child = self._child
            send(child.tasks, (task, time_limit_s))
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
        flush_all()  # or the child would write the parent's buffers too
        try:
            pid = os.fork()
        except OSError as exc:  # no memory or processes left for a child: a failure that may pass
            for fd in (task_reader, task_writer, reader, writer):
                os.close(fd)
            raise Failed(f"could not start a work horse: {type(exc).__name__}: {exc}") from None
        if pid == 0:  # the child: never returns
            os.close(task_writer)
            os.close(reader)
            serve(self.handler, self.warm_up, task_reader, writer, self.memory_limit_bytes)
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
        while len(buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(buffer)
            if len(buffer) < HEADER.size + length:
                break
            message = pickle.loads(buffer[HEADER.size:HEADER.size + length])
            del buffer[:HEADER.size + length]
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
