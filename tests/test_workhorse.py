"""The work horse: a long-lived child that runs tasks sent as data, with time and memory limits."""

import os
import signal
import threading
import time

import numpy as np  # imported before any fork, as the worker imports its kinds
import pytest

from worker_src import registry, wire, workhorse

LEAK = []  # what `leak` keeps, in the child


def call(task, progress):
    """The handler: a task is (a module-level function, its arguments), pickled by name."""
    function, *args = task
    return function(progress, *args)


def pid(progress):
    return os.getpid()


def value(progress, x):
    return x


def big_power(progress):
    return {"pid": os.getpid(), "big": 7 ** 9000}


def output(progress, data):
    return registry.Output({"n": 1}, data, "image/png", ".png")


def raise_(progress, error, *args):
    raise error(*args)


def sleep(progress, seconds):
    time.sleep(seconds)


def hog_the_gil(progress):
    return 3 ** (10 ** 9)  # a 10-million-digit power: one long C call holding the GIL


def allocate(progress, megabytes):
    return len(bytearray(megabytes * 1024 * 1024))


def numpy_sum(progress, megabytes):
    return int(np.ones(megabytes * 1024 * 1024 // 8).sum())


def leak(progress, megabytes):
    LEAK.append(bytearray(b"x" * megabytes * 1024 * 1024))  # touched: resident
    return os.getpid()


def kill_self(progress, number):
    os.kill(os.getpid(), number)


def exit_(progress, code):
    os._exit(code)


def unpicklable(progress):
    return threading.Lock()


def steps(progress, n):
    for step in range(n):
        progress({"step": step, "of": n})
    return "done"


def report_then_sleep(progress):
    progress("halfway")
    time.sleep(1.0)
    return time.monotonic()


def report(progress, x):
    progress(x)
    return x


def shrug_sigterm(progress):
    os.kill(os.getpid(), signal.SIGTERM)
    return "still here"


@pytest.fixture
def horse():
    horse = workhorse.WorkHorse(call, memory_limit_bytes=150 * 1024 * 1024)
    yield horse
    horse.close()


def run(horse, *task, **kw):
    return horse.run(task, time_limit_s=kw.pop("time_limit_s", 10), **kw)


def test_tasks_run_in_one_long_lived_child_forked_in_advance(horse):
    horse.start()
    child = horse.pid
    assert child is not None and child != os.getpid()
    assert [run(horse, pid) for _ in range(3)] == [child] * 3
    assert horse.replaced == 0


def test_a_value_comes_back_with_every_digit(horse):
    assert run(horse, big_power)["big"] == 7 ** 9000


def test_a_large_output_crosses_the_pipe_whole(horse):
    data = os.urandom(3 * 1024 * 1024 + 17)
    result = run(horse, output, data)
    assert result.data == data and result.suffix == ".png"


def test_a_job_error_keeps_its_code_and_message_and_the_child(horse):
    child = (horse.start(), horse.pid)[1]
    with pytest.raises(wire.JobError) as raised:
        run(horse, raise_, wire.JobError, wire.NOT_FOUND, "inputs/x/a.png does not exist")
    assert (raised.value.code, raised.value.message) == (wire.NOT_FOUND,
                                                        "inputs/x/a.png does not exist")
    assert run(horse, pid) == child


def test_an_argument_error_keeps_the_argument_name(horse):
    with pytest.raises(registry.ArgError) as raised:
        run(horse, raise_, registry.ArgError, "gamma", "gamma must be > 0")
    assert (raised.value.name, raised.value.message) == ("gamma", "gamma must be > 0")


def test_any_other_exception_is_a_failure_that_may_pass_and_the_child_serves_on(horse):
    child = run(horse, pid)
    with pytest.raises(workhorse.Failed, match="ConnectionResetError: injected"):
        run(horse, raise_, ConnectionResetError, "injected: connection reset")
    assert run(horse, pid) == child


def test_a_job_over_its_time_is_stopped_and_a_new_child_serves_the_next(horse):
    child = run(horse, pid)
    started = time.monotonic()
    with pytest.raises(wire.JobError) as raised:
        run(horse, sleep, 30, time_limit_s=0.5)
    assert raised.value.code == wire.TIME_LIMIT and "0.5 s" in raised.value.message
    assert time.monotonic() - started < 5
    replacement = horse.pid  # forked at once, before the next job comes
    assert replacement not in (None, child) and run(horse, pid) == replacement
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # killed and reaped


def test_a_job_stuck_in_c_code_holding_the_gil_is_stopped_too(horse):
    started = time.monotonic()
    with pytest.raises(wire.JobError) as raised:
        run(horse, hog_the_gil, time_limit_s=0.5)
    assert raised.value.code == wire.TIME_LIMIT and time.monotonic() - started < 5


def test_an_allocation_over_the_memory_limit_is_too_large_and_the_child_replaced(horse):
    child = run(horse, pid)
    with pytest.raises(wire.JobError) as raised:
        run(horse, allocate, 300)
    assert raised.value.code == wire.TOO_LARGE and "150 MiB" in raised.value.message
    assert run(horse, pid) != child
    assert run(horse, allocate, 100) == 100 * 1024 * 1024


def test_numpy_over_the_memory_limit_is_too_large_and_within_it_works(horse):
    assert run(horse, numpy_sum, 100) == 100 * 1024 * 1024 // 8
    with pytest.raises(wire.JobError) as raised:
        run(horse, numpy_sum, 400)
    assert raised.value.code == wire.TOO_LARGE


def test_every_job_gets_the_whole_memory_limit_however_many_ran_before(horse):
    for _ in range(4):  # 4 x 100 MiB in one child, with a 150 MiB limit per job
        assert run(horse, numpy_sum, 100) == 100 * 1024 * 1024 // 8
    assert horse.replaced == 0


@pytest.mark.parametrize("number", [signal.SIGSEGV, signal.SIGKILL])
def test_a_crash_of_the_child_is_a_failure_and_a_new_child_serves_the_next(horse, number):
    child = run(horse, pid)
    with pytest.raises(workhorse.Failed, match=signal.Signals(number).name):
        run(horse, kill_self, number)
    assert run(horse, pid) not in (child, os.getpid())


def test_a_child_that_exits_without_a_result_is_a_failure(horse):
    with pytest.raises(workhorse.Failed, match="exited with code 3"):
        run(horse, exit_, 3)
    assert run(horse, value, "next") == "next"


def test_a_child_killed_while_it_waits_is_replaced_for_the_next_task(horse):
    horse.start()
    child = horse.pid
    os.kill(child, signal.SIGKILL)
    # Dead, its pipes closed (a zombie): a task sent before then would be lost with it.
    deadline = time.monotonic() + 10
    while not _is_zombie(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run(horse, pid) not in (child, None)


def _is_zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_a_value_that_does_not_pickle_is_a_failure_naming_it(horse):
    with pytest.raises(workhorse.Failed, match="could not be sent"):
        run(horse, unpicklable)


def test_memory_grown_past_the_threshold_gets_the_child_replaced():
    horse = workhorse.WorkHorse(call, max_growth_bytes=32 * 1024 * 1024)
    try:
        first = run(horse, leak, 8)  # grew 8 MiB: kept
        assert run(horse, pid) == first
        assert run(horse, leak, 40) == first  # grew past 32 MiB: replaced after its job
        assert horse.replaced == 1 and run(horse, pid) != first
    finally:
        horse.close()


def test_a_child_is_replaced_after_its_number_of_jobs():
    horse = workhorse.WorkHorse(call, max_jobs=2)
    try:
        pids = [run(horse, pid) for _ in range(5)]
    finally:
        horse.close()
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]


def test_progress_reaches_the_parent_while_the_job_runs_in_order(horse):
    seen = []
    assert run(horse, steps, 5, on_progress=seen.append) == "done"
    assert seen == [{"step": step, "of": 5} for step in range(5)]


def test_progress_arrives_before_the_job_ends(horse):
    arrived = []
    ended = run(horse, report_then_sleep,
                on_progress=lambda payload: arrived.append(time.monotonic()))
    assert len(arrived) == 1 and arrived[0] < ended - 0.5


def test_a_failing_progress_callback_does_not_stop_the_job(horse):
    def boom(payload):
        raise ValueError("callback broke")

    assert run(horse, report, "fine", on_progress=boom) == "fine"


def test_progress_is_ignored_without_a_callback(horse):
    assert run(horse, report, 5) == 5


def test_a_cancel_kills_the_running_child_promptly_and_a_new_one_serves_the_next(horse):
    child = run(horse, pid)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(workhorse.Cancelled):
        run(horse, sleep, 30, time_limit_s=60, cancel=cancel)
    assert time.monotonic() - started < 2
    assert run(horse, pid) != child


def test_an_unset_cancel_changes_nothing(horse):
    assert run(horse, value, 42, cancel=threading.Event()) == 42


def test_the_parent_keeps_running_other_threads_while_the_child_works(horse):
    ticks = []
    stop = threading.Event()

    def beat():
        while not stop.wait(0.05):
            ticks.append(time.monotonic())

    thread = threading.Thread(target=beat)
    thread.start()
    try:
        with pytest.raises(wire.JobError):
            run(horse, hog_the_gil, time_limit_s=1.0)
    finally:
        stop.set()
        thread.join()
    assert len(ticks) >= 10  # a job hogging its own interpreter cannot starve the parent's


def test_no_child_is_left_behind(monkeypatch):
    forked: list[int] = []
    real_fork = os.fork

    def recording_fork() -> int:
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recording_fork)
    horse = workhorse.WorkHorse(call)
    for task in ((value, 1), (sleep, 5), (kill_self, 9), (value, 2)):
        try:
            horse.run(task, time_limit_s=0.3)
        except (wire.JobError, workhorse.Failed):
            pass
    horse.close()
    assert len(forked) >= 3  # the sleeper and the suicide each cost a child
    # Other tests of this process may have children of their own: look at ours only.
    deadline = time.monotonic() + 5  # a retired child is reaped by a thread
    while _unreaped(forked) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _unreaped(forked) == []  # not even a zombie


def _unreaped(pids: list[int]) -> list[int]:
    left = []
    for pid in pids:
        try:
            os.kill(pid, 0)  # a zombie still answers
        except ProcessLookupError:
            continue
        left.append(pid)
    return left


def test_the_child_ignores_sigterm_the_parent_decides(horse):
    assert run(horse, shrug_sigterm) == "still here"


def test_a_fork_that_fails_is_a_failure_that_may_pass_and_leaks_no_pipe(monkeypatch):
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    before = len(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(os, "fork", no_fork)
    with pytest.raises(workhorse.Failed, match="could not start a work horse"):
        workhorse.WorkHorse(call).run((value, 1), time_limit_s=10)
    assert len(os.listdir("/proc/self/fd")) == before


def test_without_forking_ahead_each_job_forks_its_own_child_when_it_starts():
    horse = workhorse.WorkHorse(call, max_jobs=1)
    horse.fork_ahead = False  # what tests on in-process moto use: the child sees the job's data
    try:
        horse.prepare()
        assert horse.pid is None  # nothing forked ahead
        first, second = run(horse, pid), run(horse, pid)
        assert first != second and horse.pid is None
    finally:
        horse.close()
