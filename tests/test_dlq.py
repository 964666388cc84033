"""Dead letters against in-process moto: list, show, redrive (both ways), purge, and the CLI.

The queues are a stack's (CloudFormation in moto, redrive policy of 3 receives); SQS itself
moves a message that runs out of receives, so the listing's reasons are checked against
messages that really got there the way they do on AWS.
"""

import json
import time
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from client import api, cli, dlq
from tests.moto_stack import deploy, results_in
from worker_src import contract, wire
from worker_src.broker import SqsBroker
from worker_src.config import WorkerConfig
from worker_src.contract import MessageAttribute
from worker_src.store import S3Store
from worker_src.worker import Worker

STACK = "wqw-dlq"


class Killed(BaseException):
    """The redrive process dies here (not an Exception: nothing may catch it)."""


@pytest.fixture
def client(monkeypatch):
    monkeypatch.setattr(dlq, "WAIT_SECONDS", 0)  # in-process moto: a short poll sees all
    with mock_aws():
        with api.Client(boto3.Session(), deploy(STACK, visibility_timeout=30)) as client:
            yield client


def job_body(job_id=None, reply_to=None, numbers=(3, 1, 2), submitted_at=1_700_000_000.5):
    return wire.encode_job(wire.Job(job_id=job_id or wire.new_job_id(), kind="stats",
                                    args={"numbers": list(numbers)}, reply_to=reply_to,
                                    submitted_at=submitted_at))


def to_dlq(client, body, reason=None):
    """A dead letter: as SQS moves one (no attribute), or as the worker does (its reason)."""
    if reason is None:
        client.sqs.send_message(QueueUrl=client.stack.dead_letter_queue_url, MessageBody=body)
    else:
        broker(client).dead_letter(body, reason)


def broker(client):
    return SqsBroker(client.sqs, client.stack.request_queue_url,
                     client.stack.dead_letter_queue_url, client.stack.reply_queue_prefix)


def exhaust_receives(client, body):
    """Send a job and receive it until SQS moves it to the dead-letter queue."""
    client.sqs.send_message(QueueUrl=client.stack.request_queue_url, MessageBody=body)
    for _ in range(4):  # 3 receives, and the 4th moves it
        client.sqs.receive_message(QueueUrl=client.stack.request_queue_url, VisibilityTimeout=0)


def depths(client, url):
    attributes = client.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return (int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]))


def requests(client):
    """Every message now in the request queue (received: they stay hidden)."""
    messages = []
    while True:
        batch = client.sqs.receive_message(QueueUrl=client.stack.request_queue_url,
                                           MaxNumberOfMessages=10, VisibilityTimeout=60,
                                           MessageAttributeNames=["All"]).get("Messages", [])
        if not batch:
            return messages
        messages += batch


def stored(client, job_id):
    try:
        body = client.s3.get_object(Bucket=client.stack.bucket,
                                    Key=contract.result_key(job_id))["Body"].read()
    except client.s3.exceptions.NoSuchKey:
        return None
    return wire.decode_result(body)


def stand_in(client, job_id):
    result = wire.error_result(job_id, wire.INTERNAL, "every worker died holding it", attempt=3)
    client.s3.put_object(Bucket=client.stack.bucket, Key=contract.result_key(job_id),
                         Body=wire.encode_result(result).encode())
    return result


# ---- listing ----------------------------------------------------------------------------

def test_list_reads_every_dead_letter_with_its_reason_and_consumes_none(client):
    moved = [wire.new_job_id() for _ in range(23)]
    for n, job_id in enumerate(moved):
        exhaust_receives(client, job_body(job_id, submitted_at=1_700_000_000 + n))
    answered = wire.new_job_id()
    to_dlq(client, job_body(answered), "internal: ConnectionError: reset")
    to_dlq(client, "not json {", "bad_input: the job message is not valid JSON")
    listing = dlq.list_dead_letters(client)
    by_job = {d.job_id: d for d in listing.dead_letters}
    assert len(listing.dead_letters) == 25 and not listing.truncated
    assert set(by_job) == {*moved, answered, None}
    for n, job_id in enumerate(moved):
        letter = by_job[job_id]
        assert (letter.kind, letter.submitted_at, letter.receives, letter.readable) == (
            "stats", 1_700_000_000 + n, 3, True)
        assert letter.reason == "received 3 times without an answer"
    assert (by_job[answered].reason, by_job[answered].receives) == (
        "internal: ConnectionError: reset", None)
    unreadable = by_job[None]
    assert not unreadable.readable and unreadable.kind is None and "JSON" in unreadable.problem
    assert depths(client, client.stack.dead_letter_queue_url) == (25, 0)  # all visible again


def test_a_long_queue_is_read_to_a_bound_and_left_whole(client):
    for _ in range(14):
        to_dlq(client, job_body())
    listing = dlq.list_dead_letters(client, limit=12)
    assert len(listing.dead_letters) == 12 and listing.truncated
    assert depths(client, client.stack.dead_letter_queue_url) == (14, 0)


def test_show_gives_the_whole_message_and_an_unknown_id_is_not_found(client):
    job_id = wire.new_job_id()
    body = job_body(job_id)
    to_dlq(client, body, "bad_input: unknown field(s): extra")
    document = dlq.show(client, job_id).document()
    assert document["body"] == json.loads(body)
    assert document["message_attributes"] == {MessageAttribute.REASON:
                                              "bad_input: unknown field(s): extra"}
    assert int(document["attributes"]["SentTimestamp"]) / 1000 == document["sent_at"]
    assert dlq.show(client, document["message_id"]).job_id == job_id
    with pytest.raises(dlq.NotFound):
        dlq.show(client, wire.new_job_id())


# ---- redriving --------------------------------------------------------------------------

def test_redrive_sends_back_marked_removes_the_stale_result_and_leaves_the_rest(client):
    chosen, other = wire.new_job_id(), wire.new_job_id()
    for job_id in (chosen, other):
        exhaust_receives(client, job_body(job_id))
        stand_in(client, job_id)
    report = dlq.redrive(client, [chosen])
    assert (report.method, report.redriven, report.refused, report.missing) == (
        "send-delete", [chosen], [], [])
    [message] = requests(client)
    assert wire.decode_job(message["Body"]).job_id == chosen
    assert message["MessageAttributes"][MessageAttribute.REDRIVEN]["StringValue"] == "1"
    assert stored(client, chosen) is None and stored(client, other) is not None
    assert [d.job_id for d in dlq.list_dead_letters(client).dead_letters] == [other]


def test_an_unreadable_message_is_refused_unless_forced(client):
    to_dlq(client, "not json {", "bad_input: the job message is not valid JSON")
    [letter] = dlq.list_dead_letters(client).dead_letters
    report = dlq.redrive(client, [letter.message_id])
    [(name, why)] = report.refused
    assert name == letter.message_id and "--force" in why and report.redriven == []
    assert depths(client, client.stack.dead_letter_queue_url) == (1, 0)
    assert dlq.redrive(client, [letter.message_id], force=True).redriven == [letter.message_id]
    assert [m["Body"] for m in requests(client)] == ["not json {"]


def test_redrive_names_what_it_did_not_find(client):
    missing = wire.new_job_id()
    assert dlq.redrive(client, [missing]).missing == [missing]


def test_every_dead_letter_goes_back_one_by_one_where_the_move_task_is_missing(client):
    job_ids = [wire.new_job_id() for _ in range(12)]
    for job_id in job_ids:
        exhaust_receives(client, job_body(job_id))
    report = dlq.redrive(client, every=True)
    assert report.method == "send-delete" and sorted(report.redriven) == sorted(job_ids)
    assert "StartMessageMoveTask" in report.fallback  # in-process moto: NotImplementedError
    assert sorted(wire.decode_job(m["Body"]).job_id for m in requests(client)) == sorted(job_ids)
    assert depths(client, client.stack.dead_letter_queue_url) == (0, 0)


def emulate_move_task(client, calls):
    """The endpoint has StartMessageMoveTask: it moves every message as it is, as AWS does."""
    def move(params, **_kwargs):
        calls.append(json.loads(params["body"]))  # the request as sent
        sqs = boto3.client("sqs")
        while True:
            batch = sqs.receive_message(QueueUrl=client.stack.dead_letter_queue_url,
                                        MaxNumberOfMessages=10,
                                        MessageAttributeNames=["All"]).get("Messages", [])
            if not batch:
                return SimpleNamespace(status_code=200), {"TaskHandle": "task-1"}
            for message in batch:
                sqs.send_message(QueueUrl=client.stack.request_queue_url,
                                 MessageBody=message["Body"],
                                 MessageAttributes=message.get("MessageAttributes", {}))
                sqs.delete_message(QueueUrl=client.stack.dead_letter_queue_url,
                                   ReceiptHandle=message["ReceiptHandle"])
    client.sqs.meta.events.register("before-call.sqs.StartMessageMoveTask", move)


def test_every_dead_letter_goes_through_the_move_task_where_there_is_one(client):
    calls = []
    emulate_move_task(client, calls)
    job_ids = [wire.new_job_id() for _ in range(3)]
    for job_id in job_ids:
        exhaust_receives(client, job_body(job_id))
        stand_in(client, job_id)
    report = dlq.redrive(client, every=True)
    assert (report.method, report.task_handle, report.fallback) == ("move-task", "task-1", None)
    [call] = calls
    arns = {url: client.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"] for url in (client.stack.dead_letter_queue_url,
                                             client.stack.request_queue_url)}
    assert (call["SourceArn"], call["DestinationArn"]) == (
        arns[client.stack.dead_letter_queue_url], arns[client.stack.request_queue_url])
    assert all(stored(client, job_id) is None for job_id in job_ids)  # removed before the move
    moved = requests(client)
    assert sorted(wire.decode_job(m["Body"]).job_id for m in moved) == sorted(job_ids)
    assert depths(client, client.stack.dead_letter_queue_url) == (0, 0)


def test_every_with_an_unreadable_message_goes_one_by_one_and_refuses_it(client):
    calls = []
    emulate_move_task(client, calls)
    job_id = wire.new_job_id()
    exhaust_receives(client, job_body(job_id))
    to_dlq(client, "not json {", "bad_input: not JSON")
    report = dlq.redrive(client, every=True)
    assert calls == [] and report.redriven == [job_id] and len(report.refused) == 1
    assert [d.body for d in dlq.list_dead_letters(client).dead_letters] == ["not json {"]


def test_a_crash_between_send_and_delete_duplicates_the_job_and_loses_nothing(client):
    reply = client.sqs.create_queue(QueueName=f"{STACK}_reply_waiting")["QueueUrl"]
    job_id = wire.new_job_id()
    exhaust_receives(client, job_body(job_id, reply_to=reply, numbers=range(1, 10)))

    def die(**_kwargs):
        raise Killed

    client.sqs.meta.events.register("before-call.sqs.DeleteMessageBatch", die)
    with pytest.raises(Killed):
        dlq.redrive(client, [job_id], visibility=1)
    client.sqs.meta.events.unregister("before-call.sqs.DeleteMessageBatch", die)
    assert depths(client, client.stack.request_queue_url) == (1, 0)  # sent
    time.sleep(1.1)  # the dead letter's visibility runs out: it is still there
    assert [d.job_id for d in dlq.list_dead_letters(client).dead_letters] == [job_id]
    assert dlq.redrive(client, [job_id]).redriven == [job_id]  # the operator runs it again
    worker = Worker(WorkerConfig(request_queue_url=client.stack.request_queue_url,
                                 dead_letter_queue_url=client.stack.dead_letter_queue_url,
                                 bucket=client.stack.bucket,
                                 reply_queue_prefix=client.stack.reply_queue_prefix),
                    broker(client), S3Store(client.s3, client.stack.bucket))
    messages = broker(client).receive(10, 1)
    assert len(messages) == 2  # one duplicate, no more
    worker.process_batch(messages)
    replies = results_in(client.sqs, reply)
    assert [r.job_id for r in replies] == [job_id, job_id]
    assert replies[0].value == replies[1].value == stored(client, job_id).value
    assert replies[0].value["sum"] == 45
    assert depths(client, client.stack.dead_letter_queue_url) == (0, 0)


def test_a_redriven_result_goes_to_its_reply_queue_and_to_s3_a_new_one_only_to_the_queue(client):
    reply = client.sqs.create_queue(QueueName=f"{STACK}_reply_live")["QueueUrl"]
    redriven, fresh = wire.new_job_id(), wire.new_job_id()
    exhaust_receives(client, job_body(redriven, reply_to=reply))
    stand_in(client, redriven)
    dlq.redrive(client, [redriven])
    client.sqs.send_message(QueueUrl=client.stack.request_queue_url,
                            MessageBody=job_body(fresh, reply_to=reply))
    worker = Worker(WorkerConfig(request_queue_url=client.stack.request_queue_url,
                                 dead_letter_queue_url=client.stack.dead_letter_queue_url,
                                 bucket=client.stack.bucket,
                                 reply_queue_prefix=client.stack.reply_queue_prefix),
                    broker(client), S3Store(client.s3, client.stack.bucket))
    worker.process_batch(broker(client).receive(10, 1))
    replies = {r.job_id: r for r in results_in(client.sqs, reply)}
    assert set(replies) == {redriven, fresh} and replies[redriven].ok
    assert stored(client, redriven) == replies[redriven]
    assert stored(client, fresh) is None


# ---- purging ----------------------------------------------------------------------------

def test_purge_empties_the_queue_once_a_minute(client):
    for _ in range(3):
        to_dlq(client, job_body())
    assert dlq.purge(client) == 3
    assert depths(client, client.stack.dead_letter_queue_url) == (0, 0)
    with pytest.raises(api.ClientFailure, match="60 s"):
        dlq.purge(client)


# ---- the command line ---------------------------------------------------------------------

def run_cli(capsys, *argv):
    code = cli.main([*argv, "--stack", STACK])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_list_and_show(client, capsys):
    job_id = wire.new_job_id()
    exhaust_receives(client, job_body(job_id))
    to_dlq(client, "not json {", "bad_input: the job message is not valid JSON")
    code, out, _ = run_cli(capsys, "dlq", "list", "--json")
    document = json.loads(out)
    assert code == 0 and document["count"] == 2 and not document["truncated"]
    assert {e["job_id"]: e["reason"] for e in document["dead_letters"]} == {
        job_id: "received 3 times without an answer",
        None: "bad_input: the job message is not valid JSON"}
    code, out, _ = run_cli(capsys, "dlq", "list")
    assert code == 0 and out.splitlines()[0].split() == ["JOB", "ID", "KIND", "SUBMITTED",
                                                         "RECEIVES", "WHY"]
    assert any(line.startswith(job_id) and " stats " in line and line.endswith(
        "received 3 times without an answer") for line in out.splitlines())
    code, out, _ = run_cli(capsys, "dlq", "show", job_id)
    assert code == 0 and f'"job_id": "{job_id}"' in out
    code, _, err = run_cli(capsys, "dlq", "show", wire.new_job_id())
    assert code == 1 and "no dead letter" in err


def test_cli_redrive_refuses_unreadable_and_bad_usage(client, capsys):
    to_dlq(client, "not json {", "bad_input: not JSON")
    [letter] = dlq.list_dead_letters(client).dead_letters
    code, _, err = run_cli(capsys, "dlq", "redrive", letter.message_id)
    assert code == 1 and "--force" in err
    assert run_cli(capsys, "dlq", "redrive")[0] == 2
    assert run_cli(capsys, "dlq", "redrive", letter.message_id, "--all")[0] == 2
    code, out, _ = run_cli(capsys, "dlq", "redrive", letter.message_id, "--force", "--json")
    assert code == 0 and json.loads(out)["redriven"] == [letter.message_id]


def test_cli_purge_needs_yes(client, capsys):
    to_dlq(client, job_body())
    code, out, err = run_cli(capsys, "dlq", "purge")
    assert (code, out) == (2, "") and "--yes" in err
    assert depths(client, client.stack.dead_letter_queue_url) == (1, 0)
    code, out, _ = run_cli(capsys, "dlq", "purge", "--yes", "--json")
    assert code == 0 and json.loads(out) == {"purged": 1}
    assert depths(client, client.stack.dead_letter_queue_url) == (0, 0)


# ---- hostile bodies: listed as unreadable, the rest stays usable ---------------------------

def hostile_bodies():
    """Bodies anyone can write to the request queue that no decoder may be surprised by."""
    overflow = json.loads(job_body())
    return {
        "invalid JSON": "not json {",
        "deep nesting": "[" * 100_000 + "]" * 100_000,  # RecursionError in json
        "overflowing number": job_body().replace(
            str(overflow["submitted_at"]), "1" + "0" * 400),  # float() overflows
        "binary": "\x1b[2J\x1b]0;owned\x07\x00\x01\ufffd\u202ebinary\x7f" * 3,
        "256 KiB": "x" * (256 * 1024),
    }


def test_hostile_bodies_are_listed_as_unreadable_and_the_good_ones_stay_usable(client, capsys):
    good = [wire.new_job_id() for _ in range(2)]
    for job_id in good:
        exhaust_receives(client, job_body(job_id))
    hostile = hostile_bodies()
    for body in hostile.values():
        exhaust_receives(client, body)
    letters = dlq.list_dead_letters(client).dead_letters
    unreadable = {letter.body: letter for letter in letters if not letter.readable}
    assert sorted(letter.job_id for letter in letters if letter.readable) == sorted(good)
    assert set(unreadable) == set(hostile.values())
    for name, body in hostile.items():
        letter = unreadable[body]
        assert letter.size == len(body.encode()) and letter.receives == 3, name
        assert letter.problem and letter.message_id, name
        assert letter.job_id is None or letter.job_id in body, name  # salvaged where it can be
        assert letter.preview.startswith(ascii(body[:20])[1:-1]), name
        assert "\x1b" not in letter.preview and "\x00" not in letter.preview, name
        assert dlq.show(client, letter.message_id).document()["body"] == body, name
    code, out, err = run_cli(capsys, "dlq", "list")
    assert code == 0 and err == "" and "\x1b" not in out and out.count("unreadable, ") == 5
    code, out, _ = run_cli(capsys, "dlq", "show", unreadable[hostile["binary"]].message_id)
    assert code == 0 and "\x1b" not in out and "\\x1b[2J" in out
    code, out, _ = run_cli(capsys, "dlq", "list", "--json")
    assert code == 0 and json.loads(out)["count"] == 7
    report = dlq.redrive(client, every=True)
    assert sorted(report.redriven) == sorted(good) and len(report.refused) == 5
    assert sorted(wire.decode_job(m["Body"]).job_id for m in requests(client)) == sorted(good)
    assert depths(client, client.stack.dead_letter_queue_url) == (5, 0)


def test_output_of_the_cli_escapes_a_reason_with_terminal_escapes(client, capsys):
    to_dlq(client, job_body(), "bad_input: \x1b[2J\nforged line")
    code, out, _ = run_cli(capsys, "dlq", "list")
    assert code == 0 and "\x1b" not in out and "\\x1b[2J\\nforged line" in out
