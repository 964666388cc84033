"""The web tier's moto fixtures (a pytest plugin of its test modules): the stack in moto,
a worker thread, the app with its session."""

import threading

import boto3
import pytest
from moto import mock_aws

from client import api
from tests.web_support import STACK, make_web
from worker_src.broker import SqsBroker
from worker_src.config import WorkerConfig
from worker_src.store import S3Store
from worker_src.worker import Worker


@pytest.fixture
def stack():
    """The stack's queues and bucket, made directly (CloudFormation in moto takes seconds)."""
    with mock_aws():
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName=f"{STACK}-dlq")["QueueUrl"]
        requests = sqs.create_queue(QueueName=f"{STACK}-requests")["QueueUrl"]
        boto3.client("s3").create_bucket(Bucket=f"{STACK}-bucket")
        yield api.StackInfo(name=STACK, request_queue_url=requests, dead_letter_queue_url=dlq,
                            bucket=f"{STACK}-bucket", reply_queue_prefix=f"{STACK}-reply-")


@pytest.fixture
def worker(stack):
    config = WorkerConfig(request_queue_url=stack.request_queue_url,
                          dead_letter_queue_url=stack.dead_letter_queue_url,
                          bucket=stack.bucket, reply_queue_prefix=stack.reply_queue_prefix,
                          wait_seconds=1)
    broker = SqsBroker(boto3.client("sqs"), config.request_queue_url,
                       config.dead_letter_queue_url, config.reply_queue_prefix)
    worker = Worker(config, broker, S3Store(boto3.client("s3"), config.bucket))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield worker
    worker.stop()
    thread.join(timeout=10)


@pytest.fixture
def web(stack):
    session, http = make_web(stack)
    yield http
    session.close()


@pytest.fixture
def session_and_http(stack):
    session, http = make_web(stack)
    yield session, http
    session.close()
