"""The stack's log group, alarm topic, dead-letter alarm and stuck-backlog alarm."""

from collections.abc import Callable

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.queues import JobQueues
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
        queues: JobQueues,
        alarm_email: str | None = None,
    ) -> None:
        """
        :param queues: the job queues: any visible dead letter raises an alarm, and so does the
            requests queue's oldest message once older than its visibility timeouts allow.
        :param alarm_email: address subscribed to the alarm topic.
            @default None (no subscription)
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

        receives = queues.max_receive_count
        visibility_timeout = int(queues.visibility_timeout.to_seconds())
        self.dead_letter_alarm = self._alarm(
            "DeadLetterAlarm",
            f"A job message reached the dead-letter queue (failed {receives} receives).",
            queues.dead_letters.metric_approximate_number_of_messages_visible,
            threshold=0,
        )
        threshold = backlog_age_threshold(visibility_timeout, receives)
        # The age only grows while nothing takes jobs, so one minute above the line is enough.
        self.backlog_alarm = self._alarm(
            "BacklogAgeAlarm",
            f"The oldest waiting job is older than {threshold} s ({receives} visibility "
            f"timeouts of {visibility_timeout} s plus a new worker's {WORKER_WARMUP_SECONDS} s "
            "warm-up): no worker takes jobs, or too few.",
            queues.requests.metric_approximate_age_of_oldest_message,
            threshold=threshold,
        )

    def _alarm(
        self, alarm_id: str, description: str, metric: Callable[..., cloudwatch.Metric], *,
        threshold: int,
    ) -> cloudwatch.Alarm:
        """An alarm when `metric`'s one-minute maximum is above `threshold`, sent to the topic
        as it goes into ALARM and back to OK."""
        alarm = cloudwatch.Alarm(
            self,
            alarm_id,
            alarm_description=description,
            metric=metric(period=Duration.minutes(1), statistic="Maximum"),
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))
        alarm.add_ok_action(cloudwatch_actions.SnsAction(self.topic))
        return alarm
