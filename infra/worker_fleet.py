"""Worker fleet: security group, role, launch template, Auto Scaling group with its launch hook,
warm pool and scaling (a key pair only for SSH)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, CfnWaitCondition, CfnWaitConditionHandle, Duration, Stack
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
from infra.worker_role import session_manager_policy, worker_policy
from worker_src import contract

WORKER_SRC = Path(__file__).resolve().parent.parent / "worker_src"
ASSET_EXCLUDE = ["__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", "*.egg-info"]
# Where user data unpacks the asset before install.sh copies it to /opt/wqw/app/worker_src.
ASSET_DIR = "/var/tmp/wqw-asset"
ENV_FILE = "/etc/wqw/worker.env"
# Time a new instance has to install the worker and signal (python 3.11, pip wheels, agent).
SIGNAL_TIMEOUT = Duration.minutes(20)
# The launch hook's name: install.sh (first boot) and the wqw-launch unit (every later boot)
# complete it once the worker is installed (and, for an instance going into service, running).
LAUNCH_HOOK = "worker-installed"


def user_data_commands(
    *,
    asset_bucket: str,
    asset_key: str,
    environment: dict[str, str],
    log_group_name: str,
    signal_resource: str,
    group_name: str,
    memory_max_mb: int,
    pool_ready_url: str | None,
) -> list[str]:
    """Shell lines of the instance's user data (values may be CDK tokens).

    User data runs on an instance's first boot only: an instance started from the warm pool
    runs the worker installed then (systemd), without reinstalling.
    """
    env_lines = [f"{name}={value}" for name, value in environment.items()]
    pool_ready = f" --pool-ready-url '{pool_ready_url}'" if pool_ready_url else ""
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
        f" --region '{Aws.REGION}' --group '{group_name}' --launch-hook '{LAUNCH_HOOK}'"
        f" --memory-max-mb {memory_max_mb}{pool_ready}",
    ]


class WorkerFleet(Construct):
    """Auto Scaling group of workers: min_workers..max_workers, a warm pool of stopped
    installed instances when it can grow from idle, backlog scaling when max > min."""

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
        instance_type: str = "t2.micro",
        min_workers: int = 1,
        max_workers: int = 1,
        warm_pool_size: int = 0,
        memory_budget_mb: int = contract.MEMORY_BUDGET_MB,
        ssh_cidr: str | None = None,
    ) -> None:
        """
        :param vpc: where the workers run (public subnets; nothing may connect to them).
        :param requests: the requests queue the workers consume.
        :param dead_letters: the dead-letter queue the workers move undecodable jobs to.
        :param bucket: the job bucket (inputs read, outputs and results written).
        :param log_group: where the CloudWatch agent ships the worker's and install's logs.
        :param alarm_topic: receives the group's launch and termination errors.
        :param environment: the worker's WQW_* variables, written to its EnvironmentFile.
        :param reply_queue_prefix: the workers may send only to queues with this prefix.
        :param group_name: the Auto Scaling group's name (the role names it before it exists).
        :param instance_type: EC2 instance type. @default "t2.micro"
        :param min_workers: instances running while nothing waits; 0 allowed. @default 1
        :param max_workers: most instances running at once. @default 1
        :param warm_pool_size: stopped, installed instances kept in a warm pool; more than 0
            only when the group can grow from idle (max_workers > min_workers or
            min_workers = 0). @default 0 (no warm pool)
        :param memory_budget_mb: MiB the worker lets its jobs use; the service's memory
            ceiling is contract.service_memory_max_mb of it. @default contract.MEMORY_BUDGET_MB
        :param ssh_cidr: network allowed to SSH in; only then is a key pair created.
            @default None (no SSH, no key pair; Session Manager still works)
        """
        super().__init__(scope, construct_id)
        if min_workers > max_workers:
            raise ValueError(f"min_workers ({min_workers}) is above max_workers ({max_workers})")
        grows = max_workers > min_workers or min_workers == 0
        if warm_pool_size and not grows:
            raise ValueError(
                f"warm_pool_size ({warm_pool_size}) needs max_workers ({max_workers}) above "
                f"min_workers ({min_workers}) or min_workers = 0: the pool would never be used"
            )

        self.key_pair = ec2.KeyPair(self, "KeyPair") if ssh_cidr else None
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
            description="Worker instances: the job queues, the job bucket prefixes, logs, "
            "their own group, Session Manager",
            inline_policies={
                "worker": worker_policy(
                    requests=requests,
                    dead_letters=dead_letters,
                    reply_queue_prefix=reply_queue_prefix,
                    bucket=bucket,
                    log_group=log_group,
                    group_name=group_name,
                    asset=self.asset,
                ),
                "session-manager": session_manager_policy(),
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
            min_capacity=min_workers,
            max_capacity=max_workers,
            # Each instance started at creation signals once its worker reached the queue.
            signals=autoscaling.Signals.wait_for_min_capacity(timeout=SIGNAL_TIMEOUT)
            if min_workers
            else None,
            # A rolling update needs MinInstancesInService < MaxSize: with one worker the old
            # one stops first; jobs wait in the queue meanwhile.
            update_policy=autoscaling.UpdatePolicy.rolling_update(
                max_batch_size=1,
                min_instances_in_service=min(min_workers, max_workers - 1),
            ),
            # Launched protected: the idle alarm, still seeing minutes-old data, may lower the
            # capacity the client or a worker has just raised; an instance on its way to the
            # backlog must not be the one it ends. The worker lifts it at its first idle
            # receive (worker_src/protection.py).
            new_instances_protected_from_scale_in=max_workers > min_workers,
            # GroupInServiceInstances for the dashboard (group metrics are free).
            group_metrics=[autoscaling.GroupMetrics(autoscaling.GroupMetric.IN_SERVICE_INSTANCES)],
            notifications=[
                autoscaling.NotificationConfiguration(
                    topic=alarm_topic, scaling_events=autoscaling.ScalingEvents.ERRORS
                )
            ],
        )
        cfn_group: autoscaling.CfnAutoScalingGroup = self.group.node.default_child
        # In the group's own definition, so that no instance (those started at creation
        # included) goes into service, or into the warm pool, before install.sh is done.
        # An instance whose install fails or never reports is terminated (ABANDON).
        cfn_group.lifecycle_hook_specification_list = [
            autoscaling.CfnAutoScalingGroup.LifecycleHookSpecificationProperty(
                lifecycle_hook_name=LAUNCH_HOOK,
                lifecycle_transition="autoscaling:EC2_INSTANCE_LAUNCHING",
                default_result="ABANDON",
                heartbeat_timeout=int(SIGNAL_TIMEOUT.to_seconds()),
            )
        ]

        self.warm_pool = None
        self.pool_ready = None
        pool_ready_url = None
        if warm_pool_size:
            self.warm_pool = self.group.add_warm_pool(
                min_size=warm_pool_size,
                # The pool refills to warm_pool_size while min_workers run; after a burst,
                # instances scaled in go back to it (stopped) up to that size.
                max_group_prepared_capacity=min_workers + warm_pool_size,
                pool_state=autoscaling.PoolState.STOPPED,
                reuse_on_scale_in=True,
            )
            # `cdk deploy` returns once every pool instance has installed the worker: each
            # one's install.sh signals this handle before the hook lets it stop.
            handle = CfnWaitConditionHandle(self, "PoolReadyHandle")
            self.pool_ready = CfnWaitCondition(
                self,
                "PoolReady",
                handle=handle.ref,
                count=warm_pool_size,
                timeout=str(int(SIGNAL_TIMEOUT.to_seconds())),
            )
            self.pool_ready.node.add_dependency(self.warm_pool)
            pool_ready_url = handle.ref

        self.user_data.add_commands(
            *user_data_commands(
                asset_bucket=self.asset.s3_bucket_name,
                asset_key=self.asset.s3_object_key,
                environment={
                    **environment,
                    contract.Env.MEMORY_BUDGET_MB: str(memory_budget_mb),
                },
                log_group_name=log_group.log_group_name,
                signal_resource=Stack.of(self).get_logical_id(cfn_group),
                group_name=group_name,
                memory_max_mb=contract.service_memory_max_mb(memory_budget_mb),
                pool_ready_url=pool_ready_url,
            )
        )
        self.scaling = (
            BacklogScaling(self, "Scaling", group=self.group, queue=requests)
            if max_workers > min_workers
            else None
        )
