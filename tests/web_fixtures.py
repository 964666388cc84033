"""The web tier's moto fixtures (a pytest plugin of its test modules): the stack in moto,
a worker thread, the app with its session."""


import boto3
import pytest
from moto import mock_aws

from client import api
from tests.moto_stack import serving_worker
from tests.web_support import STACK, make_web


@pytest.fixture
def stack():
    """The stack's queues and bucket, made directly (CloudFormation in moto takes seconds)."""
    with mock_aws():
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName=f"{STACK}-dlq")["QueueUrl"]
        requests = sqs.create_queue(QueueName=f"{STACK}-requests")["QueueUrl"]
        boto3.client("s3").create_bucket(Bucket=f"{STACK}-bucket")
        yield api.StackInfo(name=STACK, request_queue_url=requests, dead_letter_queue_url=dlq,
                            bucket=f"{STACK}-bucket", reply_queue_prefix=f"{STACK}_reply_")


@pytest.fixture
def worker(stack):
    with serving_worker(stack) as worker:
        yield worker


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
