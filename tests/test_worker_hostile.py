"""Hostile messages through the loop: each ends answered or dead-lettered alone, none held."""

import json
import os
import time

import pytest

from tests.fakes import memory_loop
from worker_src import contract, executor, registry, wire
from worker_src.executor import Executor
from worker_src.store import MemoryStore


def sleepy(ctx):
    time.sleep(ctx.args["seconds"])
    return registry.Output({"slept": ctx.args["seconds"]})


def greedy(ctx):
    return registry.Output({"bytes": len(bytearray(ctx.args["megabytes"] * 1024 * 1024))})


def crash(ctx):
    os.kill(os.getpid(), 11)  # a segfault in a decoder, say


TEST_KINDS = {
    "sleepy": registry.Kind(name="sleepy", summary="sleeps", run=sleepy, time_limit_s=0.5,
                            args=(registry.Arg("seconds", registry.FLOAT, "how long"),)),
    "greedy": registry.Kind(name="greedy", summary="allocates", run=greedy,
                            args=(registry.Arg("megabytes", registry.INT, "how much"),)),
    "crash": registry.Kind(name="crash", summary="segfaults", run=crash),
}


@pytest.fixture
def loop():
    return memory_loop({**registry.kinds(), **TEST_KINDS}, memory_budget_mb=64)


def job_body(reply_to, kind="stats", args=None, **fields):
    body = {"version": 1, "job_id": wire.new_job_id(), "kind": kind,
            "args": {"numbers": [3, 1, 2]} if args is None else args, "reply_to": reply_to,
            "submitted_at": 1.0, **fields}
    return body["job_id"], json.dumps(body)


def hostile_bodies(reply):
    """One message of each class the review found, by name."""
    deep = "[" * 100_000 + "]" * 100_000
    _, huge_time = job_body(reply)
    huge_time = huge_time.replace('"submitted_at": 1.0', '"submitted_at": 1' + "0" * 400)
    return {
        "deep nesting": deep,
        "deep args": job_body(reply, args={"numbers": 1})[1].replace(
            '"numbers": 1', '"numbers": ' + "[" * 5000 + "]" * 5000),
        "an integer over the float range": huge_time,
        "a ten-million-digit integer": job_body(reply)[1].replace("[3, 1, 2]",
                                                                  "[" + "7" * 10**7 + "]"),
        "NaN": job_body(reply)[1].replace('"submitted_at": 1.0', '"submitted_at": NaN'),
        "binary (as SQS carries it)": "\x7f\x80\xff\ufffd\U0001f600\t" * 1000,
        "not JSON": "{this is not json",
        "256 KiB of garbage": "x" * 256 * 1024,
    }


@pytest.mark.parametrize("receive_count", [1, 3])
def test_each_hostile_message_is_dead_lettered_and_its_batch_mates_answered(loop,
                                                                             receive_count):
    broker, _store, worker = loop
    reply = broker.reply_queue()
    hostile = hostile_bodies(reply)
    good = []
    for body in hostile.values():
        job_id, good_body = job_body(reply)
        good.append(job_id)
        broker.put(good_body, receive_count)
        broker.put(body, receive_count)
    while broker.waiting:
        worker.process_batch(broker.receive(10, 0))
    results = {r.job_id: r for r in broker.results(reply)}
    for job_id in good:
        assert results[job_id].ok and results[job_id].value["median"] == 2
    dead = {body: reason for body, reason in broker.dead}
    for name, body in hostile.items():
        assert dead.get(body, "").startswith("bad_input: "), name
    assert worker._held == []
    assert not [seconds for _, seconds in broker.visibility if seconds == 0]  # none handed back
    assert len(broker.deleted) == 2 * len(hostile)


def test_a_reply_queue_that_is_not_a_url_is_forbidden_and_the_result_stored(loop):
    broker, store, worker = loop
    job_id, body = job_body("https://[")
    broker.put(body)
    worker.process_batch(broker.receive(10, 0))
    assert store.result(job_id).error_code == wire.FORBIDDEN and worker._held == []


def test_a_hostile_message_that_carries_a_job_id_is_answered_bad_input(loop):
    broker, _store, worker = loop
    reply = broker.reply_queue()
    job_id, body = job_body(reply)
    broker.put(body.replace("[3, 1, 2]", "[" + "7" * 200_000 + "]"))
    worker.process_batch(broker.receive(10, 0))
    [(dead_body, reason)] = broker.dead
    assert "has 200,000 digits; at most 100,000" in reason and "7" * 200_000 in dead_body
    [result] = broker.results(reply)  # the id and reply queue are read from the text
    assert (result.job_id, result.error_code) == (job_id, wire.BAD_INPUT)
    assert "has 200,000 digits" in result.error_message


@pytest.mark.parametrize("receive_count", [1, 3])
def test_an_unexpected_error_in_one_message_leaves_its_batch_mates_alone(loop, receive_count):
    broker, _store, worker = loop
    reply = broker.reply_queue()
    ids = [job_body(reply) for _ in range(3)]
    messages = {job_id: broker.put(body, receive_count) for job_id, body in ids}
    poisoned = ids[1][0]
    handle = worker.handle

    def surprising(held):
        if held.job.job_id == poisoned:
            raise RuntimeError("injected: a surprise in one message")
        handle(held)

    worker.handle = surprising
    worker.process_batch(broker.receive(10, 0))
    results = {r.job_id: r for r in broker.results(reply)}
    assert results[ids[0][0]].ok and results[ids[2][0]].ok
    assert worker._held == []
    if receive_count == 1:  # retried alone, after a backoff
        assert poisoned not in results and broker.dead == []
        assert broker.visibility == [(messages[poisoned].receipt, 2)]
    else:  # its last receive: answered and dead-lettered with the reason
        assert results[poisoned].error_code == wire.INTERNAL
        [(_, reason)] = broker.dead
        assert reason == "internal: RuntimeError: injected: a surprise in one message"


def test_a_job_over_its_time_limit_is_answered_time_limit_and_the_next_runs(loop):
    broker, _store, worker = loop
    reply = broker.reply_queue()
    slow, body = job_body(reply, kind="sleepy", args={"seconds": 30})
    broker.put(body)
    quick, body = job_body(reply)
    broker.put(body)
    started = time.monotonic()
    worker.process_batch(broker.receive(10, 0))
    results = {r.job_id: r for r in broker.results(reply)}
    assert results[slow].error_code == wire.TIME_LIMIT and "0.5 s" in results[slow].error_message
    assert results[quick].ok and time.monotonic() - started < 10


def test_a_job_over_its_memory_is_answered_too_large_and_the_next_runs(loop):
    broker, _store, worker = loop
    reply = broker.reply_queue()
    hog, body = job_body(reply, kind="greedy", args={"megabytes": 1024})
    broker.put(body)
    small, body = job_body(reply, kind="greedy", args={"megabytes": 8})
    broker.put(body)
    worker.process_batch(broker.receive(10, 0))
    results = {r.job_id: r for r in broker.results(reply)}
    assert results[hog].error_code == wire.TOO_LARGE and "MiB" in results[hog].error_message
    assert results[small].ok and results[small].value["bytes"] == 8 * 1024 * 1024


def test_a_crashing_job_is_retried_and_answered_internal_after_its_last_attempt(loop):
    broker, _store, worker = loop
    reply = broker.reply_queue()
    job_id, body = job_body(reply, kind="crash", args={})
    for attempt in (1, 2, 3):
        broker.put(body, attempt)
        worker.process_batch(broker.receive(10, 0))
    [result] = broker.results(reply)
    assert result.job_id == job_id and result.error_code == wire.INTERNAL
    assert "SIGSEGV" in result.error_message and result.attempt == 3
    assert worker.stats.failed_attempts == 3
    [(_, reason)] = broker.dead
    assert reason.startswith("internal: ") and "SIGSEGV" in reason


def test_the_worker_setting_lowers_every_kinds_time_limit():
    store = MemoryStore()
    kinds = {"sleepy": registry.Kind(name="sleepy", summary="sleeps", run=sleepy,
                                     args=(registry.Arg("seconds", registry.FLOAT, "s"),))}
    job = wire.Job(job_id=wire.new_job_id(), kind="sleepy", args={"seconds": 5},
                   reply_to=None, submitted_at=1.0)
    result = Executor(store, identity="t", kinds=kinds, time_limit_s=0.3).execute(job, 1).result
    assert result.error_code == wire.TIME_LIMIT and "0.3 s" in result.error_message


# ---- args.json ---------------------------------------------------------------------------

def args_job(store, text):
    job_id = wire.new_job_id()
    store.put(contract.args_key(job_id), text if isinstance(text, bytes) else text.encode(),
              "application/json")
    return wire.Job(job_id=job_id, kind="stats", args=None, reply_to=None, submitted_at=1.0,
                    args_key=contract.args_key(job_id))


@pytest.mark.parametrize("text, code, words", [
    ('{"numbers": [' + "7" * 200_000 + "]}", wire.BAD_INPUT, "has 200,000 digits"),
    ('{"numbers": ' + "[" * 50_000 + "]" * 50_000 + "}", wire.BAD_INPUT, "nested deeper"),
    ('{"numbers": [NaN]}', wire.BAD_INPUT, "NaN is not a JSON number"),
    (b'{"numbers": [1, \xff]}', wire.BAD_INPUT, "is not valid JSON"),
])
def test_a_hostile_args_json_is_refused_naming_what_is_wrong(text, code, words):
    store = MemoryStore()
    result = Executor(store, identity="t").execute(args_job(store, text), 1).result
    assert result.error_code == code and words in result.error_message


def test_args_json_over_the_budgets_share_is_too_large_before_it_is_read():
    store = MemoryStore()
    budget = 50 * 1024 * 1024
    cap = executor.max_args_bytes(budget)
    assert cap == budget // executor.ARGS_MEMORY_FACTOR < wire.MAX_ARGS_BYTES
    job = args_job(store, '{"numbers": [' + "1," * (cap // 2) + "1]}")
    result = Executor(store, identity="t", memory_budget_bytes=budget).execute(job, 1).result
    assert result.error_code == wire.TOO_LARGE
