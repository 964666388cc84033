"""The per-job metric line against the Embedded Metric Format's required structure.

The reference is the specification itself (CloudWatch User Guide, "Specification: Embedded
metric format"), written down here as a JSON Schema plus the rules a schema cannot say (every
name a directive refers to is a member of the root node, of the right type), not the code under
test. Values are compared with the timing of the result the client received.
"""

import json
import logging

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import memory_loop, memory_worker
from worker_src import contract, metrics, registry, wire

NAMESPACE = "WebQueueWorker/wqw-test"
# MetricDatum's units (the specification refers to them).
UNITS = ["Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes",
         "Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
         "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
         "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second",
         "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"]
EMF_SCHEMA = {
    "type": "object",
    "required": ["_aws"],
    "properties": {"_aws": {
        "type": "object",
        "required": ["Timestamp", "CloudWatchMetrics"],
        "properties": {
            "Timestamp": {"type": "integer", "minimum": 0},
            "CloudWatchMetrics": {"type": "array", "minItems": 1, "items": {
                "type": "object",
                "required": ["Namespace", "Dimensions", "Metrics"],
                "additionalProperties": False,
                "properties": {
                    "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
                    "Dimensions": {"type": "array", "items": {
                        "type": "array", "maxItems": 30, "items": {"type": "string",
                                                                   "minLength": 1}}},
                    "Metrics": {"type": "array", "maxItems": 100, "items": {
                        "type": "object", "required": ["Name"], "additionalProperties": False,
                        "properties": {
                            "Name": {"type": "string", "minLength": 1, "maxLength": 1024},
                            "Unit": {"enum": UNITS},
                            "StorageResolution": {"enum": [1, 60]}}}},
                }}},
        }}},
}


VALIDATOR = jsonschema.Draft202012Validator(EMF_SCHEMA)


def check_emf(line: str) -> dict:
    """Parse one log line as an EMF document; fail unless it follows the specification."""
    assert line == line.strip() and line.startswith("{") and line.endswith("}")
    document = json.loads(line)
    VALIDATOR.validate(document)
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for name in dimension_set:
                value = document.get(name)
                assert isinstance(value, str) and 0 < len(value) <= 1024, name
        names = [metric["Name"] for metric in directive["Metrics"]]
        assert len(names) == len(set(names))
        for name in names:
            value = document.get(name)
            assert (isinstance(value, (int, float)) and not isinstance(value, bool)), name
    return document


def declared(document: dict) -> dict[str, str]:
    [directive] = document["_aws"]["CloudWatchMetrics"]
    return {metric["Name"]: metric["Unit"] for metric in directive["Metrics"]}


def copy(ctx):
    return registry.Output({"bytes": len(ctx.files["data"].read())})


KINDS = {"copy": registry.Kind(name="copy", summary="reads a file", run=copy,
                               args=(registry.Arg("data", registry.FILE, "the file"),),
                               main_input="data")}


@pytest.fixture
def loop():
    return memory_loop(KINDS, metric_namespace=NAMESPACE)


@pytest.fixture
def lines():
    """The metric lines the worker logs, as written."""
    captured: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            captured.append(record.getMessage())

    logger = metrics.metric_logger()
    handler = Capture()
    logger.addHandler(handler)
    yield captured
    logger.removeHandler(handler)


def send(broker, kind, args, reply_to, submitted_at=1.0, body=None):
    job_id = wire.new_job_id()
    broker.put(body or wire.encode_job(wire.Job(job_id=job_id, kind=kind, args=args,
                                                reply_to=reply_to,
                                                submitted_at=submitted_at)))
    return job_id


def test_every_job_writes_one_line_with_its_own_timing_and_input_size(loop, lines):
    broker, store, worker = loop
    reply = broker.reply_queue()
    data = bytes(range(256)) * 37
    job_ids = []
    for size in (0, 1, len(data)):
        job_id = wire.new_job_id()
        store.put(contract.input_key(job_id, "d.bin"), data[:size], "application/octet-stream")
        broker.put(wire.encode_job(wire.Job(job_id=job_id, kind="copy",
                                            args={"data": contract.input_key(job_id, "d.bin")},
                                            reply_to=reply, submitted_at=1.0)))
        job_ids.append(job_id)
    worker.process_batch(broker.receive(10, 0))
    received = {r.job_id: r for r in broker.results(reply)}
    documents = [check_emf(line) for line in lines]
    assert [d["JobId"] for d in documents] == job_ids
    for document, size in zip(documents, (0, 1, len(data)), strict=True):
        result = received[document["JobId"]]
        assert result.ok and result.value == {"bytes": size}
        assert declared(document) == {"QueuedSeconds": "Seconds", "FetchSeconds": "Seconds",
                                      "RunSeconds": "Seconds", "StoreSeconds": "Seconds",
                                      "InputBytes": "Bytes", "Jobs": "Count"}
        assert {name: document[name] for name in ("QueuedSeconds", "FetchSeconds",
                                                  "RunSeconds", "StoreSeconds")} == {
            "QueuedSeconds": result.timing["queued_s"], "FetchSeconds": result.timing["fetch_s"],
            "RunSeconds": result.timing["run_s"], "StoreSeconds": result.timing["store_s"]}
        assert (document["InputBytes"], document["Jobs"]) == (size, 1)
        assert (document["Kind"], document["Outcome"]) == ("copy", "ok")
        assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == NAMESPACE
        assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Kind", "Outcome"],
                                                                          ["Kind"]]
        assert document["Attempt"] == result.attempt == 1


def test_a_failed_job_counts_under_its_error_code_with_the_steps_it_reached(loop, lines):
    broker, _store, worker = loop
    reply = broker.reply_queue()
    missing = send(broker, "copy", {"data": "inputs/x/nothing"}, reply)  # not its own key
    worker.process_batch(broker.receive(10, 0))
    [result] = broker.results(reply)
    [document] = [check_emf(line) for line in lines]
    assert (result.job_id, result.error_code) == (missing, wire.BAD_INPUT)
    assert (document["Kind"], document["Outcome"], document["Jobs"]) == ("copy", "bad_input", 1)
    assert set(declared(document)) == {"QueuedSeconds", "InputBytes", "Jobs"}
    assert document["QueuedSeconds"] == result.timing["queued_s"]


def test_kinds_no_worker_runs_share_one_dimension_value(loop, lines):
    broker, _store, worker = loop
    reply = broker.reply_queue()
    for kind in ("nosuchkind", "another_bogus_kind"):
        send(broker, kind, {}, reply)
    send(broker, None, None, reply, body='{"version": 1, "kind": "copy"}')  # no job id: no line
    worker.process_batch(broker.receive(10, 0))
    documents = [check_emf(line) for line in lines]
    assert [(d["Kind"], d["Outcome"]) for d in documents] == [("unknown", "bad_input")] * 2


def test_no_namespace_no_line(loop, lines):
    broker, store, _worker = loop
    worker = memory_worker(broker, store, KINDS)  # no metric_namespace
    send(broker, "nosuchkind", {}, broker.reply_queue())
    worker.process_batch(broker.receive(10, 0))
    assert len(broker.deleted) == 1 and lines == []


def test_the_line_is_bare_json_on_stdout_apart_from_the_timestamped_log(loop, capsys):
    broker, _store, worker = loop
    log = logging.getLogger("worker")  # a timestamped handler on stderr, as main() sets up
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        send(broker, "nosuchkind", {}, broker.reply_queue())
        worker.process_batch(broker.receive(10, 0))
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    out, err = capsys.readouterr()
    [line] = out.splitlines()
    assert check_emf(line)["Outcome"] == "bad_input"
    assert "_aws" not in err and "job " in err


TIMING_KEYS = ("queued_s", "fetch_s", "run_s", "store_s")


@settings(deadline=None)  # a shared, loaded machine: no per-example time limit
@given(timing=st.dictionaries(st.sampled_from(TIMING_KEYS),
                              st.floats(min_value=0, max_value=1e6, allow_nan=False)),
       outcome=st.sampled_from((None, *wire.ERROR_CODES)),
       input_bytes=st.one_of(st.none(), st.integers(min_value=0, max_value=2**40)),
       stamp=st.floats(min_value=1e9, max_value=4e9))
def test_any_timing_gives_a_valid_document_with_exactly_those_values(timing, outcome,
                                                                       input_bytes, stamp):
    job_id = wire.new_job_id()
    result = (wire.ok_result(job_id, {}, timing=timing) if outcome is None
              else wire.error_result(job_id, outcome, "x", timing=timing))
    line = json.dumps(metrics.job_metrics(NAMESPACE, "stats", result, input_bytes,
                                          timestamp=stamp), separators=(",", ":"))
    document = check_emf(line)
    names = dict(zip(TIMING_KEYS, ("QueuedSeconds", "FetchSeconds", "RunSeconds",
                                   "StoreSeconds"), strict=True))
    expected = {names[key]: value for key, value in timing.items()}
    if input_bytes is not None:
        expected["InputBytes"] = input_bytes
    expected["Jobs"] = 1
    assert {name: document[name] for name in declared(document)} == expected
    assert document["Outcome"] == (outcome or "ok")
    assert document["_aws"]["Timestamp"] == int(stamp * 1000)


def test_the_checker_refuses_what_the_specification_refuses():
    good = metrics.job_metrics(NAMESPACE, "stats", wire.ok_result(wire.new_job_id(), {},
                                                                  timing={"run_s": 1.5}), 3)
    check_emf(json.dumps(good))
    broken = [
        {k: v for k, v in good.items() if k != "RunSeconds"},  # a metric without its member
        {k: v for k, v in good.items() if k != "Kind"},  # a dimension without its member
        {**good, "RunSeconds": "1.5"},  # a metric that is not a number
        {**good, "_aws": {"CloudWatchMetrics": good["_aws"]["CloudWatchMetrics"]}},
    ]
    for document in broken:
        with pytest.raises((AssertionError, jsonschema.ValidationError)):
            check_emf(json.dumps(document))
    with pytest.raises(AssertionError):
        check_emf("2026-01-01 12:00:00 INFO " + json.dumps(good))  # a prefixed line
