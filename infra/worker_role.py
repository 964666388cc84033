"""The worker instances' permissions: the job queues and bucket, logs, its own group, Session
Manager without parameter reads."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sqs as sqs

from worker_src import contract

# AmazonSSMManagedInstanceCore (version 3) without ssm:GetParameter and ssm:GetParameters:
# everything the SSM agent needs for Session Manager, Run Command and inventory. The managed
# policy lets an instance read every parameter of the account (other applications' secrets).
SESSION_MANAGER_ACTIONS = (
    "ssm:DescribeAssociation",
    "ssm:GetDeployablePatchSnapshotForInstance",
    "ssm:GetDocument",
    "ssm:DescribeDocument",
    "ssm:GetManifest",
    "ssm:ListAssociations",
    "ssm:ListInstanceAssociations",
    "ssm:PutInventory",
    "ssm:PutComplianceItems",
    "ssm:PutConfigurePackageResult",
    "ssm:UpdateAssociationStatus",
    "ssm:UpdateInstanceAssociationStatus",
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
)


def session_manager_policy() -> iam.PolicyDocument:
    """Session Manager for the instance, and an explicit deny of every parameter read (so a
    managed policy attached later cannot grant it either)."""
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                sid="SessionManager", actions=list(SESSION_MANAGER_ACTIONS), resources=["*"]
            ),
            iam.PolicyStatement(
                sid="NoParameterReads",
                effect=iam.Effect.DENY,
                actions=["ssm:GetParameter*"],
                resources=["*"],
            ),
        ]
    )


def group_arn(group_name: str) -> str:
    """The worker group's ARN pattern (its id is known only after creation)."""
    return (
        f"arn:{Aws.PARTITION}:autoscaling:{Aws.REGION}:{Aws.ACCOUNT_ID}:autoScalingGroup:*"
        f":autoScalingGroupName/{group_name}"
    )


def worker_policy(
    *,
    requests: sqs.IQueue,
    dead_letters: sqs.IQueue,
    reply_queue_prefix: str,
    bucket: s3.IBucket,
    log_group: logs.ILogGroup,
    group_name: str,
    asset: s3_assets.Asset,
) -> iam.PolicyDocument:
    """Everything the worker and its install script may do, and nothing else.

    (The Auto Scaling group adds cloudformation:SignalResource on this stack for cfn-signal.)
    """
    arn = f"arn:{Aws.PARTITION}"
    where = f"{Aws.REGION}:{Aws.ACCOUNT_ID}"

    def objects(*prefixes: str) -> list[str]:
        return [bucket.arn_for_objects(f"{prefix}*") for prefix in prefixes]

    grants = [  # (sid, actions, resources)
        ("ConsumeRequests",
         ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
          "sqs:GetQueueAttributes"],
         [requests.queue_arn]),
        ("DeadLetterUnparseable", ["sqs:SendMessage"], [dead_letters.queue_arn]),
        ("SendReplies", ["sqs:SendMessage"], [f"{arn}:sqs:{where}:{reply_queue_prefix}*"]),
        ("ReadInputs", ["s3:GetObject"], objects(contract.INPUTS)),
        ("WriteOutputsAndResults", ["s3:PutObject"], objects(contract.OUTPUTS, contract.RESULTS)),
        # a HEAD of cancels/<job_id> (docs/cancel.md)
        ("ReadCancelMarkers", ["s3:GetObject"], objects(contract.CANCELS)),
        # running/<job_id>.json while a long job runs
        ("KeepRunningStates", ["s3:PutObject", "s3:DeleteObject"], objects(contract.RUNNING)),
        ("DeleteCancelledInputs", ["s3:DeleteObject"], objects(contract.INPUTS)),
        ("ShipLogs",
         ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
         [log_group.log_group_arn]),
        # Protect itself while busy; raise capacity on a backlog (worker_src/capacity.py);
        # finish its launch (install.sh and the boot unit complete the lifecycle hook).
        ("OwnGroup",
         ["autoscaling:SetInstanceProtection", "autoscaling:SetDesiredCapacity",
          "autoscaling:CompleteLifecycleAction"],
         [group_arn(group_name)]),
        # Describe calls take no resource; it reads MaxSize and DesiredCapacity.
        ("ReadGroups", ["autoscaling:DescribeAutoScalingGroups"], ["*"]),
        ("DownloadWorkerAsset", ["s3:GetObject"],
         [asset.bucket.arn_for_objects(asset.s3_object_key)]),
    ]
    return iam.PolicyDocument(statements=[
        iam.PolicyStatement(sid=sid, actions=actions, resources=resources)
        for sid, actions, resources in grants
    ])
