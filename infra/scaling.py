"""The worker fleet's scaling policy: capacity follows the request backlog (chosen in issue 12).

bench/scaling/ simulates this policy from the synthesized template and compares it with the
AWS CDK QueueProcessingFargateService default and with fixed pools; docs/scaling.md has the
tables, the figures and why each number below is what it is.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from worker_src import contract

# The group's default instance warm-up: a cold launch's time to its first receive.
LAUNCH_TIME = Duration.seconds(contract.LAUNCH_SECONDS)


class BacklogScaling(Construct):
    """Out: one worker per `jobs_per_worker` waiting jobs, at once (from a minimum of 0, the
    first waiting job asks for one worker). In: back to the minimum when
    no job has waited for `idle_minutes`; a busy worker protects itself, so scale-in ends only
    workers that found no job in a whole long poll.

    Both alarms look at the requests queue's visible messages (1-minute datapoints, the SQS
    metric's resolution); Auto Scaling applies an alarm's step again every minute it stays in
    ALARM, so capacity follows the backlog as it grows or shrinks. This is the backstop: the
    client and busy workers raise capacity at once (worker_src/capacity.py); only this policy
    lowers it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        group: autoscaling.AutoScalingGroup,
        queue: sqs.IQueue,
        jobs_per_worker: int = contract.JOBS_PER_WORKER,
        idle_minutes: int = 1,
        launch_time: Duration = LAUNCH_TIME,
    ) -> None:
        """
        :param group: the worker group; its MinSize and MaxSize bound the policy.
        :param queue: the requests queue.
        :param jobs_per_worker: waiting jobs that justify one more worker.
            @default contract.JOBS_PER_WORKER (75)
        :param idle_minutes: minutes with no waiting job before scaling in. @default 1
        :param launch_time: launch to first receive; the group's default instance warm-up.
            @default LAUNCH_TIME (150 s)
        """
        super().__init__(scope, construct_id)
        cfn_group: autoscaling.CfnAutoScalingGroup = group.node.default_child
        low, high = int(cfn_group.min_size), int(cfn_group.max_size)
        if jobs_per_worker < 1 or idle_minutes < 1:
            raise ValueError("jobs_per_worker and idle_minutes must be at least 1")
        if high <= low:
            raise ValueError(f"BacklogScaling needs a group with MaxSize > MinSize ({low}..{high})")
        # Without a default instance warm-up, Auto Scaling may block scale-in for the group's
        # default cooldown (300 s) after every launch.
        cfn_group.default_instance_warmup = int(launch_time.to_seconds())

        visible = queue.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(1), statistic="Maximum"
        )

        def step_policy(
            policy_id: str, alarm_id: str, description: str, *, threshold: int,
            comparison: cloudwatch.ComparisonOperator, evaluation_periods: int = 1,
        ) -> autoscaling.StepScalingAction:
            """A policy that sets the group's capacity, and the alarm on `visible` that runs it."""
            policy = autoscaling.StepScalingAction(
                self,
                policy_id,
                auto_scaling_group=group,
                adjustment_type=autoscaling.AdjustmentType.EXACT_CAPACITY,
                metric_aggregation_type=autoscaling.MetricAggregationType.MAXIMUM,
            )
            alarm = cloudwatch.Alarm(
                self,
                alarm_id,
                alarm_description=description,
                metric=visible,
                threshold=threshold,
                comparison_operator=comparison,
                evaluation_periods=evaluation_periods,
                # No data is not proof of idleness (or of a backlog): leave the workers be.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cloudwatch_actions.AutoScalingAction(policy))
            return policy

        # k waiting jobs ask for low + k // jobs_per_worker workers (from low = 0: one more,
        # so that one job gets a worker), the last step for all of them. Step bounds are
        # relative to the alarm's threshold, the first step's start.
        first = 1 if low == 0 else 0

        def start(extra: int) -> int:
            return max(1, (extra - first) * jobs_per_worker)

        threshold = start(1)
        scale_out = step_policy(
            "ScaleOut",
            "BacklogAlarm",
            f"{threshold} or more jobs wait: one worker per {jobs_per_worker} waiting jobs.",
            threshold=threshold,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        for extra in range(1, high - low + 1):
            last = extra == high - low
            scale_out.add_adjustment(
                adjustment=low + extra,
                lower_bound=start(extra) - threshold,
                upper_bound=None if last else start(extra + 1) - threshold,
            )

        scale_in = step_policy(
            "ScaleIn",
            "IdleAlarm",
            f"No job waiting for {idle_minutes} minutes: back to {low} worker(s); busy "
            "workers are protected and stay until they find no job.",
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=idle_minutes,
        )
        scale_in.add_adjustment(adjustment=low, upper_bound=0)
