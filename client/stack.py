"""Finding a deployed stack: its CloudFormation outputs, all that a client needs of it."""

from __future__ import annotations

from dataclasses import dataclass

import boto3

from worker_src import aws
from worker_src.contract import StackOutput

from .errors import AwsUnavailable, StackNotFound, aws_call


@dataclass(frozen=True)
class StackInfo:
    """What the client needs of a stack: its CloudFormation outputs."""

    name: str
    request_queue_url: str
    dead_letter_queue_url: str
    bucket: str
    reply_queue_prefix: str
    worker_group: str | None = None
    log_group: str | None = None
    dashboard_url: str | None = None

    @classmethod
    def from_outputs(cls, name: str, outputs: dict[str, str]) -> StackInfo:
        missing = [key for key in StackOutput.REQUIRED if key not in outputs]
        if missing:
            raise StackNotFound(
                f"stack {name!r} lacks the outputs {', '.join(missing)}: is it a "
                f"web-queue-worker stack, and has its deployment finished?")
        return cls(
            name=name,
            request_queue_url=outputs[StackOutput.REQUEST_QUEUE_URL],
            dead_letter_queue_url=outputs[StackOutput.DEAD_LETTER_QUEUE_URL],
            bucket=outputs[StackOutput.BUCKET_NAME],
            reply_queue_prefix=outputs[StackOutput.REPLY_QUEUE_PREFIX],
            worker_group=outputs.get(StackOutput.WORKER_GROUP_NAME),
            log_group=outputs.get(StackOutput.LOG_GROUP_NAME),
            dashboard_url=outputs.get(StackOutput.DASHBOARD_URL),
        )


def find_stack(session: boto3.Session, stack_name: str,
               endpoint_url: str | None = None) -> StackInfo:
    cloudformation = aws.make_client(session, "cloudformation", endpoint_url)
    try:
        stacks = aws_call(cloudformation.describe_stacks, StackName=stack_name)["Stacks"]
    except AwsUnavailable as exc:
        if "does not exist" in str(exc):
            raise StackNotFound(
                f"no stack named {stack_name!r} in region {session.region_name}: deploy it "
                f"with 'npx cdk deploy', or pass --stack / --region") from None
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return StackInfo.from_outputs(stack_name, outputs)
