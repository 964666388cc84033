"""The lifecycle messages: round trips against the JSON Schema, refusals, old clients' view."""

import json
from pathlib import Path

import jsonschema
import pytest

from worker_src import wire
from worker_src import wire_lifecycle as lw

SCHEMA = json.loads((Path(__file__).parent.parent / "docs/wire-format.schema.json").read_text())
JOB_ID = "0b7f3c1e-5a4d-4e8b-9c2f-1d6a7b8c9d0e"


def schema(name):
    return {**SCHEMA, **SCHEMA["$defs"][name]}


@pytest.mark.parametrize("fraction", [None, 0.0, 0.5, 1.0])
def test_running_round_trip_matches_schema(fraction):
    running = lw.Running(JOB_ID, "host:1", 1764219000.5, 3.25, fraction)
    text = lw.encode_running(running)
    jsonschema.validate(json.loads(text), schema("running"))
    assert lw.decode_running(text) == running
    assert lw.message_type(text) == lw.RUNNING


def test_cancel_and_answer_round_trip_match_schema():
    cancel = lw.Cancel((JOB_ID,), "https://sqs.local/1/s-reply-x", 1764219001.0)
    text = lw.encode_cancel(cancel)
    jsonschema.validate(json.loads(text), schema("cancel"))
    assert lw.decode_cancel(text) == cancel
    answer = lw.CancelAnswer(JOB_ID, lw.FINISHED, "host:1", "kept")
    text = lw.encode_answer(answer)
    jsonschema.validate(json.loads(text), schema("cancel_answer"))
    assert lw.decode_answer(text) == answer
    assert SCHEMA["$defs"]["cancel_answer"]["properties"]["outcome"]["enum"] == list(lw.OUTCOMES)


@pytest.mark.parametrize("body, fragment", [
    ({"job_ids": []}, "job_ids must be a list of 1 to 100"),
    ({"job_ids": ["x"]}, "UUID"),
    ({"job_ids": [JOB_ID] * 101}, "job_ids must be a list of 1 to 100"),
    ({"sent_at": "now"}, "sent_at must be a number"),
    ({"version": 2}, "unsupported wire version 2"),
    ({"extra": 1}, "unknown field(s) 'extra'"),
])
def test_malformed_cancels_are_refused(body, fragment):
    message = {"version": 1, "type": "cancel", "job_ids": [JOB_ID], "reply_to": None,
               "sent_at": 1.0, **body}
    with pytest.raises(wire.WireError) as error:
        lw.decode_cancel(json.dumps(message))
    assert fragment in error.value.message


def test_an_old_client_drops_lifecycle_words_as_non_results():
    # A client that knows only results reads these as malformed results, which it drops.
    for text in (lw.encode_running(lw.Running(JOB_ID, "h", 1.0, 1.0)),
                 lw.encode_answer(lw.CancelAnswer(JOB_ID, lw.RECORDED, "h", "m"))):
        with pytest.raises(wire.WireError):
            wire.decode_result(text)


def test_a_job_or_junk_is_no_lifecycle_message():
    job = wire.encode_job(wire.Job(JOB_ID, "stats", {"numbers": [1]}, None, 1.0))
    assert [lw.message_type(t) for t in (job, "[[[", b"\xff", '{"type": "other"}')] == \
        [None] * 4
