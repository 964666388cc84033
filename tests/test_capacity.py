"""worker_src/capacity.py: the client's and the worker's capacity raise, on moto's Auto Scaling."""

from __future__ import annotations

import logging
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from infra.config import config_from_context
from worker_src import capacity
from worker_src.capacity import BacklogSignal, raise_capacity, workers_for_backlog

GROUP = "cap-workers"


@pytest.fixture
def aws() -> Any:
    with mock_aws():
        ec2 = boto3.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        ec2.create_launch_template(LaunchTemplateName="cap-template", LaunchTemplateData={
            "ImageId": "ami-12c6146b", "InstanceType": "t2.micro"})
        autoscaling = boto3.client("autoscaling")
        sqs = boto3.client("sqs")
        queue = sqs.create_queue(QueueName="cap-requests")["QueueUrl"]

        def group(min_size: int, max_size: int) -> None:
            autoscaling.create_auto_scaling_group(
                AutoScalingGroupName=GROUP, MinSize=min_size, MaxSize=max_size,
                LaunchTemplate={"LaunchTemplateName": "cap-template"}, VPCZoneIdentifier=subnet)

        def desired() -> int:
            (found,) = autoscaling.describe_auto_scaling_groups(
                AutoScalingGroupNames=[GROUP])["AutoScalingGroups"]
            return found["DesiredCapacity"]

        def send(count: int) -> None:
            for start in range(0, count, 10):
                sqs.send_message_batch(QueueUrl=queue, Entries=[
                    {"Id": str(i), "MessageBody": "{}"} for i in range(min(10, count - start))])

        yield type("Aws", (), {"autoscaling": autoscaling, "sqs": sqs, "queue": queue,
                               "group": staticmethod(group), "desired": staticmethod(desired),
                               "send": staticmethod(send)})


@pytest.mark.parametrize(("waiting", "min_size", "workers"), [
    (0, 0, 0), (1, 0, 1), (74, 0, 1), (75, 0, 2), (0, 1, 1), (1, 1, 1), (75, 1, 2),
    (150, 2, 4)])
def test_workers_for_backlog(waiting: int, min_size: int, workers: int) -> None:
    assert workers_for_backlog(waiting, min_size) == workers


@pytest.mark.parametrize("min_workers", [0, 1])
def test_the_rule_is_the_alarm_policys(min_workers: int, tmp_path: Any) -> None:
    """The step policy the stack synthesizes asks for the same workers at every backlog."""
    import aws_cdk as cdk

    from infra.stack import WebQueueWorkerStack

    app = cdk.App(outdir=str(tmp_path))
    config = config_from_context({"min_workers": str(min_workers), "max_workers": "5"})
    stack = WebQueueWorkerStack(app, config)
    template = app.synth().get_stack_by_name(stack.stack_name).template
    resources = template["Resources"].values()
    (alarm,) = [r["Properties"] for r in resources if r["Type"] == "AWS::CloudWatch::Alarm"
                and r["Properties"].get("ComparisonOperator") == "GreaterThanOrEqualToThreshold"]
    (steps,) = [r["Properties"]["StepAdjustments"] for r in resources
                if r["Type"] == "AWS::AutoScaling::ScalingPolicy"
                and r["Properties"]["StepAdjustments"][0].get("ScalingAdjustment") != min_workers]

    def policy(waiting: int) -> int:
        if waiting < alarm["Threshold"]:
            return min_workers
        over = waiting - alarm["Threshold"]
        for step in steps:
            if step["MetricIntervalLowerBound"] <= over < step.get("MetricIntervalUpperBound",
                                                                    float("inf")):
                return step["ScalingAdjustment"]
        raise AssertionError(f"no step for {waiting}")

    for waiting in range(0, 400):
        assert policy(waiting) == min(5, workers_for_backlog(waiting, min_workers)), waiting


def test_one_job_raises_an_empty_group_to_one(aws: Any) -> None:
    aws.group(0, 10)
    aws.send(1)
    assert raise_capacity(aws.autoscaling, aws.sqs, GROUP, aws.queue) == 1
    assert aws.desired() == 1


def test_a_burst_is_clamped_to_max_size(aws: Any) -> None:
    aws.group(0, 4)
    assert raise_capacity(aws.autoscaling, aws.sqs, GROUP, aws.queue, at_least_waiting=1000) == 4
    assert aws.desired() == 4


def test_never_lowers(aws: Any) -> None:
    aws.group(0, 10)
    aws.autoscaling.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=5)
    aws.send(80)  # justifies 2
    assert raise_capacity(aws.autoscaling, aws.sqs, GROUP, aws.queue) is None
    assert aws.desired() == 5


def test_a_denied_raise_is_one_warning_and_no_failure(
        aws: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    aws.group(0, 10)

    def denied(**_kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "User: x is not "
                                     "authorized to perform: autoscaling:SetDesiredCapacity"}},
                          "SetDesiredCapacity")

    monkeypatch.setattr(aws.autoscaling, "set_desired_capacity", denied)
    with caplog.at_level(logging.WARNING, logger="capacity"):
        assert raise_capacity(aws.autoscaling, aws.sqs, GROUP, aws.queue, 5) is None
    (record,) = caplog.records
    assert "AccessDenied" in record.getMessage() and "\n" not in record.getMessage()
    assert aws.desired() == 0


def test_a_missing_group_is_one_warning(aws: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="capacity"):
        assert raise_capacity(aws.autoscaling, aws.sqs, "nope", aws.queue, 5) is None
    assert "nope" in caplog.records[0].getMessage()


def test_a_worker_raises_after_full_batches_in_a_row(aws: Any) -> None:
    aws.group(1, 10)
    aws.send(300)  # justifies 1 + 4
    now = [0.0]
    signal = BacklogSignal(aws.autoscaling, aws.sqs, GROUP, aws.queue, clock=lambda: now[0])
    for received in (10, 10, 3, 10, 10):  # a short batch starts the count again
        signal.observe(received, 10)
    assert signal.raises == 0 and aws.desired() == 1
    signal.observe(10, 10)
    assert signal.raises == 1 and aws.desired() == 5
    aws.send(300)
    signal.observe(10, 10)  # within the interval: no second call
    assert signal.raises == 1
    now[0] += capacity.RAISE_INTERVAL_SECONDS
    signal.observe(10, 10)
    assert signal.raises == 2 and aws.desired() == 9


def test_a_worker_outside_a_group_never_calls() -> None:
    signal = BacklogSignal(None, None, None, "")
    for _ in range(10):
        signal.observe(10, 10)
    assert signal.raises == 0


def test_the_client_raises_capacity_after_sending(aws: Any) -> None:
    from client import api

    aws.group(0, 3)
    stack = api.StackInfo(name="cap", request_queue_url=aws.queue, dead_letter_queue_url=aws.queue,
                          bucket="b", reply_queue_prefix="cap-reply-", worker_group=GROUP)
    client = api.Client(boto3.Session(), stack)
    client.submit([("stats", {"numbers": [1, 2]})], wait=False)
    assert aws.desired() == 1


def test_a_worker_raise_that_breaks_never_reaches_the_loop(
        caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def get_queue_attributes(self, **_kwargs: Any) -> None:
            raise RuntimeError("connection pool is closed")

    signal = BacklogSignal(object(), Broken(), GROUP, "url")
    with caplog.at_level(logging.WARNING, logger="capacity"):
        for _ in range(capacity.FULL_BATCHES_IN_A_ROW):
            signal.observe(10, 10)
    assert signal.raises == 1
    assert "connection pool is closed" in caplog.records[0].getMessage()
