"""Starting a worker process on a stack's outputs, as an instance's user data does on EC2.

The one launcher of `python -m worker_src` outside an instance: the local stack
(client/local.py, one per instance of its group with client/local_group.py), the
reliability harness and the benchmarks all start their workers here, each with its
own command (a wrapper around the same main()), environment additions and log.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from worker_src.contract import Env

ROOT = Path(__file__).resolve().parent.parent
WORKER_COMMAND = (sys.executable, "-m", "worker_src")
# The emulator takes any keys; a worker and a client on it use these.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def worker_environment(outputs: Mapping[str, str], endpoint_url: str,
                       env: Mapping[str, str] = {}) -> dict[str, str]:
    """The environment user data writes on an instance (contract.Env's names from the stack's
    outputs), pointed at `endpoint_url`, with `env` added last."""
    return {
        **os.environ,
        **LOCAL_CREDENTIALS,
        "AWS_ENDPOINT_URL": endpoint_url,
        "PYTHONPATH": str(ROOT),
        **{name: outputs[output] for name, output in Env.FROM_OUTPUTS.items()
           if output in outputs},
        **env,
    }


def start_worker(outputs: Mapping[str, str], endpoint_url: str, *,
                 env: Mapping[str, str] = {}, command: Sequence[str] = WORKER_COMMAND,
                 output: IO[bytes] | None = None) -> subprocess.Popen:
    """Start `command` (the worker, or a wrapper around its main()) on the stack; its process.

    `env` is added to the worker environment; stdout and stderr go to `output`
    (None: this process's own).
    """
    return subprocess.Popen(list(command), cwd=ROOT,
                            env=worker_environment(outputs, endpoint_url, env),
                            stdin=subprocess.DEVNULL, stdout=output, stderr=output)
