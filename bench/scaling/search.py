"""Templates to compare: the QPFS default, the stack's construct with other props, AWS's advice.

- The AWS CDK QueueProcessingFargateService default, synthesized here (its queue step scaling).
- infra.scaling.BacklogScaling with other props on a minimal stack (queue, group, protection):
  the same construct the stack deploys, so a candidate is exactly what it would deploy.
- AWS's recommendation for SQS workers, target tracking on backlog per in-service instance
  (metric math over the queue depth and GroupInServiceInstances), as a raw CloudFormation
  policy because CDK's target tracking takes no metric math.
"""

from __future__ import annotations

import dataclasses
from typing import Any

QPFS_STACK = "Qpfs"


def qpfs_template(max_workers: int) -> dict[str, Any]:
    """A QueueProcessingFargateService with its defaults but max_scaling_capacity."""
    import aws_cdk as cdk
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_ecs as ecs
    from aws_cdk import aws_ecs_patterns as patterns

    app = cdk.App()
    stack = cdk.Stack(app, QPFS_STACK)
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)])
    patterns.QueueProcessingFargateService(
        stack, "Service", vpc=vpc, image=ecs.ContainerImage.from_registry("worker"),
        max_scaling_capacity=max_workers, assign_public_ip=True)
    return app.synth().get_stack_by_name(QPFS_STACK).template


def _minimal_fleet(stack: Any, max_workers: int) -> tuple[Any, Any]:
    """A queue with a dead-letter queue and a t2.micro group whose workers may protect
    themselves, as in the stack."""
    from aws_cdk import Duration
    from aws_cdk import aws_autoscaling as autoscaling
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_iam as iam

    from infra.config import StackConfig
    from infra.queues import JobQueues
    from worker_src.contract import MAX_RECEIVE_COUNT

    config = StackConfig()
    queues = JobQueues(stack, "Queues", visibility_timeout=Duration.seconds(
        config.visibility_timeout), max_receive_count=MAX_RECEIVE_COUNT)
    vpc = ec2.Vpc(stack, "Vpc", max_azs=1, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)])
    group = autoscaling.AutoScalingGroup(
        stack, "Group", vpc=vpc, instance_type=ec2.InstanceType(config.instance_type),
        machine_image=ec2.MachineImage.latest_amazon_linux2023(), min_capacity=1,
        max_capacity=max_workers)
    group.add_to_role_policy(iam.PolicyStatement(
        actions=["autoscaling:SetInstanceProtection"], resources=["*"]))
    return group, queues.requests


def construct_templates(max_workers: int, props: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One template per props of BacklogScaling, all synthesized in one app."""
    import aws_cdk as cdk

    from infra.scaling import BacklogScaling

    app = cdk.App()
    names = []
    for number, kwargs in enumerate(props):
        stack = cdk.Stack(app, f"Candidate{number}")
        group, queue = _minimal_fleet(stack, max_workers)
        BacklogScaling(stack, "Scaling", group=group, queue=queue, **kwargs)
        names.append(stack.stack_name)
    assembly = app.synth()
    return [assembly.get_stack_by_name(name).template for name in names]


def target_tracking_template(max_workers: int, target: float) -> dict[str, Any]:
    """AWS's advice for SQS workers: target tracking on visible messages per in-service
    instance, a warm-up of the launch time, group metrics on."""
    import aws_cdk as cdk
    from aws_cdk import aws_autoscaling as autoscaling

    from infra.scaling import LAUNCH_TIME

    app = cdk.App()
    stack = cdk.Stack(app, "TargetTracking")
    group, queue = _minimal_fleet(stack, max_workers)
    cfn_group: autoscaling.CfnAutoScalingGroup = group.node.default_child
    cfn_group.metrics_collection = [autoscaling.CfnAutoScalingGroup.MetricsCollectionProperty(
        granularity="1Minute", metrics=["GroupInServiceInstances"])]
    cfn_group.default_instance_warmup = int(LAUNCH_TIME.to_seconds())
    spec = autoscaling.CfnScalingPolicy
    stat = spec.TargetTrackingMetricStatProperty
    metric = spec.MetricProperty
    dimension = spec.MetricDimensionProperty
    query = spec.TargetTrackingMetricDataQueryProperty
    spec(
        stack, "BacklogPerInstance", auto_scaling_group_name=group.auto_scaling_group_name,
        policy_type="TargetTrackingScaling",
        estimated_instance_warmup=int(LAUNCH_TIME.to_seconds()),
        target_tracking_configuration=spec.TargetTrackingConfigurationProperty(
            target_value=target,
            customized_metric_specification=spec.CustomizedMetricSpecificationProperty(metrics=[
                query(id="visible", return_data=False, metric_stat=stat(
                    stat="Maximum", period=60, metric=metric(
                        namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible",
                        dimensions=[dimension(name="QueueName", value=queue.queue_name)]))),
                query(id="inService", return_data=False, metric_stat=stat(
                    stat="Maximum", period=60, metric=metric(
                        namespace="AWS/AutoScaling", metric_name="GroupInServiceInstances",
                        dimensions=[dimension(name="AutoScalingGroupName",
                                              value=group.auto_scaling_group_name)]))),
                query(id="backlogPerInstance", expression="visible / inService",
                      return_data=True),
            ])))
    return app.synth().get_stack_by_name("TargetTracking").template


# High-resolution metrics: SQS publishes 1-minute metrics only, so a 10 s backlog metric is one
# the stack would publish itself (a worker or a function, every 10 s); CloudWatch shows such a
# metric within seconds. The same policy, read from its template, on that metric.
HIGH_RESOLUTION_SECONDS = 10
HIGH_RESOLUTION_DELAY = 10.0


def high_resolution(fleet: Any, label: str) -> Any:
    """`fleet`'s target tracking on 10 s datapoints of the same metrics, seen 10 s later."""
    tracking = tuple(dataclasses.replace(t, queries=tuple(
        dataclasses.replace(q, period=HIGH_RESOLUTION_SECONDS) for q in t.queries))
        for t in fleet.tracking)
    return dataclasses.replace(fleet, label=label, tracking=tracking,
                               metric_delay=HIGH_RESOLUTION_DELAY)
