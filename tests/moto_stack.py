"""A minimal web-queue-worker stack in in-process moto, and a worker thread serving it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

from client import api
from worker_src import contract, wire, wire_lifecycle
from worker_src.broker import SqsBroker
from worker_src.config import WorkerConfig
from worker_src.executor import Executor
from worker_src.store import S3Store
from worker_src.worker import Worker

# One stack name for end-to-end tests' local stacks with the default options, so that one
# synthesized template (client/emulator_template.py keeps it) serves them. Only one such stack
# may run in a test process's own moto (its servers share one state): the web end-to-end module
# uses it in process, the others through `python -m client local` in a process of its own.
LOCAL_STACK = "wqw-local-test"


def results_in(sqs: Any, queue_url: str) -> list[wire.Result]:
    """The results in a reply queue (received, left there), without running words: a job that
    outlasts a second on a loaded machine also sends those."""
    results = []
    while messages := sqs.receive_message(QueueUrl=queue_url,
                                          MaxNumberOfMessages=10).get("Messages", []):
        results += [wire.decode_result(m["Body"]) for m in messages
                    if wire_lifecycle.message_type(m["Body"]) is None]
    return results


def child_per_job(executor: Executor) -> None:
    """In-process moto keeps its objects in this process's memory: a work horse forked before
    an input is put would not see it (S3 and the moto server share them). A child per job,
    forked by the job, sees what is there when the job starts."""
    executor.work_horse.fork_ahead = False
    executor.work_horse.max_jobs = 1


def deploy(stack: str, *, visibility_timeout: int | None = None,
           outputs: dict[str, str] | None = None) -> api.StackInfo:
    """Create the stack's queues (with the redrive policy), bucket and outputs; its info."""
    requests: dict[str, Any] = {
        "QueueName": f"{stack}-requests",
        "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]},
                          "maxReceiveCount": 3}}
    if visibility_timeout is not None:
        requests["VisibilityTimeout"] = visibility_timeout
    template = {
        "Resources": {
            "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"{stack}-dlq"}},
            "Requests": {"Type": "AWS::SQS::Queue", "Properties": requests},
            "Bucket": {"Type": "AWS::S3::Bucket",
                       "Properties": {"BucketName": f"{stack}-bucket"}},
        },
        "Outputs": {
            "RequestQueueUrl": {"Value": {"Ref": "Requests"}},
            "DeadLetterQueueUrl": {"Value": {"Ref": "Dlq"}},
            "BucketName": {"Value": {"Ref": "Bucket"}},
            "ReplyQueuePrefix": {"Value": contract.reply_queue_prefix(stack)},
            **{key: {"Value": value} for key, value in (outputs or {}).items()},
        },
    }
    boto3.client("cloudformation").create_stack(StackName=stack,
                                                TemplateBody=json.dumps(template))
    return api.find_stack(boto3.Session(), stack)


@contextmanager
def serving_worker(stack: api.StackInfo, *, executor: Any = None) -> Iterator[Worker]:
    """A real Worker on the stack's queues, in a thread, stopped on exit.

    `executor(store, identity)`, if given, makes the worker's executor (e.g. test kinds).
    """
    config = WorkerConfig(request_queue_url=stack.request_queue_url,
                          dead_letter_queue_url=stack.dead_letter_queue_url,
                          bucket=stack.bucket, reply_queue_prefix=stack.reply_queue_prefix,
                          wait_seconds=1)
    broker = SqsBroker(boto3.client("sqs"), config.request_queue_url,
                       config.dead_letter_queue_url, config.reply_queue_prefix)
    store = S3Store(boto3.client("s3"), config.bucket)
    worker = Worker(config, broker, store)
    if executor is not None:
        worker.executor = executor(store, worker.identity)
    child_per_job(worker.executor)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=10)
