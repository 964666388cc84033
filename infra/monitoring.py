"""The stack's log group, alarm topic, dead-letter alarm and stuck-backlog alarm."""

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from worker_src import contract

# How long a replacement worker may take to install and take jobs: twice the cold launch
# estimate, so that a slow launch alone never raises the alarm.
WORKER_WARMUP_SECONDS = 2 * contract.LAUNCH_SECONDS


def backlog_age_threshold(visibility_timeout: int, max_receive_count: int) -> int:
    """Seconds after which the oldest waiting job means a stuck backlog.

    The oldest job of a healthy stack is at most this old: each of its `max_receive_count`
    receives held by a worker that died (one visibility timeout each; a running job's worker
    renews its hold, a failing one retries within seconds), then a replacement worker's warm-up.
    Older than that, no worker is taking jobs, or too few for the load.
    """
    return max_receive_count * visibility_timeout + WORKER_WARMUP_SECONDS


class Monitoring(Construct):
    """Worker log group (14 days), SNS alarm topic, and the alarms that notify it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        requests: sqs.IQueue,
        dead_letters: sqs.IQueue,
        alarm_email: str | None = None,
        visibility_timeout: int = contract.VISIBILITY_TIMEOUT,
        max_receive_count: int = contract.MAX_RECEIVE_COUNT,
    ) -> None:
        """
        :param requests: the request queue; its oldest message's age is the backlog alarm's
            metric.
        :param dead_letters: the dead-letter queue; any visible message raises its alarm.
        :param alarm_email: address subscribed to the alarm topic.
            @default None (no subscription)
        :param visibility_timeout: the request queue's visibility timeout in seconds.
            @default contract.VISIBILITY_TIMEOUT (120)
        :param max_receive_count: receives before a job moves to the dead-letter queue.
            @default contract.MAX_RECEIVE_COUNT (3)
        """
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "WorkerLogs",
            retention=logs.RetentionDays.TWO_WEEKS,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.topic = sns.Topic(self, "AlarmTopic", enforce_ssl=True)
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        minute = Duration.minutes(1)

        self.dead_letter_alarm = cloudwatch.Alarm(
            self,
            "DeadLetterAlarm",
            alarm_description="A job message reached the dead-letter queue (failed 3 receives).",
            metric=dead_letters.metric_approximate_number_of_messages_visible(
                period=minute, statistic="Maximum"
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

        threshold = backlog_age_threshold(visibility_timeout, max_receive_count)
        # The age only grows while nothing takes jobs, so one minute above the line is enough.
        self.backlog_alarm = cloudwatch.Alarm(
            self,
            "BacklogAgeAlarm",
            alarm_description=(
                f"The oldest waiting job is older than {threshold} s ({max_receive_count} "
                f"visibility timeouts of {visibility_timeout} s plus a new worker's "
                f"{WORKER_WARMUP_SECONDS} s warm-up): no worker takes jobs, or too few."
            ),
            metric=requests.metric_approximate_age_of_oldest_message(
                period=minute, statistic="Maximum"
            ),
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for alarm in (self.dead_letter_alarm, self.backlog_alarm):
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))
            alarm.add_ok_action(cloudwatch_actions.SnsAction(self.topic))
