"""The worker loop against in-process moto: delivery, acknowledgement and every failure path."""

import io
import json
import multiprocessing
import time
from dataclasses import replace

import boto3
import numpy as np
import pytest
from moto import mock_aws
from PIL import Image
from skimage import exposure, util

from tests.moto_stack import child_per_job, results_in
from worker_src import registry, wire
from worker_src.broker import SqsBroker
from worker_src.config import ConfigError, WorkerConfig
from worker_src.executor import Executor
from worker_src.jobs.stats import KIND as STATS
from worker_src.store import S3Store
from worker_src.worker import Worker

PREFIX = "wqw-test-reply-"


@pytest.fixture
def aws():
    with mock_aws():
        sqs = boto3.client("sqs")
        s3 = boto3.client("s3")
        dlq = sqs.create_queue(QueueName="wqw-test-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
        requests = sqs.create_queue(QueueName="wqw-test-requests", Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn":
                                         dlq_arn["Attributes"]["QueueArn"],
                                         "maxReceiveCount": "3"}),
        })["QueueUrl"]
        reply = sqs.create_queue(QueueName=PREFIX + "abc")["QueueUrl"]
        s3.create_bucket(Bucket="wqw-test-bucket")
        config = WorkerConfig(request_queue_url=requests, dead_letter_queue_url=dlq,
                              bucket="wqw-test-bucket", reply_queue_prefix=PREFIX,
                              visibility_timeout=30, wait_seconds=1)
        yield Env(sqs, s3, config, reply)


class Env:
    def __init__(self, sqs, s3, config, reply):
        self.sqs, self.s3, self.config, self.reply = sqs, s3, config, reply
        self.broker = SqsBroker(sqs, config.request_queue_url, config.dead_letter_queue_url,
                                config.reply_queue_prefix)
        # The work horse's own client, from the session that made `s3` (as build_worker does).
        self.worker = Worker(config, self.broker,
                             S3Store(s3, config.bucket, connect=lambda _: boto3.client("s3")))
        child_per_job(self.worker.executor)

    def send(self, kind="stats", args=None, reply_to="default", body=None, job_id=None):
        job_id = job_id or wire.new_job_id()
        if body is None:
            body = wire.encode_job(wire.Job(
                job_id=job_id, kind=kind, args={"numbers": [1, 2]} if args is None else args,
                reply_to=self.reply if reply_to == "default" else reply_to,
                submitted_at=1.0))
        self.sqs.send_message(QueueUrl=self.config.request_queue_url, MessageBody=body)
        return job_id

    def receive(self, receive_count=None):
        messages = self.broker.receive(10, 0)
        if receive_count is not None:
            messages = [replace(m, receive_count=receive_count) for m in messages]
        return messages

    def break_reads(self, failures):
        """The next `failures` reads fail, in whichever process (the work horse reads inputs)."""
        left = multiprocessing.Value("i", failures)
        self.worker.executor.store = S3Store(FlakyS3(self.s3, left), self.config.bucket,
                                             connect=lambda _: FlakyS3(boto3.client("s3"), left))

    def process(self, receive_count=None):
        messages = self.receive(receive_count)
        assert messages, "nothing to process"
        self.worker.process_batch(messages)

    def replies(self):
        return results_in(self.sqs, self.reply)

    def depth(self, url):
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        return sum(int(v) for v in attributes["Attributes"].values())

    def stored(self, job_id):
        body = self.s3.get_object(Bucket=self.config.bucket, Key=f"results/{job_id}.json")
        return wire.decode_result(body["Body"].read())

    def dead_letters(self):
        return self.sqs.receive_message(QueueUrl=self.config.dead_letter_queue_url,
                                        MaxNumberOfMessages=10,
                                        MessageAttributeNames=["All"]).get("Messages", [])


def test_a_batch_of_jobs_gets_its_results_and_is_deleted(aws):
    ids = [aws.send(args={"numbers": [i, 2 * i, 10]}) for i in range(1, 8)]
    aws.process()
    results = {r.job_id: r for r in aws.replies()}
    assert set(results) == set(ids)
    assert all(r.ok and r.value["count"] == 3 and r.attempt == 1 for r in results.values())
    assert results[ids[0]].value["sum"] == 13
    assert aws.depth(aws.config.request_queue_url) == 0


def test_bad_input_gets_an_error_reply_and_the_next_job_still_runs(aws):
    bad = aws.send(args={"numbers": [1, "x", 3]})
    good = aws.send(args={"numbers": [4]})
    aws.process()
    results = {r.job_id: r for r in aws.replies()}
    assert results[bad].error_code == wire.BAD_INPUT
    assert 'item 2 of 3 ("x"' in results[bad].error_message
    assert results[good].ok and results[good].value["max"] == 4
    assert aws.depth(aws.config.request_queue_url) == 0
    assert aws.dead_letters() == []


def test_unknown_arguments_are_bad_input(aws):
    job = aws.send(args={"numbers": [1], "extra": True})
    aws.process()
    [result] = aws.replies()
    assert (result.job_id, result.error_code) == (job, wire.BAD_INPUT)
    assert "extra" in result.error_message


def test_unreadable_message_goes_to_the_dead_letter_queue_at_once(aws):
    aws.send(body="{this is not json")
    aws.process()
    [dead] = aws.dead_letters()
    assert dead["Body"] == "{this is not json"
    assert "not valid JSON" in dead["MessageAttributes"]["error"]["StringValue"]
    assert aws.depth(aws.config.request_queue_url) == 0


def test_malformed_job_with_a_reply_queue_gets_told_why(aws):
    job_id = wire.new_job_id()
    aws.send(body=json.dumps({"version": 1, "job_id": job_id, "kind": "stats", "args": {},
                              "reply_to": aws.reply, "submitted_at": "noon"}))
    aws.process()
    [result] = aws.replies()
    assert result.job_id == job_id and "submitted_at must be a number" in result.error_message
    assert len(aws.dead_letters()) == 1


def test_a_kind_this_worker_does_not_run_is_answered_not_dead_lettered(aws):
    job_id = aws.send(kind="resize", args={})
    aws.process()
    [result] = aws.replies()
    assert (result.job_id, result.error_code) == (job_id, wire.BAD_INPUT)
    assert "unknown job kind 'resize'" in result.error_message
    assert "equalize" in result.error_message and "stats" in result.error_message
    assert aws.dead_letters() == []


def test_reply_queue_outside_the_stack_is_refused(aws):
    other = aws.sqs.create_queue(QueueName="someone-elses-queue")["QueueUrl"]
    job_id = aws.send(reply_to=other)
    aws.process()
    assert aws.sqs.receive_message(QueueUrl=other).get("Messages", []) == []
    stored = aws.stored(job_id)
    assert stored.error_code == wire.FORBIDDEN and PREFIX in stored.error_message


def test_no_wait_jobs_store_their_result_in_s3(aws):
    job_id = aws.send(reply_to=None, args={"numbers": [5, 7]})
    aws.process()
    assert aws.stored(job_id).value["average"] == 6
    assert aws.replies() == []


def test_result_for_a_deleted_reply_queue_lands_in_s3(aws):
    job_id = aws.send(args={"numbers": [9]})
    aws.sqs.delete_queue(QueueUrl=aws.reply)
    aws.process()
    assert aws.stored(job_id).value["min"] == 9
    assert aws.depth(aws.config.request_queue_url) == 0


class FlakyS3:
    """Fails the first reads (get_object), as many as `failures` (shared memory) says."""

    def __init__(self, s3, failures):
        self.s3, self.failures = s3, failures

    def __getattr__(self, name):
        def call(**kwargs):
            with self.failures.get_lock():
                fail = name == "get_object" and self.failures.value > 0
                self.failures.value -= fail
            if fail:
                raise ConnectionError("injected: connection reset")
            return getattr(self.s3, name)(**kwargs)
        return call


def put_args(aws, job_id, numbers):
    key = f"inputs/{job_id}/args.json"
    aws.s3.put_object(Bucket=aws.config.bucket, Key=key, Body=json.dumps({"numbers": numbers}))
    return key


def send_args_key(aws, numbers):
    job_id = wire.new_job_id()
    key = put_args(aws, job_id, numbers)
    aws.send(body=wire.encode_job(wire.Job(job_id=job_id, kind="stats", args=None,
                                           reply_to=aws.reply, submitted_at=1.0, args_key=key)))
    return job_id


def test_arguments_stored_in_s3_are_read_from_there(aws):
    job_id = send_args_key(aws, list(range(1001)))
    aws.process()
    [result] = aws.replies()
    assert result.job_id == job_id and result.value["median"] == 500


def test_a_transient_failure_is_retried_not_answered(aws):
    send_args_key(aws, [1, 2, 3])
    aws.break_reads(1)
    aws.process(receive_count=1)
    assert aws.replies() == []
    assert aws.depth(aws.config.request_queue_url) == 1  # back after its backoff
    assert aws.worker.stats.failed_attempts == 1


def test_the_last_failed_attempt_answers_internal_and_dead_letters(aws):
    job_id = send_args_key(aws, [1, 2, 3])
    aws.break_reads(1)
    aws.process(receive_count=3)
    [result] = aws.replies()
    assert (result.job_id, result.error_code) == (job_id, wire.INTERNAL)
    assert "3 attempts" in result.error_message and "connection reset" in result.error_message
    [dead] = aws.dead_letters()
    assert json.loads(dead["Body"])["job_id"] == job_id
    assert aws.depth(aws.config.request_queue_url) == 0


def test_a_last_chance_job_leaves_a_stand_in_result_should_its_worker_die(aws, monkeypatch):
    job_id = aws.send(args={"numbers": [1, 2]})
    messages = aws.receive(receive_count=3)

    def die(held):
        raise SystemExit(137)

    monkeypatch.setattr(aws.worker, "handle", die)
    with pytest.raises(SystemExit):
        aws.worker.process_batch(messages)
    stand_in = aws.stored(job_id)
    assert stand_in.error_code == wire.INTERNAL
    assert "received 3 times" in stand_in.error_message


def test_a_last_chance_job_that_succeeds_replaces_its_stand_in(aws):
    job_id = aws.send(args={"numbers": [1, 2]})
    aws.process(receive_count=3)
    [result] = aws.replies()
    assert result.ok and aws.stored(job_id) == result


def test_the_worker_keeps_going_after_many_failures(aws):
    aws.break_reads(50)
    for _ in range(50):
        send_args_key(aws, [1])
        [message] = aws.receive(receive_count=1)
        aws.worker.process_batch([message])
        aws.sqs.delete_message(QueueUrl=aws.config.request_queue_url,
                               ReceiptHandle=message.receipt)
    assert aws.worker.stats.failed_attempts == 50
    job_id = send_args_key(aws, [2, 4])
    aws.process(receive_count=1)
    [result] = aws.replies()
    assert result.job_id == job_id and result.value["sum"] == 6


def png_bytes(mode="L"):
    image = Image.linear_gradient("L").resize((64, 48)).point(lambda v: 100 + v // 8)
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_equalize_reads_the_input_and_writes_the_output_under_the_job_id(aws):
    job_id = wire.new_job_id()
    aws.s3.put_object(Bucket=aws.config.bucket, Key=f"inputs/{job_id}/g.png", Body=png_bytes())
    aws.send(kind="equalize", job_id=job_id, args={"image": f"inputs/{job_id}/g.png"})
    aws.process()
    [result] = aws.replies()
    assert result.ok and result.value["output_key"] == f"outputs/{job_id}/g-equalize.png"
    output = aws.s3.get_object(Bucket=aws.config.bucket, Key=result.value["output_key"])
    assert output["ContentType"] == "image/png"
    image = Image.open(io.BytesIO(output["Body"].read()))
    source = np.asarray(Image.open(io.BytesIO(png_bytes())))
    assert np.array_equal(np.asarray(image), util.img_as_ubyte(exposure.equalize_hist(source)))


def test_equalize_of_a_missing_object_is_not_found(aws):
    job_id = wire.new_job_id()
    aws.send(kind="equalize", job_id=job_id, args={"image": f"inputs/{job_id}/none.png"})
    aws.process()
    [result] = aws.replies()
    assert result.error_code == wire.NOT_FOUND and "none.png" in result.error_message


def test_equalize_refuses_keys_of_another_job(aws):
    job_id, other = wire.new_job_id(), wire.new_job_id()
    aws.send(kind="equalize", job_id=job_id, args={"image": f"inputs/{other}/a.png"})
    aws.process()
    [result] = aws.replies()
    assert result.error_code == wire.BAD_INPUT and f"inputs/{job_id}/" in result.error_message


def test_after_a_stop_a_job_on_its_last_receive_still_runs(aws):
    last = aws.send(args={"numbers": [3]})
    [message] = aws.receive(receive_count=3)
    aws.send()
    messages = [message, *aws.receive(receive_count=1)]
    aws.worker.stop()
    aws.worker.process_batch(messages)
    [result] = aws.replies()
    assert result.job_id == last and result.ok
    assert len(aws.receive()) == 1  # the other one was handed back


def test_a_stop_releases_the_messages_not_yet_started(aws):
    for _ in range(3):
        aws.send()
    messages = aws.receive()
    aws.worker.stop()
    aws.worker.process_batch(messages)
    assert aws.replies() == []
    assert len(aws.receive()) == 3  # visible again at once


def test_config_names_what_is_missing():
    with pytest.raises(ConfigError, match="WQW_BUCKET"):
        WorkerConfig.from_env({"WQW_REQUEST_QUEUE_URL": "u", "WQW_DEAD_LETTER_QUEUE_URL": "d",
                               "WQW_REPLY_QUEUE_PREFIX": "p"})
    with pytest.raises(ConfigError, match="WQW_WAIT_SECONDS"):
        WorkerConfig.from_env({"WQW_REQUEST_QUEUE_URL": "u", "WQW_DEAD_LETTER_QUEUE_URL": "d",
                               "WQW_BUCKET": "b", "WQW_REPLY_QUEUE_PREFIX": "p",
                               "WQW_WAIT_SECONDS": "30"})


def test_slow_jobs_are_taken_a_few_at_a_time(aws):
    assert aws.worker.batch_size() == 10
    for _ in range(3):
        aws.send()
    aws.process()
    assert aws.worker.batch_size() == 10  # stats jobs take milliseconds

    def slow(ctx):
        time.sleep(0.25)
        return registry.Output({"slept": 0.25})

    slow_kind = registry.Kind(name="slow", summary="sleeps", run=slow)
    aws.worker.executor = Executor(aws.worker.store, identity="test",
                                   kinds={"stats": STATS, "slow": slow_kind})
    child_per_job(aws.worker.executor)
    for _ in range(6):
        aws.send(kind="slow", args={})
    aws.process()
    assert 2 <= aws.worker.batch_size() <= 5  # about 1 s of work per batch
