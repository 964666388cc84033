"""The fetching side through its seam: the loop with an in-memory broker and store."""

import time

import pytest

from tests.fakes import memory_loop
from worker_src import registry, wire
from worker_src import wire_lifecycle as lw
from worker_src.executor import Executor


def result_count(bodies):
    """How many of the bodies sent are results (a job outlasting a second also sends words)."""
    return sum(lw.message_type(body) is None for body in bodies)


def fail_once(ctx):
    if not getattr(fail_once, "failed", False):
        fail_once.failed = True
        raise ConnectionError("injected: connection reset")
    return registry.Output({"ok": True})


KINDS = {
    "add": registry.Kind(name="add", summary="a + b", run=lambda ctx: registry.Output(
        {"sum": ctx.args["a"] + ctx.args["b"]}), args=(registry.Arg("a", registry.INT, "a"),
                                         registry.Arg("b", registry.INT, "b", default=0))),
    "flaky": registry.Kind(name="flaky", summary="fails once", run=fail_once),
}


@pytest.fixture
def loop():
    fail_once.failed = False
    return memory_loop(KINDS)


def send(broker, kind, args, reply_to, receive_count=1):
    job_id = wire.new_job_id()
    broker.put(wire.encode_job(wire.Job(job_id=job_id, kind=kind, args=args, reply_to=reply_to,
                                        submitted_at=1.0)), receive_count)
    return job_id


def test_results_are_delivered_before_their_messages_are_deleted(loop):
    broker, _store, worker = loop
    reply = broker.reply_queue()
    ids = [send(broker, "add", {"a": i}, reply) for i in range(3)]
    order = []
    broker_send, broker_delete = broker.send_results, broker.delete
    broker.send_results = lambda q, b: (result_count(b) and order.append("send")) or (
        broker_send(q, b))
    broker.delete = lambda m: order.append("delete") or broker_delete(m)
    worker.process_batch(broker.receive(10, 0))
    assert [r.value["sum"] for r in broker.results(reply)] == [0, 1, 2]
    assert {r.job_id for r in broker.results(reply)} == set(ids)
    assert order == ["send", "delete"] and len(broker.deleted) == 3


def test_a_failure_that_may_pass_is_backed_off_not_answered_nor_deleted(loop):
    broker, _store, worker = loop
    reply = broker.reply_queue()
    send(broker, "flaky", {}, reply)
    [message] = broker.receive(10, 0)
    worker.process_batch([message])
    assert broker.results(reply) == [] and broker.deleted == []
    assert broker.visibility == [(message.receipt, 2)]  # back in 2 s
    assert worker.stats.failed_attempts == 1


def test_an_unreachable_reply_queue_keeps_the_message_for_a_retry(loop):
    broker, _store, worker = loop
    reply = broker.reply_queue()
    send(broker, "add", {"a": 1}, reply)
    broker.refuse_replies = True
    worker.process_batch(broker.receive(10, 0))
    assert broker.deleted == [] and broker.visibility


def test_a_vanished_reply_queue_puts_the_result_in_the_store(loop):
    broker, store, worker = loop
    job_id = send(broker, "add", {"a": 4, "b": 5}, broker.reply_prefix + "gone")
    worker.process_batch(broker.receive(10, 0))
    assert store.result(job_id).value == {"sum": 9} and len(broker.deleted) == 1


def test_the_last_failed_attempt_answers_internal_and_dead_letters(loop):
    broker, store, worker = loop
    reply = broker.reply_queue()
    job_id = send(broker, "flaky", {}, reply, receive_count=3)
    worker.process_batch(broker.receive(10, 0))
    [result] = broker.results(reply)
    assert (result.job_id, result.error_code) == (job_id, wire.INTERNAL)
    [(body, reason)] = broker.dead
    assert wire.decode_job(body).job_id == job_id and "connection reset" in reason
    assert store.result(job_id) == result  # the stand-in was replaced by the real answer


def test_a_slow_jobs_result_is_sent_before_the_next_job_starts(loop):
    broker, store, worker = loop
    events = []

    def slow(ctx):  # runs in the work horse: it reports its start in its value
        started = time.monotonic()
        time.sleep(0.25)
        return registry.Output({"started": started})

    worker.executor = Executor(store, identity="t", kinds={
        "slow": registry.Kind(name="slow", summary="sleeps", run=slow)})
    worker._job_seconds = 0.25  # as measured on earlier batches
    reply = broker.reply_queue()
    for _ in range(2):
        send(broker, "slow", {}, reply)
    send_results = broker.send_results
    broker.send_results = lambda q, b: (
        result_count(b) and events.append((time.monotonic(), result_count(b)))) or (
        send_results(q, b))
    worker.process_batch(broker.receive(10, 0))
    starts = sorted(float(r.value["started"]) for r in broker.results(reply))
    sends = [t for t, _ in events]
    assert [n for _, n in events] == [1, 1]
    assert starts[0] < sends[0] < starts[1] < sends[1]
