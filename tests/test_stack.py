"""The synthesized stack: aws_cdk.assertions on every property issue 2 and issue 3 ask for."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match

from infra.config import ConfigError, config_from_context
from infra.worker_role import SESSION_MANAGER_ACTIONS
from tests.synth import Synth, render, synthesized

OUTPUT_KEYS = {
    "RequestQueueUrl",
    "DeadLetterQueueUrl",
    "BucketName",
    "WorkerGroupName",
    "ReplyQueuePrefix",
    "MaxReceiveCount",
    "VisibilityTimeout",
    "LogGroupName",
    "DashboardUrl",
    "MetricNamespace",
}
# Only with ssh_cidr: no key pair exists otherwise.
SSH_OUTPUT_KEYS = {"KeyPairId", "PrivateKeyParameter"}
WORKER_ENV = {
    "WQW_REQUEST_QUEUE_URL",
    "WQW_DEAD_LETTER_QUEUE_URL",
    "WQW_BUCKET",
    "WQW_REPLY_QUEUE_PREFIX",
    "WQW_MAX_RECEIVE_COUNT",
    "WQW_VISIBILITY_TIMEOUT",
    "WQW_WORKER_GROUP",
    "WQW_METRIC_NAMESPACE",
    "WQW_MEMORY_BUDGET_MB",
    "AWS_REGION",
}
SCALED = {
    "stack_name": "wqw-scaled",
    "max_workers": "3",
    "ssh_cidr": "203.0.113.7/32",
    "alarm_email": "ops@example.com",
    "instance_type": "t3.small",
    "retention_days": "3",
    "visibility_timeout": "45",
}


def worker_asset(synth: Synth) -> dict[str, str]:
    """The file asset whose staged directory holds install.sh: its path, bucket and key."""
    manifest = Path(synth.assembly.directory) / f"{synth.stack.artifact_id}.assets.json"
    found = [
        {"path": a["source"]["path"], **destination}
        for a in json.loads(manifest.read_text())["files"].values()
        for destination in a["destinations"].values()
        if (Path(synth.assembly.directory) / a["source"]["path"] / "install.sh").exists()
    ]
    assert len(found) == 1
    return found[0]


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesized({}, tmp_path_factory)


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesized(SCALED, tmp_path_factory)


# --- context options -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "cidr", ["0.0.0.0/0", "::/0", "banana", "10.0.0.1/40", "10.0.0.0/8", "2001:db8::/64",
             "192.0.2.1/24"],  # the last one has host bits set
)
def test_ssh_cidr_refused(cidr: str) -> None:
    with pytest.raises(ConfigError, match="ssh_cidr"):
        config_from_context({"ssh_cidr": cidr})


def test_ssh_cidr_accepted() -> None:
    assert config_from_context({"ssh_cidr": "198.51.100.7/32"}).ssh_cidr == "198.51.100.7/32"


@pytest.mark.parametrize(
    ("name", "value"),
    [("max_workers", "0"), ("max_workers", "two"), ("retention_days", "0"),
     ("visibility_timeout", "43201"), ("instance_type", "huge"), ("alarm_email", "nobody"),
     ("stack_name", "1-starts-with-digit"), ("stack_name", "x" * 49)],
)
def test_bad_options_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        config_from_context({name: value})


def test_defaults_and_json_values() -> None:
    config = config_from_context({"max_workers": 2, "alarm_email": "", "other": "ignored"})
    assert (config.stack_name, config.max_workers, config.instance_type) == (
        "web-queue-worker", 2, "t2.micro")
    assert (config.retention_days, config.visibility_timeout, config.alarm_email) == (7, 120, None)


# --- queues ----------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["default", "scaled"])
def test_queues(which: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(which)
    requests, dlq = synth.queues()
    props = synth.resources[requests]["Properties"]
    assert props["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}, "maxReceiveCount": 3}
    assert props["VisibilityTimeout"] == synth.config.visibility_timeout
    assert props["ReceiveMessageWaitTimeSeconds"] == 20
    assert synth.resources[dlq]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    for name in (requests, dlq):
        assert synth.resources[name]["Properties"]["SqsManagedSseEnabled"] is True
        assert synth.resources[name]["DeletionPolicy"] == "Delete"
    # enforceSSL: each queue's policy denies every request made without TLS
    policies = synth.of_type("AWS::SQS::QueuePolicy").values()
    denied = {
        q["Ref"]
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for q in p["Properties"]["Queues"]
    }
    assert denied == {requests, dlq}


# --- bucket ----------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["default", "scaled"])
def test_bucket(which: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(which)
    name, bucket = synth.one("AWS::S3::Bucket")
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True,
        "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    rules = props["LifecycleConfiguration"]["Rules"]
    expiring = {r["Prefix"]: r["ExpirationInDays"] for r in rules if "ExpirationInDays" in r}
    assert expiring == {p: synth.config.retention_days for p in (
        "inputs/", "outputs/", "results/", "cancels/", "running/")}
    aborts = [r for r in rules if "AbortIncompleteMultipartUpload" in r]
    assert len(aborts) == 1 and "Prefix" not in aborts[0]
    assert aborts[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert all(r["Status"] == "Enabled" for r in rules)
    assert bucket["DeletionPolicy"] == "Delete"
    synth.template.has_resource_properties(
        "Custom::S3AutoDeleteObjects", {"BucketName": {"Ref": name}})
    synth.template.has_resource_properties("AWS::S3::BucketPolicy", {
        "Bucket": {"Ref": name},
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})])}})


# --- network ---------------------------------------------------------------------------------

def test_vpc_is_public_only_without_nat(default: Synth) -> None:
    assert default.of_type("AWS::EC2::NatGateway") == {}
    assert default.of_type("AWS::EC2::EIP") == {}
    subnets = default.of_type("AWS::EC2::Subnet").values()
    assert len(subnets) == 2
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is True for s in subnets)
    routes = default.of_type("AWS::EC2::Route").values()
    assert routes and all("GatewayId" in r["Properties"] for r in routes)


def test_no_ingress_by_default(default: Synth) -> None:
    _, group = default.one("AWS::EC2::SecurityGroup")
    assert "SecurityGroupIngress" not in group["Properties"]
    assert default.of_type("AWS::EC2::SecurityGroupIngress") == {}
    egress = group["Properties"]["SecurityGroupEgress"]
    assert [(r["CidrIp"], r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in egress] == [
        ("0.0.0.0/0", "tcp", 443, 443)]


def test_ssh_only_from_the_given_cidr(scaled: Synth) -> None:
    _, group = scaled.one("AWS::EC2::SecurityGroup")
    ingress = group["Properties"]["SecurityGroupIngress"]
    assert [(r["CidrIp"], r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in ingress] == [
        (SCALED["ssh_cidr"], "tcp", 22, 22)]


# --- instances -------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["default", "scaled"])
def test_launch_template(which: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(which)
    _, template = synth.one("AWS::EC2::LaunchTemplate")
    data = template["Properties"]["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["InstanceType"] == synth.config.instance_type
    (device,) = data["BlockDeviceMappings"]
    assert device["Ebs"]["Encrypted"] is True and device["Ebs"]["VolumeType"] == "gp3"
    if synth.config.ssh_cidr:
        key_pair, _ = synth.one("AWS::EC2::KeyPair")
        assert data["KeyName"] == {"Ref": key_pair}
    else:
        assert synth.of_type("AWS::EC2::KeyPair") == {} and "KeyName" not in data
    group, _ = synth.one("AWS::EC2::SecurityGroup")
    assert data["SecurityGroupIds"] == [{"Fn::GetAtt": [group, "GroupId"]}]
    profile, profile_res = synth.one("AWS::IAM::InstanceProfile")
    assert data["IamInstanceProfile"] == {"Arn": {"Fn::GetAtt": [profile, "Arn"]}}
    role, _ = worker_role(synth)
    assert profile_res["Properties"]["Roles"] == [{"Ref": role}]
    # The image is resolved by CloudFormation from the public SSM parameter at deploy time.
    image_param = data["ImageId"]["Ref"]
    parameter = synth.json["Parameters"][image_param]
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert parameter["Default"].startswith("/aws/service/ami-amazon-linux-latest/al2023-ami-")
    assert parameter["Default"].endswith("-x86_64")


def test_user_data_installs_and_configures_the_worker(scaled: Synth) -> None:
    _, template = scaled.one("AWS::EC2::LaunchTemplate")
    script = render(template["Properties"]["LaunchTemplateData"]["UserData"])
    env = dict(
        line.split("=", 1) for line in script.split("<<'WQW_ENV'\n")[1].split("\nWQW_ENV")[0]
        .splitlines()
    )
    requests, dlq = scaled.queues()
    bucket, _ = scaled.one("AWS::S3::Bucket")
    asg, asg_res = scaled.one("AWS::AutoScaling::AutoScalingGroup")
    assert set(env) == WORKER_ENV
    assert env["WQW_REQUEST_QUEUE_URL"] == "${" + requests + "}"
    assert env["WQW_DEAD_LETTER_QUEUE_URL"] == "${" + dlq + "}"
    assert env["WQW_BUCKET"] == "${" + bucket + "}"
    assert env["WQW_REPLY_QUEUE_PREFIX"] == f"{SCALED['stack_name']}_reply_"
    assert env["WQW_MAX_RECEIVE_COUNT"] == "3"
    assert env["WQW_VISIBILITY_TIMEOUT"] == SCALED["visibility_timeout"]
    assert env["WQW_WORKER_GROUP"] == asg_res["Properties"]["AutoScalingGroupName"]
    assert env["AWS_REGION"] == "${AWS::Region}"
    # downloads this synth's worker asset, then runs its install script with the signal target
    asset = worker_asset(scaled)
    assert f"'s3://{asset['bucketName']}/{asset['objectKey']}'" in script
    log_group, _ = scaled.one("AWS::Logs::LogGroup")
    install = script.splitlines()[-1]
    assert install.startswith("bash /var/tmp/wqw-asset/worker_src/install.sh ")
    assert f"--cfn-resource '{asg}'" in install
    assert "--log-group '${" + log_group + "}'" in install
    assert script.startswith("#!/bin/bash\nset -euo pipefail\n")


def test_worker_asset_is_worker_src_without_caches(default: Synth) -> None:
    staged = Path(default.assembly.directory) / worker_asset(default)["path"]
    files = {p.relative_to(staged).as_posix() for p in staged.rglob("*")}
    assert {"__init__.py", "wire.py", "requirements.txt", "systemd/wqw-worker.service"} <= files
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]


# --- fleet -----------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["default", "scaled"])
def test_auto_scaling_group(which: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(which)
    _, asg = synth.one("AWS::AutoScaling::AutoScalingGroup")
    props = asg["Properties"]
    assert props["MinSize"] == "1"
    assert props["MaxSize"] == str(synth.config.max_workers)
    assert "DesiredCapacity" not in props
    assert props["AutoScalingGroupName"] == f"{synth.config.stack_name}-workers"
    subnets = set(synth.of_type("AWS::EC2::Subnet"))
    assert {s["Ref"] for s in props["VPCZoneIdentifier"]} == subnets
    assert asg["CreationPolicy"]["ResourceSignal"]["Count"] == 1
    rolling = asg["UpdatePolicy"]["AutoScalingRollingUpdate"]
    assert rolling["WaitOnResourceSignals"] is True
    assert rolling["MinInstancesInService"] < synth.config.max_workers
    topic, _ = synth.one("AWS::SNS::Topic")
    (notification,) = props["NotificationConfigurations"]
    assert notification["TopicARN"] == {"Ref": topic}
    assert set(notification["NotificationTypes"]) == {
        "autoscaling:EC2_INSTANCE_LAUNCH_ERROR", "autoscaling:EC2_INSTANCE_TERMINATE_ERROR"}


def test_one_worker_has_no_scaling(default: Synth) -> None:
    assert default.of_type("AWS::AutoScaling::ScalingPolicy") == {}
    # the DLQ alarm and the stuck-backlog alarm only
    alarms = default.of_type("AWS::CloudWatch::Alarm").values()
    assert sorted(a["Properties"]["MetricName"] for a in alarms) == [
        "ApproximateAgeOfOldestMessage", "ApproximateNumberOfMessagesVisible"]


def worker_role(synth: Synth) -> tuple[str, dict[str, Any]]:
    roles = {
        k: v for k, v in synth.of_type("AWS::IAM::Role").items()
        if v["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        == {"Service": "ec2.amazonaws.com"}
    }
    assert len(roles) == 1
    return next(iter(roles.items()))


def grants(synth: Synth, effect: str = "Allow") -> set[tuple[str, str]]:
    """Every (action, resource) the worker role is allowed (or denied), from its policies."""
    name, role = worker_role(synth)
    documents = [p["PolicyDocument"] for p in role["Properties"].get("Policies", [])]
    documents += [
        p["Properties"]["PolicyDocument"] for p in synth.of_type("AWS::IAM::Policy").values()
        if {"Ref": name} in p["Properties"].get("Roles", [])
    ]
    pairs = set()
    for document in documents:
        for statement in document["Statement"]:
            assert set(statement) <= {"Sid", "Effect", "Action", "Resource"}
            if statement["Effect"] != effect:
                continue
            actions = statement["Action"]
            resources = statement["Resource"]
            for action in [actions] if isinstance(actions, str) else actions:
                for resource in [resources] if not isinstance(resources, list) else resources:
                    pairs.add((action, render(resource)))
    return pairs


@pytest.mark.parametrize("which", ["default", "scaled"])
def test_worker_role_is_least_privilege(which: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(which)
    requests, dlq = synth.queues()
    bucket, _ = synth.one("AWS::S3::Bucket")
    log_group, _ = synth.one("AWS::Logs::LogGroup")
    stack = synth.config.stack_name
    account = "${AWS::Region}:${AWS::AccountId}"
    asset = worker_asset(synth)
    expected = {
        *{(a, "${" + requests + ".Arn}") for a in (
            "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes")},
        ("sqs:SendMessage", "${" + dlq + ".Arn}"),
        ("sqs:SendMessage", f"arn:${{AWS::Partition}}:sqs:{account}:{stack}_reply_*"),
        ("s3:GetObject", "${" + bucket + ".Arn}/inputs/*"),
        ("s3:PutObject", "${" + bucket + ".Arn}/outputs/*"),
        ("s3:PutObject", "${" + bucket + ".Arn}/results/*"),
        ("s3:GetObject", "${" + bucket + ".Arn}/cancels/*"),
        ("s3:PutObject", "${" + bucket + ".Arn}/running/*"),
        ("s3:DeleteObject", "${" + bucket + ".Arn}/running/*"),
        ("s3:DeleteObject", "${" + bucket + ".Arn}/inputs/*"),
        *{(a, "${" + log_group + ".Arn}") for a in (
            "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams")},
        *{(a, f"arn:${{AWS::Partition}}:autoscaling:{account}:autoScalingGroup:*"
              f":autoScalingGroupName/{stack}-workers") for a in (
            "autoscaling:SetInstanceProtection", "autoscaling:SetDesiredCapacity",
            "autoscaling:CompleteLifecycleAction")},
        ("autoscaling:DescribeAutoScalingGroups", "*"),
        *{(a, "*") for a in SESSION_MANAGER_ACTIONS},
        ("cloudformation:SignalResource", "${AWS::StackId}"),
        ("s3:GetObject",
         f"arn:${{AWS::Partition}}:s3:::{asset['bucketName']}/{asset['objectKey']}"),
    }
    assert grants(synth) == expected
    # Session Manager without parameter reads: no managed policy, and an explicit deny.
    _, role = worker_role(synth)
    assert "ManagedPolicyArns" not in role["Properties"]
    assert not [a for a, _ in grants(synth) if a.startswith("ssm:GetParameter")]
    assert grants(synth, "Deny") == {("ssm:GetParameter*", "*")}


# --- logs, alarm, outputs, teardown ----------------------------------------------------------

def test_log_group(default: Synth) -> None:
    _, group = default.one("AWS::Logs::LogGroup")
    assert group["Properties"]["RetentionInDays"] == 14
    assert group["DeletionPolicy"] == "Delete"


@pytest.mark.parametrize("which", ["default", "scaled"])
def test_dead_letter_alarm(which: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(which)
    _, dlq = synth.queues()
    topic, _ = synth.one("AWS::SNS::Topic")
    synth.template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}],
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 0,
        "AlarmActions": [{"Ref": topic}],
    })
    subscriptions = synth.of_type("AWS::SNS::Subscription").values()
    emails = [(s["Properties"]["Protocol"], s["Properties"]["Endpoint"]) for s in subscriptions]
    assert emails == ([("email", synth.config.alarm_email)] if synth.config.alarm_email else [])


@pytest.mark.parametrize("which", ["default", "scaled"])
def test_outputs(which: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(which)
    outputs = {k: v["Value"] for k, v in synth.json["Outputs"].items()}
    assert set(outputs) == OUTPUT_KEYS | (SSH_OUTPUT_KEYS if synth.config.ssh_cidr else set())
    requests, dlq = synth.queues()
    bucket, _ = synth.one("AWS::S3::Bucket")
    asg, _ = synth.one("AWS::AutoScaling::AutoScalingGroup")
    log_group, _ = synth.one("AWS::Logs::LogGroup")
    assert outputs["RequestQueueUrl"] == {"Ref": requests}
    assert outputs["DeadLetterQueueUrl"] == {"Ref": dlq}
    assert outputs["BucketName"] == {"Ref": bucket}
    assert outputs["WorkerGroupName"] == {"Ref": asg}
    assert outputs["ReplyQueuePrefix"] == f"{synth.config.stack_name}_reply_"
    assert outputs["MaxReceiveCount"] == "3"
    assert outputs["VisibilityTimeout"] == str(synth.config.visibility_timeout)
    assert outputs["LogGroupName"] == {"Ref": log_group}
    if not synth.config.ssh_cidr:
        return
    key_pair, _ = synth.one("AWS::EC2::KeyPair")
    assert outputs["KeyPairId"] == {"Fn::GetAtt": [key_pair, "KeyPairId"]}
    assert render(outputs["PrivateKeyParameter"]) == "/ec2/keypair/${" + key_pair + ".KeyPairId}"


@pytest.mark.parametrize("which", ["default", "scaled"])
def test_destroy_removes_everything(which: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(which)
    kept = {k for k, v in synth.resources.items()
            if v.get("DeletionPolicy", "Delete") != "Delete"
            or v.get("UpdateReplacePolicy", "Delete") != "Delete"}
    assert kept == set()


def test_stack_is_environment_agnostic(default: Synth) -> None:
    assert default.stack.environment == "aws://unknown-account/unknown-region"
    text = json.dumps(default.json)
    assert not re.search(r"\b\d{12}\b", text)
    assert not re.search(r"\b(us|eu|ap|sa|ca|me|af)-[a-z]+-\d\b", text)
    _, subnet = next(iter(default.of_type("AWS::EC2::Subnet").items()))
    assert "Fn::GetAZs" in json.dumps(subnet["Properties"]["AvailabilityZone"])
