"""One local stack for the whole suite; figures written to $WQW_RELIABILITY_REPORT."""

import os
from pathlib import Path

import pytest

from client.local import LocalStack

from .harness import VISIBILITY_TIMEOUT, Recorder

STACK = "wqw-reliability"


@pytest.fixture(scope="package")
def recorder():
    recorder = Recorder()
    yield recorder
    if os.environ.get("WQW_RELIABILITY_REPORT"):
        recorder.write(Path(os.environ["WQW_RELIABILITY_REPORT"]))


@pytest.fixture(scope="package")
def stack(tmp_path_factory):
    """The CDK template in the emulator, no workers: each test module starts its own."""
    log = tmp_path_factory.mktemp("stack") / "workers.log"
    with LocalStack(stack_name=STACK, workers=0, worker_log=log,
                    context={"visibility_timeout": str(VISIBILITY_TIMEOUT)}) as stack:
        yield stack
