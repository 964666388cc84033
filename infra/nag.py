"""The cdk-nag AwsSolutions findings this stack accepts, each with its reason.

cdk-nag 3.x reads these acknowledgments (construct metadata) when tests run the pack on the app.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct

PACK = "AwsSolutions::AwsSolutions-"


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=PACK + rule, reason=reason))


def acknowledge_findings(stack: Any) -> None:
    """Acknowledge on the WebQueueWorkerStack `stack` (not imported: stack.py imports this)."""
    config = stack.config
    bucket = stack.storage.bucket
    bucket_arn = f"<{Stack.of(stack).get_logical_id(bucket.node.default_child)}.Arn>"
    role = stack.fleet.role
    where = "<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>"

    acknowledge(
        bucket,
        "S1",
        "The bucket holds only short-lived job data (expires after retention_days) written by "
        "the client and the worker role; server access logs would need a second bucket and "
        "cost more than the data itself. Use CloudTrail S3 data events if you need an audit.",
    )
    acknowledge(
        stack.vpc,
        "VPC7",
        "The VPC has no inbound rules (SSH only with -c ssh_cidr=<your /32>) and carries only "
        "HTTPS to AWS APIs and package mirrors; flow logs would add CloudWatch Logs ingestion "
        "charges to a free-tier stack. Add ec2.FlowLog if you need network forensics.",
    )
    acknowledge(
        stack.fleet.group,
        "AS3",
        "Scaling failures (launch/terminate errors) go to the alarm topic; successful launches "
        "and terminations are not notified because backlog scaling would flood the alarm "
        "address. The group's activity history keeps them.",
    )
    acknowledge(
        role,
        "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]",
        "AmazonSSMManagedInstanceCore is the AWS-maintained minimum for Session Manager, the "
        "shell access that replaces an open SSH port; AWS updates it with the SSM agent.",
    )
    acknowledge(
        role,
        f"IAM5[Resource::arn:{where.format(service='sqs')}:{config.reply_queue_prefix}*]",
        "Clients create one reply queue per run with a random suffix, so the names are not "
        "known at deploy time; the wildcard is limited to sqs:SendMessage on this stack's "
        f"'{config.reply_queue_prefix}' prefix in this account and region.",
    )
    acknowledge(
        role,
        f"IAM5[Resource::{bucket_arn}/inputs/*]",
        "Job ids are created per job by the client; the worker may only s3:GetObject under "
        "inputs/ of this stack's bucket.",
    )
    for prefix in ("outputs", "results"):
        acknowledge(
            role,
            f"IAM5[Resource::{bucket_arn}/{prefix}/*]",
            f"The worker writes each job's {prefix}/<job id> objects; it may only s3:PutObject "
            f"under {prefix}/ of this stack's bucket.",
        )
    acknowledge(
        role,
        f"IAM5[Resource::arn:{where.format(service='autoscaling')}:autoScalingGroup:*"
        f":autoScalingGroupName/{config.worker_group_name}]",
        "A group ARN contains an id known only after creation, and referencing the group would "
        "make the role wait for the group that waits for the worker's signal; the ARN is "
        "pinned to this stack's group name and the only action is SetInstanceProtection.",
    )


def quiet_cfn_lint_on_cdk_internals(stack: Stack) -> None:
    """cfn-lint W3005 (redundant DependsOn) on the handler of CDK's auto-delete-objects provider:
    CDK itself writes both the DependsOn and the GetAtt of its role; that is harmless and not
    ours to change. The ignore is written into that one resource's Metadata."""
    provider = stack.node.try_find_child("Custom::S3AutoDeleteObjectsCustomResourceProvider")
    handler = provider.node.try_find_child("Handler") if provider else None
    if handler is not None:
        handler.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
