"""Worker fleet: key pair, security group, role, launch template, Auto Scaling group, scaling."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.scaling import BacklogScaling
from worker_src import contract

WORKER_SRC = Path(__file__).resolve().parent.parent / "worker_src"
ASSET_EXCLUDE = ["__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", "*.egg-info"]
# Where user data unpacks the asset before install.sh copies it to /opt/wqw/app/worker_src.
ASSET_DIR = "/var/tmp/wqw-asset"
ENV_FILE = "/etc/wqw/worker.env"
# Time a new instance has to install the worker and signal (python 3.11, pip wheels, agent).
SIGNAL_TIMEOUT = Duration.minutes(20)


def user_data_commands(
    *,
    asset_bucket: str,
    asset_key: str,
    environment: dict[str, str],
    log_group_name: str,
    signal_resource: str,
) -> list[str]:
    """Shell lines of the instance's user data (values may be CDK tokens)."""
    env_lines = [f"{name}={value}" for name, value in environment.items()]
    return [
        "set -euo pipefail",
        f"install -d -m 0755 {ASSET_DIR}",
        "for attempt in 1 2 3 4 5; do",
        f"  aws s3 cp --only-show-errors --region {Aws.REGION} "
        f"'s3://{asset_bucket}/{asset_key}' {ASSET_DIR}/worker_src.zip && break",
        '  [ "$attempt" = 5 ] && exit 1; sleep 10',
        "done",
        f"rm -rf {ASSET_DIR}/worker_src",
        f"python3 -m zipfile -e {ASSET_DIR}/worker_src.zip {ASSET_DIR}/worker_src",
        "install -d -m 0755 /etc/wqw",
        f"cat > {ENV_FILE} <<'WQW_ENV'",
        *env_lines,
        "WQW_ENV",
        f"chmod 0644 {ENV_FILE}",
        f"bash {ASSET_DIR}/worker_src/install.sh --env-file {ENV_FILE}"
        f" --log-group '{log_group_name}'"
        f" --cfn-stack '{Aws.STACK_NAME}' --cfn-resource '{signal_resource}'"
        f" --region '{Aws.REGION}'",
    ]


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
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                sid="ConsumeRequests",
                actions=[
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                ],
                resources=[requests.queue_arn],
            ),
            iam.PolicyStatement(
                sid="DeadLetterUnparseable",
                actions=["sqs:SendMessage"],
                resources=[dead_letters.queue_arn],
            ),
            iam.PolicyStatement(
                sid="SendReplies",
                actions=["sqs:SendMessage"],
                resources=[f"{arn}:sqs:{where}:{reply_queue_prefix}*"],
            ),
            iam.PolicyStatement(
                sid="ReadInputs",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{contract.INPUTS}*")],
            ),
            iam.PolicyStatement(
                sid="WriteOutputsAndResults",
                actions=["s3:PutObject"],
                resources=[
                    bucket.arn_for_objects(f"{contract.OUTPUTS}*"),
                    bucket.arn_for_objects(f"{contract.RESULTS}*"),
                ],
            ),
            iam.PolicyStatement(
                sid="ReadCancelMarkers",  # a HEAD of cancels/<job_id> (docs/cancel.md)
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{contract.CANCELS}*")],
            ),
            iam.PolicyStatement(
                sid="KeepRunningStates",  # running/<job_id>.json while a long job runs
                actions=["s3:PutObject", "s3:DeleteObject"],
                resources=[bucket.arn_for_objects(f"{contract.RUNNING}*")],
            ),
            iam.PolicyStatement(
                sid="DeleteCancelledInputs",
                actions=["s3:DeleteObject"],
                resources=[bucket.arn_for_objects(f"{contract.INPUTS}*")],
            ),
            iam.PolicyStatement(
                sid="ShipLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                sid="ProtectWhileBusy",
                actions=["autoscaling:SetInstanceProtection"],
                resources=[
                    f"{arn}:autoscaling:{where}:autoScalingGroup:*"
                    f":autoScalingGroupName/{group_name}"
                ],
            ),
            iam.PolicyStatement(
                sid="DownloadWorkerAsset",
                actions=["s3:GetObject"],
                resources=[asset.bucket.arn_for_objects(asset.s3_object_key)],
            ),
        ]
    )


class WorkerFleet(Construct):
    """Auto Scaling group of workers; scales on backlog when max_workers > 1."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        requests: sqs.IQueue,
        dead_letters: sqs.IQueue,
        bucket: s3.IBucket,
        log_group: logs.ILogGroup,
        alarm_topic: sns.ITopic,
        environment: dict[str, str],
        reply_queue_prefix: str,
        group_name: str,
        instance_type: str,
        max_workers: int,
        ssh_cidr: str | None,
    ) -> None:
        super().__init__(scope, construct_id)

        self.key_pair = ec2.KeyPair(self, "KeyPair")
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Workers: no inbound traffic unless ssh_cidr is given; HTTPS out only",
            allow_all_outbound=False,
        )
        # SQS, S3, SSM, CloudWatch, CloudFormation, dnf and PyPI are all HTTPS. DNS and the
        # instance metadata/time services are link-local and not filtered by security groups.
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs and package mirrors"
        )
        if ssh_cidr:
            self.security_group.add_ingress_rule(
                ec2.Peer.ipv4(ssh_cidr), ec2.Port.tcp(22), "SSH from the deployer's address"
            )

        self.asset = s3_assets.Asset(
            self, "WorkerCode", path=str(WORKER_SRC), exclude=ASSET_EXCLUDE
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="Worker instances: the job queues, the job bucket prefixes, logs, SSM",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")
            ],
            inline_policies={
                "worker": worker_policy(
                    requests=requests,
                    dead_letters=dead_letters,
                    reply_queue_prefix=reply_queue_prefix,
                    bucket=bucket,
                    log_group=log_group,
                    group_name=group_name,
                    asset=self.asset,
                )
            },
        )

        self.user_data = ec2.UserData.for_linux()
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            instance_type=ec2.InstanceType(instance_type),
            # An SSM public parameter, resolved by CloudFormation at each deploy.
            machine_image=ec2.MachineImage.latest_amazon_linux2023(),
            role=self.role,
            key_pair=self.key_pair,
            security_group=self.security_group,
            user_data=self.user_data,
            require_imdsv2=True,
            http_put_response_hop_limit=1,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        10,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                        encrypted=True,
                        delete_on_termination=True,
                    ),
                )
            ],
        )

        self.group = autoscaling.AutoScalingGroup(
            self,
            "Group",
            auto_scaling_group_name=group_name,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            launch_template=self.launch_template,
            min_capacity=1,
            max_capacity=max_workers,
            signals=autoscaling.Signals.wait_for_min_capacity(timeout=SIGNAL_TIMEOUT),
            # A rolling update needs MinInstancesInService < MaxSize: with one worker the old
            # one stops first; jobs wait in the queue meanwhile.
            update_policy=autoscaling.UpdatePolicy.rolling_update(
                max_batch_size=1,
                min_instances_in_service=1 if max_workers > 1 else 0,
            ),
            # GroupInServiceInstances for the dashboard (group metrics are free).
            group_metrics=[autoscaling.GroupMetrics(autoscaling.GroupMetric.IN_SERVICE_INSTANCES)],
            notifications=[
                autoscaling.NotificationConfiguration(
                    topic=alarm_topic, scaling_events=autoscaling.ScalingEvents.ERRORS
                )
            ],
        )
        self.user_data.add_commands(
            *user_data_commands(
                asset_bucket=self.asset.s3_bucket_name,
                asset_key=self.asset.s3_object_key,
                environment=environment,
                log_group_name=log_group.log_group_name,
                signal_resource=Stack.of(self).get_logical_id(self.group.node.default_child),
            )
        )
        self.scaling = (BacklogScaling(self, "Scaling", group=self.group, queue=requests)
                        if max_workers > 1 else None)
