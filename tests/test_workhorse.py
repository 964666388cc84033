"""The work horse: a job's function in a forked child, with time and memory limits."""

import os
import signal
import threading
import time

import pytest

from worker_src import registry, wire, workhorse


def test_a_value_comes_back_from_the_child_with_every_digit():
    value = workhorse.run(lambda progress: {"pid": os.getpid(), "big": 7 ** 9000},
                          time_limit_s=10)
    assert value["big"] == 7 ** 9000
    assert value["pid"] != os.getpid()  # it ran in another process


def test_a_large_output_crosses_the_pipe_whole():
    data = os.urandom(3 * 1024 * 1024 + 17)
    output = workhorse.run(lambda progress: registry.Output({"n": 1}, data, "image/png", ".png"),
                           time_limit_s=10)
    assert output.data == data and output.suffix == ".png"


def test_a_job_error_keeps_its_code_and_message():
    def refuse(progress):
        raise wire.JobError(wire.NOT_FOUND, "inputs/x/a.png does not exist")

    with pytest.raises(wire.JobError) as raised:
        workhorse.run(refuse, time_limit_s=10)
    assert (raised.value.code, raised.value.message) == (wire.NOT_FOUND,
                                                        "inputs/x/a.png does not exist")


def test_an_argument_error_keeps_the_argument_name():
    def refuse(progress):
        raise registry.ArgError("gamma", "gamma must be > 0")

    with pytest.raises(registry.ArgError) as raised:
        workhorse.run(refuse, time_limit_s=10)
    assert (raised.value.name, raised.value.message) == ("gamma", "gamma must be > 0")


def test_any_other_exception_is_a_failure_that_may_pass():
    def broken(progress):
        raise ConnectionResetError("injected: connection reset")

    with pytest.raises(workhorse.Failed, match="ConnectionResetError: injected"):
        workhorse.run(broken, time_limit_s=10)


def test_a_job_over_its_time_is_stopped_and_answered_time_limit():
    started = time.monotonic()
    with pytest.raises(wire.JobError) as raised:
        workhorse.run(lambda progress: time.sleep(30), time_limit_s=0.5)
    assert raised.value.code == wire.TIME_LIMIT and "0.5 s" in raised.value.message
    assert time.monotonic() - started < 5


def test_a_job_stuck_in_c_code_holding_the_gil_is_stopped_too():
    # A 10-million-digit power: minutes of one C call that never lets go of the interpreter.
    started = time.monotonic()
    with pytest.raises(wire.JobError) as raised:
        workhorse.run(lambda progress: 3 ** (10 ** 9), time_limit_s=0.5)
    assert raised.value.code == wire.TIME_LIMIT and time.monotonic() - started < 5


def test_an_allocation_over_the_memory_limit_is_too_large():
    def greedy(progress):
        return len(bytearray(300 * 1024 * 1024))

    with pytest.raises(wire.JobError) as raised:
        workhorse.run(greedy, time_limit_s=20, memory_limit_bytes=100 * 1024 * 1024)
    assert raised.value.code == wire.TOO_LARGE and "100 MiB" in raised.value.message


def test_numpy_over_the_memory_limit_is_too_large_and_within_it_works():
    import numpy as np

    def array(megabytes):
        return lambda progress: int(np.ones(megabytes * 1024 * 1024 // 8).sum())

    limit = 150 * 1024 * 1024
    assert workhorse.run(array(100), time_limit_s=20, memory_limit_bytes=limit) == (
        100 * 1024 * 1024 // 8)
    with pytest.raises(wire.JobError) as raised:
        workhorse.run(array(400), time_limit_s=20, memory_limit_bytes=limit)
    assert raised.value.code == wire.TOO_LARGE


@pytest.mark.parametrize("number", [signal.SIGSEGV, signal.SIGKILL])
def test_a_crash_of_the_child_is_a_failure_not_a_dead_parent(number):
    with pytest.raises(workhorse.Failed, match=signal.Signals(number).name):
        workhorse.run(lambda progress: os.kill(os.getpid(), number), time_limit_s=10)
    assert workhorse.run(lambda progress: "alive", time_limit_s=10) == "alive"


def test_a_child_that_exits_without_a_result_is_a_failure():
    with pytest.raises(workhorse.Failed, match="exited with code 3"):
        workhorse.run(lambda progress: os._exit(3), time_limit_s=10)


def test_a_value_that_does_not_pickle_is_a_failure_naming_it():
    with pytest.raises(workhorse.Failed, match="could not be sent"):
        workhorse.run(lambda progress: threading.Lock(), time_limit_s=10)


def test_progress_reaches_the_parent_while_the_job_runs_in_order():
    seen = []

    def steps(progress):
        for step in range(5):
            progress({"step": step, "of": 5})
        return "done"

    assert workhorse.run(steps, time_limit_s=10, on_progress=seen.append) == "done"
    assert seen == [{"step": step, "of": 5} for step in range(5)]


def test_progress_arrives_before_the_job_ends():
    arrived = []

    def slow(progress):
        progress("halfway")
        time.sleep(1.0)
        return time.monotonic()

    ended = workhorse.run(slow, time_limit_s=10,
                          on_progress=lambda payload: arrived.append(time.monotonic()))
    assert len(arrived) == 1 and arrived[0] < ended - 0.5


def test_a_failing_progress_callback_does_not_stop_the_job():
    def boom(payload):
        raise ValueError("callback broke")

    assert workhorse.run(lambda progress: progress(1) or "fine", time_limit_s=10,
                         on_progress=boom) == "fine"


def test_progress_is_ignored_without_a_callback():
    assert workhorse.run(lambda progress: progress("x") or 5, time_limit_s=10) == 5


def test_a_cancel_kills_the_running_child_promptly():
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(workhorse.Cancelled):
        workhorse.run(lambda progress: time.sleep(30), time_limit_s=60, cancel=cancel)
    assert time.monotonic() - started < 2


def test_an_unset_cancel_changes_nothing():
    assert workhorse.run(lambda progress: 42, time_limit_s=10, cancel=threading.Event()) == 42


def test_the_parent_keeps_running_other_threads_while_the_child_works():
    ticks = []
    stop = threading.Event()

    def beat():
        while not stop.wait(0.05):
            ticks.append(time.monotonic())

    thread = threading.Thread(target=beat)
    thread.start()
    try:
        with pytest.raises(wire.JobError):
            workhorse.run(lambda progress: 3 ** (10 ** 9), time_limit_s=1.0)
    finally:
        stop.set()
        thread.join()
    assert len(ticks) >= 10  # a job hogging its own interpreter cannot starve the parent's


def test_no_child_is_left_behind():
    for target in (lambda p: 1, lambda p: time.sleep(5), lambda p: os.kill(os.getpid(), 9)):
        try:
            workhorse.run(target, time_limit_s=0.3)
        except (wire.JobError, workhorse.Failed):
            pass
    deadline = time.monotonic() + 5  # a finished child is reaped by a thread, at once
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no child of this process, not even a zombie


def test_the_child_ignores_sigterm_the_parent_decides():
    def shrug(progress):
        os.kill(os.getpid(), signal.SIGTERM)
        return "still here"

    assert workhorse.run(shrug, time_limit_s=10) == "still here"


def test_a_fork_that_fails_is_a_failure_that_may_pass_and_leaks_no_pipe(monkeypatch):
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    before = len(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(os, "fork", no_fork)
    with pytest.raises(workhorse.Failed, match="could not start a work horse"):
        workhorse.run(lambda progress: 1, time_limit_s=10)
    assert len(os.listdir("/proc/self/fd")) == before
