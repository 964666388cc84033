"""The lifecycle pieces through their seams: the loop with an in-memory broker and store,
a kind's progress callback, the CLI's progress line, the metric line of a cancelled job."""

import io
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.cli_output import Progress
from tests.fakes import memory_loop
from worker_src import contract, metrics, registry, wire
from worker_src import wire_lifecycle as lw
from worker_src.broker import Message
from worker_src.executor import Executor
from worker_src.jobs._stats_compute import from_file
from worker_src.store import MemoryFile, MemoryStore

TRACE = {}  # "path": the file each call of `record` appends to (from its work horse child)


def record(ctx):
    with open(TRACE["path"], "a") as trace:
        trace.write(f"{ctx.args['n']}\n")
    return registry.Output({"n": ctx.args["n"]})


def calls():
    path = TRACE["path"]
    return [int(line) for line in path.read_text().split()] if path.exists() else []


KINDS = {"record": registry.Kind(name="record", summary="records its calls", run=record,
                                 args=(registry.Arg("n", registry.INT, "n"),))}


@pytest.fixture
def loop(tmp_path):
    TRACE["path"] = tmp_path / "calls"
    return memory_loop(KINDS)


def put_job(broker, n, reply_to, *, sent_ago=0.0):
    job_id = wire.new_job_id()
    body = wire.encode_job(wire.Job(job_id=job_id, kind="record", args={"n": n},
                                    reply_to=reply_to, submitted_at=time.time() - sent_ago))
    broker.waiting.append(Message(f"m{n}", body, f"r{n}", 1, sent_at=time.time() - sent_ago))
    return job_id


def decoded(bodies):
    results = [wire.decode_result(b) for b in bodies if lw.message_type(b) is None]
    answers = [lw.decode_answer(b) for b in bodies if lw.message_type(b) == lw.CANCEL_ANSWER]
    return results, answers


def test_a_cancel_in_the_batch_stops_its_job_before_it_runs(loop):
    broker, store, worker = loop
    reply, canceller = broker.reply_queue(), broker.reply_queue()
    keep, drop = put_job(broker, 1, reply), put_job(broker, 2, reply)
    finished_before = wire.new_job_id()
    worker.lifecycle.finished(finished_before, "ok")
    unseen = wire.new_job_id()
    broker.put(lw.encode_cancel(lw.Cancel((drop, finished_before, unseen), canceller, 1.0)))
    worker.process_batch(broker.receive(10, 0))
    results, _ = decoded(broker.replies[reply])
    assert {r.job_id: r.error_code for r in results} == {keep: None, drop: wire.CANCELLED}
    assert calls() == [1]  # the cancelled job's function never ran
    _, answers = decoded(broker.replies[canceller])
    assert [(a.job_id, a.outcome) for a in answers] == [
        (drop, lw.CANCELLED), (finished_before, lw.FINISHED), (unseen, lw.RECORDED)]
    assert store.result(drop).error_code == wire.CANCELLED  # the canceller reads it there
    assert len(broker.deleted) == 3 and worker.lifecycle.marker_checks == 0
    # A job the cancel named but that came later is never run either.
    put_job(broker, 3, reply)
    broker.waiting[-1] = Message("m9", broker.waiting[-1].body.replace(
        json.loads(broker.waiting[-1].body)["job_id"], unseen), "r9", 1, sent_at=time.time())
    worker.process_batch(broker.receive(10, 0))
    assert calls() == [1] and decoded(broker.replies[reply])[0][-1].error_code == wire.CANCELLED


def test_the_marker_is_read_only_for_jobs_whose_cancel_may_have_been_missed(loop):
    broker, store, worker = loop
    reply = broker.reply_queue()
    fresh = put_job(broker, 1, reply)
    old = put_job(broker, 2, reply, sent_ago=30)
    store.put(contract.cancel_key(old), b"{}", "application/json")
    store.put(contract.cancel_key(fresh), b"{}", "application/json")  # missed: a fresh job
    worker.process_batch(broker.receive(10, 0))
    results, _ = decoded(broker.replies[reply])
    assert {r.job_id: r.error_code for r in results} == {fresh: None, old: wire.CANCELLED}
    assert worker.lifecycle.marker_checks == 1 and calls() == [1]


def test_a_malformed_cancel_message_is_dead_lettered_alone(loop):
    broker, _store, worker = loop
    reply = broker.reply_queue()
    job = put_job(broker, 1, reply)
    broker.put('{"version": 1, "type": "cancel", "job_ids": ["x"]}')
    worker.process_batch(broker.receive(10, 0))
    assert [r.job_id for r in decoded(broker.replies[reply])[0]] == [job]
    assert len(broker.deleted) == 2
    [(body, reason)] = broker.dead
    assert "cancel" in body and reason.startswith("bad_input:")
    assert "lacks the field(s) reply_to, sent_at" in reason


def test_the_executor_hands_a_kind_the_work_horses_progress_callback():
    def halfway(ctx):
        ctx.progress(0.5)
        return registry.Output({"n": ctx.args["n"]})

    kinds = {"p": registry.Kind(name="p", summary="", run=halfway,
                                args=(registry.Arg("n", registry.INT, "n"),))}
    job = wire.Job(job_id=wire.new_job_id(), kind="p", args={"n": 3}, reply_to=None,
                   submitted_at=1.0)
    seen = []
    computed = Executor(MemoryStore(), identity="t", kinds=kinds).in_work_horse(job, seen.append)
    assert seen == [0.5] and computed.output.value == {"n": 3}


def test_stats_reports_progress_by_passes_and_bytes_read():
    text = " ".join(str(n) for n in range(300_000)).encode()
    seen = []
    value, passes = from_file(MemoryFile("inputs/j/n.txt", text), 1 << 30, seen.append)
    assert passes == 1 and value["count"] == 300_000
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(set(seen)) >= 2
    seen.clear()
    _value, passes = from_file(MemoryFile("inputs/j/n.txt", text), 64 * 1024, seen.append)
    assert passes > 1 and seen == sorted(seen) and 0.5 < seen[-1] <= 1.0


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_line_counts_queued_running_and_done():
    stream = Tty()
    progress = Progress(5, stream=stream)
    progress.stage("running")
    progress.show_running(2)
    progress.tick(None)
    assert stream.getvalue().rsplit("\r", 1)[-1].startswith("running")
    assert "2 queued · 2 running · 1 done" in stream.getvalue().rsplit("\r", 1)[-1]


def test_the_metric_line_records_cancellations_and_time_limits_by_kind():
    for code in (wire.CANCELLED, wire.TIME_LIMIT):
        result = wire.error_result(wire.new_job_id(), code, "stopped", worker="t", attempt=1)
        document = metrics.job_metrics("ns", "stats", result, None)
        assert (document["Kind"], document["Outcome"]) == ("stats", code)
        assert ["Kind", "Outcome"] in document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]


@pytest.mark.parametrize("kind_name", ["equalize", "clahe"])
def test_image_kinds_report_progress_by_strips(kind_name, monkeypatch):
    from PIL import Image

    from worker_src.jobs import _clahe, _tables

    monkeypatch.setattr(_tables, "STRIP_PIXELS", 64 * 16)
    monkeypatch.setattr(_clahe, "STRIP_PIXELS", 64 * 16)
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((64, 64)).save(buffer, "PNG")
    kind = registry.kinds()[kind_name]
    seen = []
    limits = registry.Limits(max_input_bytes=1 << 20, max_pixels=1 << 20)
    kind.run(registry.JobContext(kind.check_args({"image": "x"}), {"image": MemoryFile(
        "inputs/j/g.png", buffer.getvalue())}, limits, seen.append))
    assert seen == [0.25, 0.5, 0.75, 1.0]


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
FIELDS = st.sampled_from(["version", "job_ids", "reply_to", "sent_at", "extra"])
IDS = st.lists(st.uuids().map(str) | st.text(max_size=40), max_size=120)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.dictionaries(FIELDS, JSON | IDS, max_size=5), job_ids=IDS)
def test_any_cancel_shaped_message_is_taken_or_dead_lettered_alone(tmp_path_factory, body,
                                                                   job_ids):
    TRACE["path"] = tmp_path_factory.mktemp("fuzz") / "calls"
    broker, store, worker = memory_loop(KINDS)
    reply = broker.reply_queue()
    job = put_job(broker, 1, reply)
    message = {"type": "cancel", "job_ids": job_ids, **body}
    broker.put(json.dumps(message))
    worker.process_batch(broker.receive(10, 0))
    [result] = decoded(broker.replies[reply])[0]
    assert result.job_id == job and (result.ok or result.error_code == wire.CANCELLED)
    assert len(broker.deleted) == 2  # both acknowledged: nothing held, nothing retried
    assert all(reason.startswith("bad_input: ") for _body, reason in broker.dead)
