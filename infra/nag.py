"""The scanner findings this stack accepts, each with its reason: cdk-nag, cfn-lint, checkov.

cdk-nag 3.x reads its acknowledgments (construct metadata) when tests run the pack on the app;
cfn-lint and checkov read theirs from the resource's Metadata in the synthesized template.
"""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct

PACK = "AwsSolutions::AwsSolutions-"
CHECKOV_ID = re.compile(r"CKV2?_AWS_\d+")
# A reason must say why, for this resource: shorter than this it cannot.
MIN_REASON = 80


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=PACK + rule, reason=reason))


def acknowledge_findings(stack: Any) -> None:
    """cdk-nag's acknowledgments, then checkov's skips, on the WebQueueWorkerStack `stack`.

    (Typed Any: stack.py imports this module.)
    """
    skip_checkov_findings(stack)
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
        "IAM5[Resource::*]",
        "Two statements need '*': the SSM agent's Session Manager actions (a copy of "
        "AmazonSSMManagedInstanceCore without ssm:GetParameter*, which take no resource), and "
        "autoscaling:DescribeAutoScalingGroups, which supports no resource-level permission. "
        "A deny of ssm:GetParameter* on '*' keeps every parameter out of the worker's reach.",
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
        "inputs/ of this stack's bucket, and s3:DeleteObject there (a cancelled job's inputs).",
    )
    acknowledge(
        role,
        f"IAM5[Resource::{bucket_arn}/cancels/*]",
        "A cancel puts cancels/<job id>; the worker may only s3:GetObject (a HEAD) there, to "
        "learn whether a job it holds was cancelled.",
    )
    acknowledge(
        role,
        f"IAM5[Resource::{bucket_arn}/running/*]",
        "The worker keeps running/<job id>.json while a long job runs and deletes it at the "
        "end; s3:PutObject and s3:DeleteObject under running/ only.",
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
        "pinned to this stack's group name, and the actions are the worker's own: protect "
        "itself while busy, raise the desired capacity, complete its launch hook.",
    )


def auto_delete_handler(stack: Stack) -> CfnResource | None:
    """The Lambda function of CDK's auto-delete-objects provider (a stack-level singleton)."""
    provider = stack.node.try_find_child("Custom::S3AutoDeleteObjectsCustomResourceProvider")
    handler = provider.node.try_find_child("Handler") if provider else None
    return handler if handler is not None and CfnResource.is_cfn_resource(handler) else None


def quiet_cfn_lint_on_cdk_internals(stack: Stack) -> None:
    """cfn-lint W3005 (redundant DependsOn) on the handler of CDK's auto-delete-objects provider:
    CDK itself writes both the DependsOn and the GetAtt of its role; that is harmless and not
    ours to change. The ignore is written into that one resource's Metadata."""
    handler = auto_delete_handler(stack)
    if handler is not None:
        handler.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})


def skip_checkov(construct: IConstruct, check: str, reason: str) -> None:
    """Write a checkov skip with its reason into the CloudFormation resource's Metadata.

    `construct` is the resource or an L2 construct whose default child is the resource.
    """
    resource = construct if CfnResource.is_cfn_resource(construct) else construct.node.default_child
    if not CHECKOV_ID.fullmatch(check):
        raise ValueError(f"{check!r} is not a checkov AWS check id like CKV_AWS_27")
    if len(reason.strip()) < MIN_REASON:
        raise ValueError(f"the skip of {check} needs a specific reason (>= {MIN_REASON} chars)")
    skips = (resource.get_metadata("checkov") or {}).get("skip", [])
    resource.add_metadata("checkov", {"skip": [*skips, {"id": check, "comment": reason}]})


def skip_checkov_findings(stack: Any) -> None:
    """The checkov CloudFormation findings the stack accepts (docs/operations.md lists them)."""
    for queue in (stack.queues.requests, stack.queues.dead_letters):
        skip_checkov(
            queue,
            "CKV_AWS_27",
            "Encrypted at rest with SQS-managed keys (SqsManagedSseEnabled: true), which checkov "
            "does not recognise; SSE-KMS would add KMS calls, quotas and charges for no "
            "protection beyond SSE-SQS, since the AWS-managed key's policy cannot be narrowed.",
        )
    skip_checkov(
        stack.fleet.role,
        "CKV_AWS_111",
        "The SSM agent's own write actions (ssm:PutInventory, ssm:UpdateInstanceInformation, "
        "ec2messages:SendReply and the rest of AmazonSSMManagedInstanceCore, without "
        "ssm:GetParameter*) support no resource-level permission; Session Manager needs them.",
    )
    bucket = stack.storage.bucket
    skip_checkov(
        bucket,
        "CKV_AWS_18",
        "Short-lived job data (expires after retention_days), written only by the client and "
        "the worker role; access logs need a second bucket that costs more than the data. "
        "Use CloudTrail S3 data events for an audit (same reason as cdk-nag S1).",
    )
    skip_checkov(
        bucket,
        "CKV_AWS_21",
        "Every key carries its job id and a job processed twice writes the same bytes, so old "
        "versions hold nothing to recover; with versioning each overwrite and each expiry "
        "would leave a billed noncurrent version behind, defeating the retention_days expiry.",
    )
    skip_checkov(
        stack.monitoring.log_group,
        "CKV_AWS_158",
        "CloudWatch Logs encrypts every log group at rest with service keys; a KMS key of our "
        "own (AWS-managed keys are not accepted here) costs 1 USD a month, outside the free "
        "tier; the worker's lines (job ids, kinds, timings, error messages) expire in 14 days.",
    )
    skip_checkov(
        stack.monitoring.topic,
        "CKV_AWS_26",
        "The topic carries alarm and scaling-error notices, no job data. The AWS-managed key "
        "alias/aws/sns does not let CloudWatch alarms publish (its policy cannot grant "
        "cloudwatch.amazonaws.com kms:GenerateDataKey), and a customer key costs 1 USD/month.",
    )
    handler = auto_delete_handler(stack)
    if handler is None:
        return
    cdk_owned = "CDK's own handler that empties the bucket before the stack deletes it: "
    skip_checkov(
        handler,
        "CKV_AWS_115",
        cdk_owned + "CloudFormation calls it only when the bucket is created, replaced or "
        "deleted; reserved concurrency would take from the account's unreserved pool.",
    )
    skip_checkov(
        handler,
        "CKV_AWS_116",
        cdk_owned + "it reports its own errors to CloudFormation (a FAILED response, "
        "DELETE_FAILED in the stack's events); a DLQ would only collect stale CloudFormation "
        "requests that can no longer be answered.",
    )
    skip_checkov(
        handler,
        "CKV_AWS_117",
        cdk_owned + "it calls S3 and CloudFormation's response URL; inside our VPC (public "
        "subnets, no NAT gateway) a Lambda function has no route to either without a NAT "
        "gateway (about 32 USD a month) or endpoints.",
    )
