"""The web tier's dead-letter API against in-process moto: the documents are the CLI's.

Dead letters are made as tests/test_dlq.py makes them: SQS itself moves a job that ran out
of receives (the request queue has a redrive policy of 3), the worker's broker moves one
with its reason, and a body that is not a job is unreadable.
"""

import json

import boto3
import pytest
from moto import mock_aws

from client import api, cli, cli_dlq, dlq
from tests.test_dlq import exhaust_receives, job_body, requests, to_dlq
from tests.web_support import AUTH, BASE, PORT, STACK, TOKEN
from worker_src import contract, wire
from worker_src.contract import MessageAttribute

# The fixtures web and session_and_http (over this module's stack).
pytest_plugins = ["tests.web_fixtures"]


@pytest.fixture
def stack(monkeypatch):
    """The stack's queues (with the request queue's redrive policy) and bucket."""
    monkeypatch.setattr(dlq, "WAIT_SECONDS", 0)  # in-process moto: a short poll sees all
    with mock_aws():
        sqs = boto3.client("sqs")
        dead = sqs.create_queue(QueueName=f"{STACK}-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": arn,
                             "maxReceiveCount": contract.MAX_RECEIVE_COUNT})
        queue = sqs.create_queue(QueueName=f"{STACK}-requests", Attributes={
            "RedrivePolicy": policy, "VisibilityTimeout": "30"})["QueueUrl"]
        boto3.client("s3").create_bucket(Bucket=f"{STACK}-bucket")
        yield api.StackInfo(name=STACK, request_queue_url=queue, dead_letter_queue_url=dead,
                            bucket=f"{STACK}-bucket", reply_queue_prefix=f"{STACK}_reply_")


@pytest.fixture
def client(stack):
    with api.Client(boto3.Session(), stack) as client:
        yield client


def cli_json(monkeypatch, capsys, client, *argv):
    monkeypatch.setattr(cli_dlq, "connect", lambda _args: client)
    capsys.readouterr()
    code = cli.main(["dlq", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def dead_job_ids(client):
    return [letter.job_id for letter in dlq.list_dead_letters(client).dead_letters]


def test_the_listing_is_the_document_of_dlq_list_json(client, web, monkeypatch, capsys):
    moved, answered = wire.new_job_id(), wire.new_job_id()
    exhaust_receives(client, job_body(moved, submitted_at=1_700_000_000.25))
    to_dlq(client, job_body(answered), "internal: ConnectionError: reset")
    to_dlq(client, "not json {", "bad_input: the job message is not valid JSON")
    response = web.get("/api/dlq", headers=AUTH)
    assert response.status_code == 200
    document = response.json()
    assert (0, document) == cli_json(monkeypatch, capsys, client, "list")
    assert document["count"] == 3 and document["truncated"] is False
    by_job = {entry["job_id"]: entry for entry in document["dead_letters"]}
    assert set(by_job) == {moved, answered, None}
    assert (by_job[moved]["kind"], by_job[moved]["submitted_at"], by_job[moved]["receives"],
            by_job[moved]["reason"]) == ("stats", 1_700_000_000.25, 3,
                                         "received 3 times without an answer")
    assert by_job[None]["readable"] is False
    assert web.get("/api/dlq", headers=AUTH).json() == document  # nothing consumed


def test_a_redriven_job_is_back_on_the_request_queue_and_the_other_stays(client, web):
    chosen, other = wire.new_job_id(), wire.new_job_id()
    for job_id in (chosen, other):
        exhaust_receives(client, job_body(job_id))
    response = web.post("/api/dlq/redrive", headers=AUTH, json={"ids": [chosen]})
    assert response.status_code == 200, response.text
    assert response.json() == dlq.RedriveReport("send-delete", redriven=[chosen]).document()
    [message] = requests(client)
    assert wire.decode_job(message["Body"]).job_id == chosen
    assert message["MessageAttributes"][MessageAttribute.REDRIVEN]["StringValue"] == "1"
    assert dead_job_ids(client) == [other]


def test_all_refuses_the_unreadable_one_which_force_then_redrives(client, web):
    job_id = wire.new_job_id()
    exhaust_receives(client, job_body(job_id))
    to_dlq(client, "not json {", "bad_input: not JSON")
    [unreadable] = [d for d in dlq.list_dead_letters(client).dead_letters if not d.readable]
    report = web.post("/api/dlq/redrive", headers=AUTH, json={"all": True}).json()
    assert report["method"] == "send-delete" and report["redriven"] == [job_id]
    [refused] = report["refused"]
    assert refused["id"] == unreadable.message_id and "not a job message" in refused["why"]
    assert [wire.decode_job(m["Body"]).job_id for m in requests(client)] == [job_id]
    forced = web.post("/api/dlq/redrive", headers=AUTH,
                      json={"ids": [unreadable.message_id], "force": True}).json()
    assert forced["redriven"] == [unreadable.message_id] and forced["refused"] == []
    assert [m["Body"] for m in requests(client)] == ["not json {"]
    assert dead_job_ids(client) == []


def test_an_unknown_id_is_404_and_a_known_one_beside_it_goes_back(client, web):
    job_id, unknown = wire.new_job_id(), wire.new_job_id()
    exhaust_receives(client, job_body(job_id))
    response = web.post("/api/dlq/redrive", headers=AUTH, json={"ids": [unknown]})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found" and unknown in error["message"]
    assert dead_job_ids(client) == [job_id] and requests(client) == []
    both = web.post("/api/dlq/redrive", headers=AUTH, json={"ids": [job_id, unknown]})
    assert both.status_code == 200
    assert (both.json()["redriven"], both.json()["missing"]) == ([job_id], [unknown])


@pytest.mark.parametrize(("body", "message"), [
    ({}, "not both"),
    ({"ids": ["x"], "all": True}, "not both"),
    ({"all": False}, "not both"),
    ({"ids": []}, "ids must be a non-empty list"),
    ({"ids": "abc"}, "ids must be a non-empty list"),
    ({"ids": ["ok", 7]}, "item 2 of ids (7) is not an id"),
    ({"ids": [" "]}, "item 1 of ids"),
    ({"all": "yes"}, "all and force must be true or false"),
    ({"all": True, "force": 1}, "all and force must be true or false"),
    ({"all": True, "every": True}, "unknown field(s) every"),
    (["x"], 'the body must be {"ids"'),
])
def test_a_bad_body_is_400_naming_the_problem_and_redrives_nothing(client, web, body,
                                                                   message):
    job_id = wire.new_job_id()
    exhaust_receives(client, job_body(job_id))
    response = web.post("/api/dlq/redrive", headers=AUTH, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_input" and message in error["message"], error
    assert dead_job_ids(client) == [job_id] and requests(client) == []


def test_a_body_that_is_not_json_is_400(web):
    response = web.post("/api/dlq/redrive", headers={**AUTH, "Content-Type": "application/json"},
                        content=b"{all")
    assert response.status_code == 400 and "must be JSON" in response.json()["error"]["message"]


def test_a_foreign_origin_or_a_bare_cookie_gets_403_and_nothing_is_redriven(client, web):
    job_id = wire.new_job_id()
    exhaust_receives(client, job_body(job_id))
    for headers in ({**AUTH, "Origin": "http://evil.example"},
                    {**AUTH, "Origin": f"http://127.0.0.1:{PORT + 1}"},
                    {"Cookie": f"wqw_token_{PORT}={TOKEN}"}):
        response = web.post("/api/dlq/redrive", headers=headers, json={"all": True})
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"
    for path in ("/api/dlq", "/api/dlq/redrive"):
        assert web.request("GET" if path == "/api/dlq" else "POST", path,
                           json={"all": True}).status_code == 401
    assert dead_job_ids(client) == [job_id] and requests(client) == []
    same_origin = web.post("/api/dlq/redrive", json={"all": True}, headers={
        "Cookie": f"wqw_token_{PORT}={TOKEN}", "Origin": BASE})
    assert same_origin.status_code == 200 and same_origin.json()["redriven"] == [job_id]


def test_hostile_dead_letters_keep_the_listing_and_the_status_working(client, web):
    from tests.test_dlq import hostile_bodies

    good = wire.new_job_id()
    exhaust_receives(client, job_body(good))
    hostile = hostile_bodies()
    for body in hostile.values():
        exhaust_receives(client, body)
    document = web.get("/api/dlq", headers=AUTH).json()
    entries = document["dead_letters"]
    assert document["count"] == 6 and [e["job_id"] for e in entries if e["readable"]] == [good]
    sizes = sorted(e["size"] for e in entries if not e["readable"])
    assert sizes == sorted(len(body.encode()) for body in hostile.values())
    assert all(e["preview"] and e["message_id"] for e in entries if not e["readable"])
    status = web.get("/api/status", headers=AUTH)
    assert status.status_code == 200 and status.json()["dead_letters"] == 6
    redrive = web.post("/api/dlq/redrive", headers=AUTH, json={"ids": [good]}).json()
    assert redrive["redriven"] == [good]
