"""A fuzzer: generated and mutated job messages through the decoder and the worker loop.

Valid jobs mutated field by field and token by token, arbitrary JSON, arbitrary text and
bytes. The decoder ends in a job or wire.WireError; in the loop (in-memory broker and
store, the real kinds, the work horse), each message ends answered or dead-lettered with
a reason, its good batch-mate answered, nothing held, no exception escaping.

WQW_FUZZ_EXAMPLES sets the examples per test (default: a few seconds' worth);
WQW_FUZZ_REPORT, a file to which the inputs tried and the slowest decode are written.
"""

import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes import memory_worker
from worker_src import contract, registry, wire
from worker_src.broker import NOT_SQS_TEXT, MemoryBroker, check_sqs_text
from worker_src.store import MemoryStore
from worker_src.worker import Worker

EXAMPLES = int(os.environ.get("WQW_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
REPLY_PREFIX = "https://sqs.local/123/stack-reply-"
FIELDS = ("version", "job_id", "kind", "args", "args_key", "reply_to", "submitted_at")

# Inputs decoded (all tests), through the loop, and how those ended (lost and held are
# asserted to stay 0).
TALLY = {"inputs": 0, "loop": 0, "answered": 0, "dead-lettered": 0, "lost": 0, "held": 0,
         "slowest decode": 0.0, "slowest input": ""}


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if os.environ.get("WQW_FUZZ_REPORT"):
        Path(os.environ["WQW_FUZZ_REPORT"]).write_text(json.dumps(TALLY) + "\n")


# ---- what is generated ----------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
           | st.text(max_size=20) | st.sampled_from([10**400, -(2**70), 1e308, 0.5, ""]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=5),
                           max_leaves=25)
# Tokens that broke decoders before: long digit runs, deep nesting, odd constants, controls.
lengths = st.integers(1, 5000) | st.sampled_from([wire.MAX_INTEGER_DIGITS,
                                                  wire.MAX_INTEGER_DIGITS + 1, 1_000_000])
depths = st.integers(1, 40) | st.sampled_from([wire.MAX_JSON_DEPTH + 1, 1000, 100_000])
hostile_tokens = st.one_of(
    lengths.map(lambda n: "9" * n),
    depths.map(lambda n: "[" * n),
    depths.map(lambda n: "[" * n + "]" * n),
    st.sampled_from(["NaN", "-Infinity", "1e999999", "-0", "\\ud800", "\"\\u0000\"", "\x00",
                     "\n{\"_aws\":{}}\n", "\ufeff", "}", "\"", ",", "null", "1" * 4301]),
)


def valid_job(kind: str = "stats") -> dict:
    args = {"numbers": [3, 1, 2]} if kind == "stats" else {}
    return {"version": 1, "job_id": wire.new_job_id(), "kind": kind, "args": args,
            "reply_to": f"{REPLY_PREFIX}0", "submitted_at": 1.0}


@st.composite
def field_mutations(draw):
    """A valid job with one field replaced, removed or added."""
    body = valid_job(draw(st.sampled_from(sorted(registry.kinds()))))
    field = draw(st.sampled_from(FIELDS + ("extra",)))
    action = draw(st.sampled_from(["replace", "remove", "args"]))
    if action == "remove":
        body.pop(field, None)
    elif action == "args":
        body["args"] = draw(st.dictionaries(st.sampled_from(["numbers", "file", "image", "gamma",
                                                              "x"]), json_values, max_size=3))
    else:
        body[field] = draw(json_values)
    return json.dumps(body)


@st.composite
def token_mutations(draw):
    """A valid job's text with a hostile token inserted or a span replaced."""
    text = json.dumps(valid_job())
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 8)))
    return text[:start] + draw(hostile_tokens) + text[end:]


messages = st.one_of(
    field_mutations(),
    token_mutations(),
    json_values.map(json.dumps),
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda data: data.decode("latin-1")),
)


# ---- the decoder ---------------------------------------------------------------------------

def decoded(body: str) -> wire.Job | wire.WireError:
    started = time.perf_counter()
    try:
        outcome: wire.Job | wire.WireError = wire.decode_job(body)
    except wire.WireError as exc:
        outcome = exc
    seconds = time.perf_counter() - started
    TALLY["inputs"] += 1
    if seconds > TALLY["slowest decode"]:
        TALLY["slowest decode"] = seconds
        TALLY["slowest input"] = f"{body[:40]!r} ({len(body):,} characters)"
    return outcome


@FUZZ
@given(messages)
def test_decoding_any_message_ends_in_a_job_or_a_wire_error(body):
    outcome = decoded(body)
    if isinstance(outcome, wire.WireError):
        assert outcome.code == wire.BAD_INPUT and outcome.message
        check_sqs_text(wire.printable(outcome.message))
    else:
        assert wire.decode_job(wire.encode_job(outcome)) == outcome


@FUZZ
@given(st.binary(max_size=2000))
def test_decoding_any_bytes_ends_in_a_job_or_a_wire_error(data):
    decoded(data)


# ---- the loop ------------------------------------------------------------------------------

_LOOP: dict = {}


def loop() -> tuple[MemoryBroker, MemoryStore, Worker]:
    """One worker for all examples (a fresh broker and store each time)."""
    broker, store = MemoryBroker(reply_prefix=REPLY_PREFIX), MemoryStore()
    broker.reply_queue()  # REPLY_PREFIX + "0", every generated job's reply queue
    if "worker" not in _LOOP:
        _LOOP["worker"] = memory_worker(broker, store, memory_budget_mb=64, time_limit_s=5)
    worker = _LOOP["worker"]
    worker.broker, worker.store, worker.executor.store = broker, store, store
    return broker, store, worker


def as_sqs_delivers(body: str) -> str:
    """A body SQS would accept (it refuses other characters at SendMessage)."""
    return NOT_SQS_TEXT.sub("\ufffd", body)


@FUZZ
@given(messages.map(as_sqs_delivers), st.integers(1, contract.MAX_RECEIVE_COUNT))
def test_in_the_loop_each_message_is_answered_or_dead_lettered_and_its_batch_mate_answered(
        body, receive_count):
    broker, store, worker = loop()
    good = valid_job()
    broker.put(json.dumps(good), receive_count)
    hostile = broker.put(body, receive_count)
    outcome = decoded(body)
    worker.process_batch(broker.receive(10, 0))

    TALLY["loop"] += 1
    assert worker._held == []
    results = {r.job_id: r for r in broker.results(f"{REPLY_PREFIX}0")}
    assert results[good["job_id"]].ok and results[good["job_id"]].value["median"] == 2
    dead = [reason for dead_body, reason in broker.dead if dead_body == body]
    answered = (isinstance(outcome, wire.Job) and (outcome.job_id in results or
                contract.result_key(outcome.job_id) in store.objects))
    if dead:
        TALLY["dead-lettered"] += 1
        assert dead[0].split(": ", 1)[0] in wire.ERROR_CODES and dead[0].split(": ", 1)[1]
    if answered:
        TALLY["answered"] += 1
    if isinstance(outcome, wire.Job):
        assert answered, "a decoded job got no result"
    else:
        assert dead, "an undecodable message was not dead-lettered"
    assert hostile.receipt in broker.deleted
