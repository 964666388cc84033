"""The stack's CloudWatch dashboard: queue, jobs (from the worker's metric log lines), workers."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from worker_src.contract import Metric

MINUTE = Duration.minutes(1)
# EC2 basic monitoring (free) reports every 5 minutes.
EC2_PERIOD = Duration.minutes(5)
# The dashboard grid is 24 columns wide.
THIRD, HALF = 8, 12
HEIGHT = 6


def search(namespace: str, dimensions: Sequence[str], metric: str, statistic: str,
           period: Duration = MINUTE) -> str:
    """A CloudWatch SEARCH expression: one time series per value of `dimensions`.

    Job kinds are plugins, so the by-kind graphs find them in the data instead of listing them.
    The namespace is quoted because it holds a '/' and the stack name's hyphens.
    """
    schema = ",".join([f'"{namespace}"', *dimensions])
    return (f"SEARCH('{{{schema}}} MetricName=\"{metric}\"', '{statistic}', "
            f"{int(period.to_seconds())})")


def console_url(dashboard_name: str) -> str:
    """The dashboard in the CloudWatch console of the stack's region."""
    return (f"https://{Aws.REGION}.console.aws.amazon.com/cloudwatch/home"
            f"?region={Aws.REGION}#dashboards:name={dashboard_name}")


class OperationsDashboard(Construct):
    """One dashboard named `<stack>-<region>`, three rows: the queue, the jobs, the workers.

    (No alarm status widget: it refers to the alarms' ARNs, and moto's CloudFormation does not
    create alarms, so the local stack could not deploy the dashboard.)
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stack_name: str,
        requests: sqs.IQueue,
        dead_letters: sqs.IQueue,
        group_name: str,
        metric_namespace: str,
        backlog_alarm: cloudwatch.Alarm,
    ) -> None:
        """
        :param stack_name: names the dashboard `<stack_name>-<region>` (names are unique per
            account, not per region).
        :param requests: the request queue (waiting, in flight, age of the oldest job).
        :param dead_letters: the dead-letter queue (dead letters, age of the oldest).
        :param group_name: the worker Auto Scaling group's name (in service; CPU of its
            instances); workers in service needs the group's GroupInServiceInstances metric.
        :param metric_namespace: the namespace of the worker's Embedded Metric Format lines.
        :param backlog_alarm: its threshold is drawn on the oldest-job graph.
        """
        super().__init__(scope, construct_id)
        # Dashboard names are unique per account, not per region.
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{stack_name}-{Aws.REGION}"
        )
        self.url = console_url(self.dashboard.dashboard_name)

        def depth(queue: sqs.IQueue, visible: str, in_flight: str) -> list[cloudwatch.IMetric]:
            return [
                queue.metric_approximate_number_of_messages_visible(
                    period=MINUTE, statistic="Maximum", label=visible),
                queue.metric_approximate_number_of_messages_not_visible(
                    period=MINUTE, statistic="Maximum", label=in_flight),
            ]

        queue_row = [
            cloudwatch.GraphWidget(
                title="Requests waiting and in flight",
                left=depth(requests, "waiting", "in flight"),
                width=THIRD, height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title="Age of the oldest waiting job (s)",
                left=[requests.metric_approximate_age_of_oldest_message(
                    period=MINUTE, statistic="Maximum", label="oldest job")],
                left_annotations=[backlog_alarm.to_annotation()],
                width=THIRD, height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title="Dead letters",
                left=depth(dead_letters, "dead letters", "being read"),
                right=[dead_letters.metric_approximate_age_of_oldest_message(
                    period=MINUTE, statistic="Maximum", label="oldest dead letter (s)")],
                width=THIRD, height=HEIGHT,
            ),
        ]

        per_outcome, per_kind = Metric.DIMENSION_SETS
        jobs_row = [
            cloudwatch.GraphWidget(
                title="Jobs per minute by kind and outcome",
                left=[cloudwatch.SearchExpression(
                    expression=search(metric_namespace, per_outcome, Metric.JOBS, "Sum"),
                    label="${PROP('Dim.Kind')} ${PROP('Dim.Outcome')}", period=MINUTE)],
                stacked=True, width=HALF, height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title="Run time by kind, p50 and p95 (s)",
                left=[
                    cloudwatch.SearchExpression(
                        expression=search(metric_namespace, per_kind, Metric.RUN, statistic),
                        label=f"{statistic} ${{PROP('Dim.Kind')}}", period=MINUTE)
                    for statistic in ("p50", "p95")
                ],
                width=HALF, height=HEIGHT,
            ),
        ]

        group = {"AutoScalingGroupName": group_name}
        workers_row = [
            cloudwatch.GraphWidget(
                title="Workers in service",
                left=[cloudwatch.Metric(
                    namespace="AWS/AutoScaling", metric_name="GroupInServiceInstances",
                    dimensions_map=group, statistic="Maximum", period=MINUTE,
                    label="in service")],
                width=HALF, height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title="Worker CPU (%) and CPU credits",
                left=[
                    cloudwatch.Metric(
                        namespace="AWS/EC2", metric_name="CPUUtilization", dimensions_map=group,
                        statistic=statistic, period=EC2_PERIOD, label=f"CPU {statistic.lower()}")
                    for statistic in ("Average", "Maximum")
                ],
                # Burstable types (t2, t3) slow down to their baseline when credits run out.
                right=[cloudwatch.Metric(
                    namespace="AWS/EC2", metric_name="CPUCreditBalance", dimensions_map=group,
                    statistic="Minimum", period=EC2_PERIOD, label="CPU credits (min)")],
                width=HALF, height=HEIGHT,
            ),
        ]
        for row in (queue_row, jobs_row, workers_row):
            self.dashboard.add_widgets(*row)
