"""Scale-in protection: set while busy, lifted when idle, one Auto Scaling call per change."""

import boto3
from moto import mock_aws

from worker_src.protection import ScaleInProtection, instance_id_from_metadata


class Counting:
    def __init__(self, client):
        self.client, self.calls = client, 0

    def set_instance_protection(self, **kwargs):
        self.calls += 1
        return self.client.set_instance_protection(**kwargs)


def protected(autoscaling, group):
    [instance] = autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[group])["AutoScalingGroups"][0]["Instances"]
    return instance["ProtectedFromScaleIn"]


def one_instance_group(**options):
    """A group "workers" with one instance (moto): the client and that instance."""
    autoscaling = boto3.client("autoscaling")
    # Any image id: moto does not look it up, and listing its 1,300 images takes seconds.
    autoscaling.create_launch_configuration(LaunchConfigurationName="lc", ImageId="ami-12c6146b",
                                            InstanceType="t2.micro")
    autoscaling.create_auto_scaling_group(AutoScalingGroupName="workers",
                                          LaunchConfigurationName="lc", MinSize=1,
                                          AvailabilityZones=["us-east-1a"], **options)
    [instance] = autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"]
    return autoscaling, instance


@mock_aws
def test_protection_follows_the_busy_state():
    autoscaling, instance = one_instance_group(MaxSize=1)
    counting = Counting(autoscaling)
    protection = ScaleInProtection(counting, "workers", instance["InstanceId"])

    protection.set_busy(True)
    protection.set_busy(True)
    assert protected(autoscaling, "workers") is True
    protection.set_busy(False)
    assert protected(autoscaling, "workers") is False
    assert counting.calls == 2


@mock_aws
def test_the_first_idle_receive_lifts_the_launch_protection():
    """A scaling group launches its instances protected; the worker's first call lifts it."""
    autoscaling, instance = one_instance_group(MaxSize=2, NewInstancesProtectedFromScaleIn=True)
    assert instance["ProtectedFromScaleIn"] is True
    counting = Counting(autoscaling)
    protection = ScaleInProtection(counting, "workers", instance["InstanceId"])
    protection.set_busy(False)
    assert protected(autoscaling, "workers") is False
    protection.set_busy(False)
    assert counting.calls == 1


def test_without_a_group_nothing_is_called():
    protection = ScaleInProtection(None, None, None)
    protection.set_busy(True)  # would fail on a None client if it called anything
    assert protection.protected is None


def test_off_ec2_there_is_no_instance_id(monkeypatch):
    monkeypatch.setattr("worker_src.protection.IMDS", "http://127.0.0.1:9/latest")
    assert instance_id_from_metadata(timeout=0.5) is None
