"""The wire format: round trips, rejections, and agreement with the documented JSON Schema."""

import json
from pathlib import Path

import jsonschema
import pytest

from worker_src import wire

SCHEMA = json.loads((Path(__file__).parent.parent / "docs/wire-format.schema.json").read_text())
JOB_SCHEMA = {**SCHEMA, **SCHEMA["$defs"]["job"]}
RESULT_SCHEMA = {**SCHEMA, **SCHEMA["$defs"]["result"]}
JOB_ID = "0b7f3c1e-5a4d-4e8b-9c2f-1d6a7b8c9d0e"
REPLY = "https://sqs.us-east-1.amazonaws.com/123456789012/web-queue-worker-reply-abc"


def job(**changes):
    fields = dict(job_id=JOB_ID, kind="stats", args={"numbers": [3, -1, 10**50]},
                  reply_to=REPLY, submitted_at=1764219000.25)
    fields.update(changes)
    return wire.Job(**fields)


@pytest.mark.parametrize("message", [
    job(),
    job(reply_to=None),
    job(kind="equalize", args={"image": f"inputs/{JOB_ID}/a.png"}),
    job(kind="a_plugin_kind_2", args={}),
    job(args=None, args_key=f"inputs/{JOB_ID}/args.json"),
])
def test_job_round_trip_matches_schema(message):
    text = wire.encode_job(message)
    jsonschema.validate(json.loads(text), JOB_SCHEMA)
    assert wire.decode_job(text) == message


@pytest.mark.parametrize("result", [
    wire.ok_result(JOB_ID, {"count": 2, "average": 1.5}, timing={"queued_s": 0.1, "run_s": 0.0},
                   worker="host:1", attempt=1),
    wire.ok_result(JOB_ID, {"output_key": f"outputs/{JOB_ID}/a-equalize.png"},
                   timing={"queued_s": 0.1, "fetch_s": 0.01, "run_s": 0.2, "store_s": 0.01}),
    wire.error_result(JOB_ID, wire.BAD_INPUT, "item 2 ('x') is not an integer", attempt=3),
])
def test_result_round_trip_matches_schema(result):
    text = wire.encode_result(result)
    jsonschema.validate(json.loads(text), RESULT_SCHEMA)
    assert wire.decode_result(text) == result


def test_integers_with_thousands_of_digits_survive():
    big = -(7 ** 20000)  # about 17,000 digits, past CPython's default 4,300-digit limit
    decoded = wire.decode_job(wire.encode_job(job(args={"numbers": [big, 1]})))
    assert decoded.args["numbers"][0] == big


def body(**changes):
    base = json.loads(wire.encode_job(job()))
    base.update(changes)
    return json.dumps({k: v for k, v in base.items() if v is not DROP})


DROP = object()


@pytest.mark.parametrize("text, fragment", [
    ("{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (body(version=2), "unsupported wire version 2"),
    (body(version=DROP), "unsupported wire version None"),
    (body(kind="Resize!"), "kind must be a job kind's name"),
    (body(kind=7), "kind must be a job kind's name"),
    (body(kind=DROP), "missing field(s): kind"),
    (body(job_id="42"), "job_id must be a UUID"),
    (body(extra=1), "unknown field(s): extra"),
    (body(args=DROP), "exactly one of 'args' and 'args_key'"),
    (body(args_key="inputs/x"), "exactly one of 'args' and 'args_key'"),
    (body(args=[1, 2]), "args must be a JSON object"),
    (body(reply_to=5), "reply_to must be a queue URL or null"),
    (body(submitted_at="yesterday"), "submitted_at must be a number"),
    (body(submitted_at=True), "submitted_at must be a number"),
])
def test_malformed_jobs_are_rejected_with_a_reason(text, fragment):
    with pytest.raises(wire.WireError) as error:
        wire.decode_job(text)
    assert error.value.code == wire.BAD_INPUT
    assert fragment in error.value.message


def test_rejection_keeps_what_the_worker_needs_to_reply():
    with pytest.raises(wire.WireError) as error:
        wire.decode_job(body(kind="no such kind"))
    assert (error.value.job_id, error.value.reply_to) == (JOB_ID, REPLY)


@pytest.mark.parametrize("changes, fragment", [
    ({"ok": "yes"}, "missing field(s): error"),
    ({"job_id": "x"}, "job_id must be a UUID"),
    ({"value": 3}, "value must be a JSON object"),
    ({"version": 0}, "unsupported wire version 0"),
])
def test_malformed_results_are_rejected(changes, fragment):
    text = json.loads(wire.encode_result(wire.ok_result(JOB_ID, {"count": 1})))
    text.update(changes)
    with pytest.raises(wire.WireError) as error:
        wire.decode_result(json.dumps(text))
    assert fragment in error.value.message


def test_error_codes_are_the_documented_ones():
    documented = SCHEMA["$defs"]["result"]["properties"]["error"]["properties"]["code"]["enum"]
    assert list(wire.ERROR_CODES) == documented
    assert SCHEMA["$defs"]["job"]["properties"]["kind"]["pattern"] == (
        f"^{wire.KIND_NAME.pattern}$")
    with pytest.raises(ValueError):
        wire.JobError("oops", "not a code")
