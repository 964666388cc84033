"""WebQueueWorkerStack: queues, bucket, worker fleet, logs, alarms, dashboard, outputs."""

from aws_cdk import Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from infra.config import StackConfig
from infra.dashboard import OperationsDashboard
from infra.monitoring import Monitoring
from infra.nag import acknowledge_findings, quiet_cfn_lint_on_cdk_internals
from infra.queues import JobQueues
from infra.storage import JobBucket
from infra.worker_fleet import WorkerFleet
from worker_src.contract import MAX_RECEIVE_COUNT, Env, StackOutput, metric_namespace


class WebQueueWorkerStack(Stack):
    def __init__(self, scope: Construct, config: StackConfig) -> None:
        super().__init__(
            scope,
            config.stack_name,
            stack_name=config.stack_name,
            description="web-queue-worker: SQS job queue, S3 job data, EC2 worker fleet",
        )
        self.config = config
        self.queues = JobQueues(
            self,
            "Queues",
            visibility_timeout=Duration.seconds(config.visibility_timeout),
            max_receive_count=MAX_RECEIVE_COUNT,
        )
        self.storage = JobBucket(self, "Storage", retention_days=config.retention_days)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            queues=self.queues,
            alarm_email=config.alarm_email,
        )
        # Public subnets only and no NAT gateway (about 32 USD a month each): the workers reach
        # the AWS APIs through their public IPv4 address, and nothing may connect to them.
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.42.0.0/16"),
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                )
            ],
            restrict_default_security_group=False,
        )
        # What the worker is told and the stack's outputs say, written once: the instances'
        # environment is these values under contract.Env's names (as the local stack's is).
        shared = {
            StackOutput.REQUEST_QUEUE_URL: self.queues.requests.queue_url,
            StackOutput.DEAD_LETTER_QUEUE_URL: self.queues.dead_letters.queue_url,
            StackOutput.BUCKET_NAME: self.storage.bucket.bucket_name,
            StackOutput.REPLY_QUEUE_PREFIX: config.reply_queue_prefix,
            StackOutput.MAX_RECEIVE_COUNT: str(MAX_RECEIVE_COUNT),
            StackOutput.VISIBILITY_TIMEOUT: str(config.visibility_timeout),
            StackOutput.METRIC_NAMESPACE: metric_namespace(config.stack_name),
        }
        environment = {
            **{name: shared[output] for name, output in Env.FROM_OUTPUTS.items()},
            Env.WORKER_GROUP: config.worker_group_name,
            "AWS_REGION": Aws.REGION,
        }
        self.fleet = WorkerFleet(
            self,
            "Workers",
            vpc=self.vpc,
            requests=self.queues.requests,
            dead_letters=self.queues.dead_letters,
            bucket=self.storage.bucket,
            log_group=self.monitoring.log_group,
            alarm_topic=self.monitoring.topic,
            environment=environment,
            reply_queue_prefix=config.reply_queue_prefix,
            group_name=config.worker_group_name,
            instance_type=config.instance_type,
            min_workers=config.min_workers,
            max_workers=config.max_workers,
            warm_pool_size=config.warm_pool,
            ssh_cidr=config.ssh_cidr,
        )
        self.dashboard = OperationsDashboard(
            self,
            "Operations",
            stack_name=config.stack_name,
            requests=self.queues.requests,
            dead_letters=self.queues.dead_letters,
            group_name=self.fleet.group.auto_scaling_group_name,
            metric_namespace=shared[StackOutput.METRIC_NAMESPACE],
            backlog_alarm=self.monitoring.backlog_alarm,
        )

        outputs = {
            **shared,
            StackOutput.WORKER_GROUP_NAME: self.fleet.group.auto_scaling_group_name,
            StackOutput.LOG_GROUP_NAME: self.monitoring.log_group.log_group_name,
            StackOutput.DASHBOARD_URL: self.dashboard.url,
        }
        if self.fleet.key_pair is not None:
            key_pair_id = self.fleet.key_pair.key_pair_id
            outputs[StackOutput.KEY_PAIR_ID] = key_pair_id
            outputs[StackOutput.PRIVATE_KEY_PARAMETER] = f"/ec2/keypair/{key_pair_id}"
        for key, value in outputs.items():
            CfnOutput(self, key, value=value)

        acknowledge_findings(self)
        quiet_cfn_lint_on_cdk_internals(self)
