"""The template's elastic parts: min_workers, the warm pool, the launch hook, the capacity raise."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest

from infra.config import ConfigError, config_from_context
from infra.stack import WebQueueWorkerStack
from infra.worker_fleet import LAUNCH_HOOK, SIGNAL_TIMEOUT
from worker_src import contract

ELASTIC = {"stack_name": "wqw-elastic", "min_workers": "0", "max_workers": "10"}


def synth(context: dict[str, str], tmp_path: Any) -> dict[str, Any]:
    app = cdk.App(outdir=str(tmp_path))
    stack = WebQueueWorkerStack(app, config_from_context(context))
    return app.synth().get_stack_by_name(stack.stack_name).template


def of_type(template: dict[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == cfn_type}


def one(template: dict[str, Any], cfn_type: str) -> tuple[str, dict[str, Any]]:
    (found,) = of_type(template, cfn_type).items()
    return found


@pytest.fixture(scope="module")
def elastic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synth(ELASTIC, tmp_path_factory.mktemp("elastic"))


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synth({}, tmp_path_factory.mktemp("default"))


def user_data(template: dict[str, Any]) -> str:
    _, launch = one(template, "AWS::EC2::LaunchTemplate")
    return json.dumps(launch["Properties"]["LaunchTemplateData"]["UserData"])


def test_min_workers_zero_starts_no_instance_and_waits_for_no_signal(elastic) -> None:
    _, group = one(elastic, "AWS::AutoScaling::AutoScalingGroup")
    assert (group["Properties"]["MinSize"], group["Properties"]["MaxSize"]) == ("0", "10")
    assert "DesiredCapacity" not in group["Properties"]
    assert "CreationPolicy" not in group


def test_warm_pool_of_stopped_instances_reused_on_scale_in(elastic) -> None:
    name, _ = one(elastic, "AWS::AutoScaling::AutoScalingGroup")
    _, pool = one(elastic, "AWS::AutoScaling::WarmPool")
    assert pool["Properties"] == {
        "AutoScalingGroupName": {"Ref": name},
        "PoolState": "Stopped",
        "MinSize": 1,
        "MaxGroupPreparedCapacity": 1,  # min_workers + warm_pool_size
        "InstanceReusePolicy": {"ReuseOnScaleIn": True},
    }


def test_deploy_waits_for_the_pool_to_be_installed(elastic) -> None:
    pool, _ = one(elastic, "AWS::AutoScaling::WarmPool")
    handle, _ = one(elastic, "AWS::CloudFormation::WaitConditionHandle")
    _, wait = one(elastic, "AWS::CloudFormation::WaitCondition")
    assert wait["Properties"]["Handle"] == {"Ref": handle}
    assert wait["Properties"]["Count"] == 1
    assert pool in wait["DependsOn"]
    # each new instance's install.sh gets the handle's URL to signal
    assert f'--pool-ready-url \'", {{"Ref": "{handle}"}}' in user_data(elastic)


def test_no_instance_starts_before_its_worker_is_installed(elastic, default) -> None:
    for template in (elastic, default):
        _, group = one(template, "AWS::AutoScaling::AutoScalingGroup")
        assert group["Properties"]["LifecycleHookSpecificationList"] == [{
            "LifecycleHookName": LAUNCH_HOOK,
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
            "DefaultResult": "ABANDON",
            "HeartbeatTimeout": int(SIGNAL_TIMEOUT.to_seconds()),
        }]
        script = user_data(template)
        assert f"--launch-hook '{LAUNCH_HOOK}'" in script
        assert f"--group '{group['Properties']['AutoScalingGroupName']}'" in script


def test_one_worker_and_no_growth_means_no_pool(default) -> None:
    assert of_type(default, "AWS::AutoScaling::WarmPool") == {}
    assert of_type(default, "AWS::CloudFormation::WaitCondition") == {}
    assert "--pool-ready-url" not in user_data(default)
    _, group = one(default, "AWS::AutoScaling::AutoScalingGroup")
    assert group["CreationPolicy"]["ResourceSignal"]["Count"] == 1


@pytest.mark.parametrize(("size", "pools"), [("0", 0), ("3", 1)])
def test_warm_pool_size_option(size: str, pools: int, tmp_path) -> None:
    template = synth({**ELASTIC, "warm_pool_size": size}, tmp_path)
    found = of_type(template, "AWS::AutoScaling::WarmPool")
    assert len(found) == pools
    if pools:
        (pool,) = found.values()
        assert pool["Properties"]["MinSize"] == int(size)


def test_memory_ceiling_and_budget_come_from_one_value(elastic) -> None:
    script = user_data(elastic)
    assert f"WQW_MEMORY_BUDGET_MB={contract.MEMORY_BUDGET_MB}" in script
    assert f"--memory-max-mb {contract.service_memory_max_mb()}" in script


def test_worker_may_raise_only_its_own_groups_capacity(elastic) -> None:
    role = next(r for r in of_type(elastic, "AWS::IAM::Role").values()
                if r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
                == {"Service": "ec2.amazonaws.com"})
    statements = [s for p in role["Properties"]["Policies"]
                  for s in p["PolicyDocument"]["Statement"]]
    (own,) = [s for s in statements if "autoscaling:SetDesiredCapacity" in s["Action"]]
    assert own["Effect"] == "Allow"
    assert json.dumps(own["Resource"]).endswith(':autoScalingGroupName/wqw-elastic-workers"]]}')
    assert sorted(own["Action"]) == ["autoscaling:CompleteLifecycleAction",
                                     "autoscaling:SetDesiredCapacity",
                                     "autoscaling:SetInstanceProtection"]
    wildcard = {a for s in statements if s["Resource"] == "*" and s["Effect"] == "Allow"
                for a in s["Action"]}
    assert not {a for a in wildcard if a.startswith("autoscaling:")} - {
        "autoscaling:DescribeAutoScalingGroups"}


def test_scale_out_from_zero_starts_at_one_waiting_job(elastic) -> None:
    alarms = [a["Properties"] for a in of_type(elastic, "AWS::CloudWatch::Alarm").values()
              if a["Properties"]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"]
    assert [a["Threshold"] for a in alarms] == [1]


def test_min_above_max_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError, match="min_workers 3 is above max_workers 2"):
        config_from_context({"min_workers": "3", "max_workers": "2"})


def test_a_scaling_group_launches_its_instances_protected(elastic, default) -> None:
    _, group = one(elastic, "AWS::AutoScaling::AutoScalingGroup")
    assert group["Properties"]["NewInstancesProtectedFromScaleIn"] is True
    _, fixed = one(default, "AWS::AutoScaling::AutoScalingGroup")
    assert fixed["Properties"].get("NewInstancesProtectedFromScaleIn", False) is False
