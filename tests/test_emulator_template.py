"""The CDK app's own template, prepared for the emulator, deploys in moto's CloudFormation."""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from client import emulator_template
from client.emulator_template import SynthError, prepare_for_emulator, synthesize

STACK = "wqw-emu"
# Scale from zero: no instance at rest, a warm pool and its wait condition, the launch hook.
CONTEXT = {"visibility_timeout": "7", "min_workers": "0", "max_workers": "10",
           "alarm_email": "ops@example.com"}
OUTPUT_KEYS = {
    "RequestQueueUrl", "DeadLetterQueueUrl", "BucketName", "WorkerGroupName", "ReplyQueuePrefix",
    "MaxReceiveCount", "VisibilityTimeout", "LogGroupName",
}
PSEUDO = {"AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName", "AWS::StackId",
          "AWS::URLSuffix", "AWS::NoValue"}


def references(node: Any) -> set[str]:
    """Targets of Ref and Fn::GetAtt anywhere in a template fragment (test's own walker)."""
    if isinstance(node, list):
        return set().union(*map(references, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set()
    if isinstance(node.get("Ref"), str):
        found.add(node["Ref"])
    if isinstance(node.get("Fn::GetAtt"), list):
        found.add(node["Fn::GetAtt"][0])
    return found.union(*map(references, node.values())) if node else found


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synthesize(STACK, CONTEXT, tmp_path_factory.mktemp("cdk-emu"))


@pytest.fixture(scope="module")
def prepared(template: dict[str, Any]) -> dict[str, Any]:
    return prepare_for_emulator(template)


def test_synthesize_passes_context_and_stack_name(template: dict[str, Any]) -> None:
    assert template["Outputs"]["ReplyQueuePrefix"]["Value"] == f"{STACK}_reply_"
    assert template["Outputs"]["VisibilityTimeout"]["Value"] == CONTEXT["visibility_timeout"]
    assert any(r["Type"].startswith("Custom::") for r in template["Resources"].values())


def test_synthesize_reports_a_bad_option_and_keeps_no_template(tmp_path: Path) -> None:
    with pytest.raises(SynthError, match=r"ssh_cidr '0\.0\.0\.0/0'"):
        synthesize(STACK, {"ssh_cidr": "0.0.0.0/0"}, tmp_path)
    key = emulator_template.synth_key(STACK, {"ssh_cidr": "0.0.0.0/0"})
    assert not (emulator_template.CACHE / f"{key}.json").exists()


def test_prepare_drops_only_what_moto_cannot_run(
    template: dict[str, Any], prepared: dict[str, Any]
) -> None:
    original = copy.deepcopy(template)
    dropped = set(template["Resources"]) - set(prepared["Resources"])
    types = {template["Resources"][name]["Type"] for name in dropped}
    assert types == {"Custom::S3AutoDeleteObjects", "AWS::Lambda::Function", "AWS::IAM::Role",
                     "AWS::S3::BucketPolicy"}
    assert template == original  # the input is left alone
    kept = {r["Type"] for r in prepared["Resources"].values()}
    assert {"AWS::SQS::Queue", "AWS::S3::Bucket", "AWS::AutoScaling::AutoScalingGroup",
            "AWS::EC2::LaunchTemplate", "AWS::IAM::Role", "AWS::EC2::SecurityGroup",
            "AWS::EC2::VPC", "AWS::Logs::LogGroup", "AWS::CloudWatch::Alarm",
            "AWS::AutoScaling::ScalingPolicy", "AWS::SNS::Topic"} <= kept
    assert "Rules" in template and "Rules" not in prepared
    assert "BootstrapVersion" not in prepared.get("Parameters", {})
    for resource in prepared["Resources"].values():
        assert "CreationPolicy" not in resource and "UpdatePolicy" not in resource
    # nothing points at a resource that is gone
    known = set(prepared["Resources"]) | set(prepared.get("Parameters", {})) | PSEUDO
    assert references(prepared) <= known
    for resource in prepared["Resources"].values():
        depends = resource.get("DependsOn", [])
        assert set([depends] if isinstance(depends, str) else depends) <= set(prepared["Resources"])
    assert set(prepared["Outputs"]) == set(template["Outputs"])


def test_prepare_generic_rules() -> None:
    """Custom resource chain, transitive dependents, conditions and DependsOn cleanup."""
    template = {
        "Conditions": {
            "OnlyForMetadata": {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]},
            "Kept": {"Fn::Equals": ["a", "a"]},
            "Nested": {"Fn::And": [{"Condition": "Kept"}, {"Condition": "Kept"}]},
        },
        "Parameters": {"BootstrapVersion": {"Type": "AWS::SSM::Parameter::Value<String>"}},
        "Rules": {"CheckBootstrapVersion": {}},
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Condition": "Nested",
                      "DependsOn": ["ProviderRole", "Other"]},
            "Other": {"Type": "AWS::SNS::Topic", "CreationPolicy": {"ResourceSignal": {}}},
            "ProviderRole": {"Type": "AWS::IAM::Role"},
            "Provider": {"Type": "AWS::Lambda::Function",
                         "Properties": {"Role": {"Fn::GetAtt": ["ProviderRole", "Arn"]}}},
            "Custom": {"Type": "Custom::Thing", "Properties": {
                "ServiceToken": {"Fn::GetAtt": ["Provider", "Arn"]}, "Q": {"Ref": "Queue"}}},
            "UsesRole": {"Type": "AWS::S3::BucketPolicy", "Properties": {
                "PolicyDocument": {"Fn::Sub": "${ProviderRole.Arn}"}}},
            "UsesPolicy": {"Type": "AWS::SNS::Topic", "DependsOn": "UsesRole"},
            "Metadata": {"Type": "AWS::CDK::Metadata", "Condition": "OnlyForMetadata"},
            "Key": {"Type": "AWS::EC2::KeyPair"},
            "Template": {"Type": "AWS::EC2::LaunchTemplate",
                         "Properties": {"KeyName": {"Ref": "Key"}}},
        },
        "Outputs": {"KeyId": {"Value": {"Fn::GetAtt": ["Key", "KeyPairId"]}},
                    "Gone": {"Value": {"Ref": "Custom"}}},
    }
    prepared = prepare_for_emulator(template)
    assert sorted(prepared["Resources"]) == ["Other", "Queue", "Template", "UsesPolicy"]
    assert prepared["Resources"]["Queue"]["DependsOn"] == ["Other"]
    assert "DependsOn" not in prepared["Resources"]["UsesPolicy"]
    assert "CreationPolicy" not in prepared["Resources"]["Other"]
    assert sorted(prepared["Conditions"]) == ["Kept", "Nested"]
    assert "Rules" not in prepared and prepared["Parameters"] == {}
    key = prepared["Resources"]["Template"]["Properties"]["KeyName"]
    assert isinstance(key, str) and key != ""
    assert list(prepared["Outputs"]) == ["KeyId"]
    assert isinstance(prepared["Outputs"]["KeyId"]["Value"], str)


def test_deploys_in_moto_cloudformation(prepared: dict[str, Any]) -> None:
    logging.getLogger("moto").setLevel(logging.ERROR)
    with warnings.catch_warnings(), mock_aws():
        warnings.simplefilter("ignore")  # moto names the resource types it only skips
        region = "us-east-1"
        cloudformation = boto3.client("cloudformation", region_name=region)
        cloudformation.create_stack(
            StackName=STACK, TemplateBody=json.dumps(prepared),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
        (stack,) = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        assert OUTPUT_KEYS <= set(outputs)
        assert outputs["MaxReceiveCount"] == "3"
        assert outputs["ReplyQueuePrefix"] == f"{STACK}_reply_"

        sqs = boto3.client("sqs", region_name=region)
        attributes = sqs.get_queue_attributes(
            QueueUrl=outputs["RequestQueueUrl"], AttributeNames=["All"])["Attributes"]
        dlq_arn = sqs.get_queue_attributes(
            QueueUrl=outputs["DeadLetterQueueUrl"], AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert int(redrive["maxReceiveCount"]) == 3
        assert redrive["deadLetterTargetArn"] == dlq_arn
        assert attributes["VisibilityTimeout"] == CONTEXT["visibility_timeout"]

        boto3.client("s3", region_name=region).head_bucket(Bucket=outputs["BucketName"])
        groups = boto3.client("autoscaling", region_name=region).describe_auto_scaling_groups(
            AutoScalingGroupNames=[outputs["WorkerGroupName"]])["AutoScalingGroups"]
        assert [(g["MinSize"], g["MaxSize"], g["DesiredCapacity"]) for g in groups] == [
            (0, 10, 0)]
        log_groups = boto3.client("logs", region_name=region).describe_log_groups(
            logGroupNamePrefix=outputs["LogGroupName"])["logGroups"]
        assert [g["logGroupName"] for g in log_groups] == [outputs["LogGroupName"]]


@pytest.fixture
def app_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict]]:
    """A project of one infra file whose "synthesis" is recorded: the list of runs."""
    runs: list[tuple[str, dict[str, str]]] = []

    def run_app(stack_name: str, context: dict[str, str], outdir: Path) -> dict[str, Any]:
        runs.append((stack_name, context))
        return {"Resources": {}, "Outputs": {"Run": {"Value": str(len(runs))}}}

    source = tmp_path / "project"
    (source / "infra").mkdir(parents=True)
    (source / "infra" / "stack.py").write_text("A = 1\n")
    monkeypatch.setattr(emulator_template, "ROOT", source)
    monkeypatch.setattr(emulator_template, "CACHE", source / ".cache" / "templates")
    monkeypatch.setattr(emulator_template, "_run_app", run_app)
    return runs


def test_a_template_is_synthesized_once_per_inputs_and_again_when_they_change(
    tmp_path: Path, app_runs: list
) -> None:
    first = synthesize(STACK, {"max_workers": "2"}, tmp_path / "out")
    assert synthesize(STACK, {"max_workers": "2"}, tmp_path / "out") == first
    assert len(app_runs) == 1
    synthesize(STACK, {"max_workers": "3"}, tmp_path / "out")
    synthesize("another-stack", {"max_workers": "2"}, tmp_path / "out")
    (emulator_template.ROOT / "infra" / "stack.py").write_text("A = 2\n")
    changed = synthesize(STACK, {"max_workers": "2"}, tmp_path / "out")
    assert len(app_runs) == 4 and changed != first


@pytest.mark.parametrize("kept", ["[]", '"x"', "{}", '{"Resources": []}', "{not json"])
def test_a_kept_file_that_is_not_a_template_is_synthesized_again(
    tmp_path: Path, app_runs: list, kept: str
) -> None:
    emulator_template.CACHE.mkdir(parents=True)
    path = emulator_template.CACHE / f"{emulator_template.synth_key(STACK, {})}.json"
    path.write_text(kept)
    template = synthesize(STACK, {}, tmp_path / "out")
    assert template["Outputs"]["Run"]["Value"] == "1" and len(app_runs) == 1
    assert json.loads(path.read_text()) == template


def test_a_template_that_cannot_be_kept_leaves_no_temporary_file(
    tmp_path: Path, app_runs: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*_args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(emulator_template.os, "replace", disk_full)
    assert synthesize(STACK, {}, tmp_path / "out")["Outputs"]["Run"]["Value"] == "1"
    assert list(emulator_template.CACHE.iterdir()) == []


def test_without_aws_cdk_lib_here_nothing_is_cached(
    tmp_path: Path, app_runs: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_installed(name: str) -> str:
        raise emulator_template.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(emulator_template.metadata, "version", not_installed)
    synthesize(STACK, {}, tmp_path / "out")
    synthesize(STACK, {}, tmp_path / "out")
    assert len(app_runs) == 2 and not emulator_template.CACHE.exists()
