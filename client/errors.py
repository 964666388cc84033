"""The client's failures (each with its CLI exit code) and the AWS call wrapper that makes them."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from worker_src import aws


class ClientFailure(Exception):
    """An error the CLI reports in one line, with its own exit code."""

    exit_code = 1


class UsageError(ClientFailure):
    exit_code = 2


class StackNotFound(ClientFailure):
    exit_code = 3


class WaitTimeout(ClientFailure):
    exit_code = 4

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


class AwsUnavailable(ClientFailure):
    """AWS refused or could not be reached; `code` is AWS's error code, where it gave one."""

    exit_code = 5

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


def aws_call(function: Any, **kwargs: Any) -> Any:
    """Call an AWS API, turning SDK errors into one-line AwsUnavailable failures."""
    try:
        return function(**kwargs)
    except NoRegionError:
        raise AwsUnavailable("no AWS region: set AWS_REGION or pass --region") from None
    except NoCredentialsError:
        raise AwsUnavailable("no AWS credentials: set AWS_PROFILE or run 'aws configure'") from None
    except ClientError as exc:
        raise AwsUnavailable(aws.error_text(exc), aws.error_code(exc)) from None
    except (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError,
            ReadTimeoutError) as exc:
        raise AwsUnavailable(f"cannot reach AWS: {exc} (is the endpoint up? "
                             f"check AWS_ENDPOINT_URL, AWS_REGION and the network)") from None
    except BotoCoreError as exc:
        raise AwsUnavailable(str(exc)) from None
