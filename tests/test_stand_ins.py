"""The shipped in-memory stand-ins answer as the real seams do (SqsBroker, S3Store on moto).

moto does not refuse the characters SQS refuses, so `check_sqs_text` is checked on its own.
"""

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from worker_src import contract, wire
from worker_src.broker import MemoryBroker, QueueGone, SqsBroker, check_sqs_text
from worker_src.store import MemoryStore, S3Store

ACCOUNT_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/"
PREFIX = "stack-reply-"


@pytest.fixture(params=["real", "memory"])
def seams(request):
    """(broker, a reply queue URL it may send to, store) of either kind."""
    if request.param == "memory":
        broker = MemoryBroker(reply_prefix=ACCOUNT_URL + PREFIX)
        yield broker, broker.reply_queue(), MemoryStore()
        return
    with mock_aws():
        sqs, s3 = boto3.client("sqs", region_name="us-east-1"), boto3.client("s3")
        urls = [sqs.create_queue(QueueName=name)["QueueUrl"]
                for name in ("stack-requests", "stack-dlq", PREFIX + "0")]
        s3.create_bucket(Bucket="stand-in-bucket")
        yield (SqsBroker(sqs, urls[0], urls[1], PREFIX), urls[2],
               S3Store(s3, "stand-in-bucket", connect=lambda _: boto3.client("s3")))


@pytest.mark.parametrize("url, allowed", [
    (ACCOUNT_URL + PREFIX + "abc", True),
    (None, False), ("", False), ("https://[", False),
    (ACCOUNT_URL + "other-queue", False),
    ("https://sqs.us-east-1.amazonaws.com/999999999999/" + PREFIX + "abc", False),
])
def test_reply_allowed_only_for_the_stacks_reply_queues(seams, url, allowed):
    broker, _reply, _store = seams
    assert broker.reply_allowed(url) is allowed


def test_results_reach_an_existing_reply_queue_and_a_missing_one_is_gone(seams):
    broker, reply, _store = seams
    assert broker.send_results(reply, ["one", "two"]) == set()
    with pytest.raises(QueueGone):
        broker.send_results(ACCOUNT_URL + PREFIX + "never-made", ["x"])


def test_open_measures_the_object_and_refuses_a_missing_or_too_large_one(seams):
    _broker, _reply, store = seams
    store.put("inputs/j/a.txt", b"12345", "text/plain")
    file = store.open("inputs/j/a.txt", 5)
    assert (file.name, file.size, file.read()) == ("a.txt", 5, b"12345")
    file.close()
    for key, max_bytes, code in [("inputs/j/none.txt", 5, wire.NOT_FOUND),
                                 ("inputs/j/a.txt", 4, wire.TOO_LARGE)]:
        with pytest.raises(wire.JobError) as raised:
            store.open(key, max_bytes)
        assert raised.value.code == code


def test_exists_delete_and_put_result(seams):
    _broker, _reply, store = seams
    result = wire.ok_result(wire.new_job_id(), {"n": 1})
    store.put_result(result)
    assert store.exists(contract.result_key(result.job_id))
    with store.open(contract.result_key(result.job_id), 1 << 20).open() as body:
        assert wire.decode_result(body.read()) == result
    store.delete([contract.result_key(result.job_id), "inputs/j/never-there"])
    assert not store.exists(contract.result_key(result.job_id))


@pytest.mark.parametrize("text, refused", [
    ("plain {\"json\": 1}\t\n\r", False), ("é ✓ \U0001f600", False),
    ("a\x00b", True), ("\x1f", True), ("\ufffe", True), ("\ud800", True),
])
def test_check_sqs_text_refuses_what_sqs_refuses(text, refused):
    if refused:
        with pytest.raises(ClientError) as raised:
            check_sqs_text(text)
        assert raised.value.response["Error"]["Code"] == "InvalidMessageContents"
    else:
        check_sqs_text(text)
