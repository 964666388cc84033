"""The requests queue and its dead-letter queue."""

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from worker_src import contract

VISIBILITY_TIMEOUT = Duration.seconds(contract.VISIBILITY_TIMEOUT)


class JobQueues(Construct):
    """Requests queue whose messages move to the DLQ after `max_receive_count` receives."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        visibility_timeout: Duration = VISIBILITY_TIMEOUT,
        max_receive_count: int = contract.MAX_RECEIVE_COUNT,
    ) -> None:
        """
        :param visibility_timeout: how long a received job stays hidden from other workers.
            @default contract.VISIBILITY_TIMEOUT (120 s)
        :param max_receive_count: receives before a job moves to the dead-letter queue.
            @default contract.MAX_RECEIVE_COUNT (3)
        """
        super().__init__(scope, construct_id)
        self.visibility_timeout = visibility_timeout
        self.max_receive_count = max_receive_count
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.requests = sqs.Queue(
            self,
            "RequestQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=visibility_timeout,
            # Long polling by default, also for clients that forget to ask for it.
            receive_message_wait_time=Duration.seconds(20),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letters, max_receive_count=max_receive_count
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
