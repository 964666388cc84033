"""The local stack: the CDK app's own template, deployed into an AWS emulator on 127.0.0.1.

    moto server (127.0.0.1) <- CloudFormation create_stack(synthesized template)
                            <- worker processes (`python -m worker_src`, env from the outputs)
                            <- clients (AWS_ENDPOINT_URL=http://127.0.0.1:PORT)

Needs the development requirements (moto, aws-cdk-lib, the worker's packages).
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import boto3

from worker_src.contract import Env, StackOutput

from . import api
from .local_group import GroupFollower
from .worker_process import LOCAL_CREDENTIALS, WORKER_COMMAND, start_worker, worker_environment

TEARDOWN_GRACE_SECONDS = 3
# Following the group: a new instance's worker starts this long after the instance appears
# (a stand-in for a warm start from the pool, about 40 s on EC2), and the group falls back to
# its minimum after this long with no job waiting (the idle alarm's minute).
START_DELAY_SECONDS = 5.0
IDLE_SECONDS = 60.0


class LocalStack:
    """An emulator, the stack deployed into it, and supervised worker processes.

    Either a fixed number of `workers`, or with `follow_group` one worker per instance of the
    stack's Auto Scaling group (client/local_group.py): its desired capacity, raised by the
    client and the workers and lowered after `idle_seconds` without a waiting job, decides how
    many run; a new one starts `start_delay` seconds after its instance appears.
    """

    def __init__(self, *, stack_name: str = api.DEFAULT_STACK, port: int = 0, workers: int = 1,
                 context: dict[str, str] | None = None, worker_log: Path | None = None,
                 worker_env: dict[str, str] | None = None,
                 worker_command: list[str] | None = None, follow_group: bool = False,
                 start_delay: float = START_DELAY_SECONDS,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        if workers < 0:
            raise api.UsageError("--workers must be 0 or more")
        if start_delay < 0 or idle_seconds < 0:
            raise api.UsageError("--start-delay and --idle-seconds must be 0 or more")
        self.stack_name = stack_name
        self.port = port
        self.worker_count = workers
        self.context = dict(context or {})
        self.worker_log = worker_log
        self.extra_worker_env = dict(worker_env or {})
        # Tests run a wrapper that injects faults; users run the worker itself.
        self.worker_command = list(worker_command or WORKER_COMMAND)
        # Exit codes of the workers that died and were restarted, in order.
        self.worker_exits: list[int] = []
        self.endpoint_url = ""
        self.outputs: dict[str, str] = {}
        self.workers: list[subprocess.Popen] = []
        self._worker_specs: list[tuple[list[str], dict[str, str]]] = []
        self._workers_lock = threading.Lock()
        self._server: Any = None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._log_file: Any = None
        self.follow_group = follow_group
        self.start_delay = start_delay
        self.idle_seconds = idle_seconds
        self.follower: GroupFollower | None = None

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

    @property
    def stack(self) -> api.StackInfo:
        return api.StackInfo.from_outputs(self.stack_name, self.outputs)

    def session(self) -> boto3.Session:
        return boto3.Session(aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                             aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                             region_name=LOCAL_CREDENTIALS["AWS_REGION"])

    def client(self) -> api.Client:
        return api.Client(self.session(), self.stack, endpoint_url=self.endpoint_url)

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # The emulator warns about each resource type it skips (alarms, queue policies).
        logging.getLogger("moto").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message="Tried to parse", category=UserWarning)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        try:
            self._server.start()
        except OSError as exc:
            raise api.UsageError(f"cannot listen on 127.0.0.1:{self.port}: {exc.strerror}; "
                                 f"pick another --port (0 picks a free one)") from None
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        try:
            self.outputs = self._deploy()
            if self.follow_group:
                self._follow_group()
            else:
                self.start_workers(self.worker_count)
            self._supervisor = threading.Thread(target=self._supervise, daemon=True)
            self._supervisor.start()
        except BaseException:
            self.stop()
            raise

    def _deploy(self) -> dict[str, str]:
        from .emulator_template import prepare_for_emulator, synthesize

        with tempfile.TemporaryDirectory(prefix="wqw-synth-") as outdir:
            context = {"stack_name": self.stack_name, **self.context}
            template = prepare_for_emulator(synthesize(self.stack_name, context, Path(outdir)))
        cloudformation = self.session().client("cloudformation", endpoint_url=self.endpoint_url)
        cloudformation.create_stack(StackName=self.stack_name, TemplateBody=json.dumps(template),
                                    Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
        deadline = time.monotonic() + 120
        while True:
            stack = cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"][0]
            if stack["StackStatus"] == "CREATE_COMPLETE":
                return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
            if not stack["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
                raise api.ClientFailure(f"the emulator could not create the stack: "
                                        f"{stack['StackStatus']} {stack.get('StackStatusReason')}")
            time.sleep(0.2)

    def _follow_group(self) -> None:
        session = self.session()
        group = self.outputs[StackOutput.WORKER_GROUP_NAME]

        def start_worker(instance_id: str) -> subprocess.Popen:
            # As on an instance: the worker knows its group (to protect itself and raise the
            # capacity) and, here, its emulated instance.
            env = {Env.WORKER_GROUP: group, Env.INSTANCE_ID: instance_id}
            return self._start_worker((list(self.worker_command), env))

        self.follower = GroupFollower(
            session.client("autoscaling", endpoint_url=self.endpoint_url),
            session.client("sqs", endpoint_url=self.endpoint_url),
            group, self.outputs[StackOutput.REQUEST_QUEUE_URL],
            start_worker, start_delay=self.start_delay, idle_seconds=self.idle_seconds)
        self.follower.start()

    def worker_environment(self) -> dict[str, str]:
        """The environment user data writes on an instance, pointed at the emulator."""
        return worker_environment(self.outputs, self.endpoint_url, self.extra_worker_env)

    def start_workers(self, count: int, command: list[str] | None = None,
                      env: dict[str, str] | None = None) -> None:
        """Start `count` more supervised workers (restarted whenever they die).

        `command` and `env` (added to the worker environment) default to the stack's own.
        """
        spec = (list(command or self.worker_command), dict(env or {}))
        with self._workers_lock:
            for _ in range(count):
                self.workers.append(self._start_worker(spec))
                self._worker_specs.append(spec)

    def stop_workers(self, timeout: float = 30) -> list[int]:
        """SIGTERM every worker, wait for it (then SIGKILL), stop supervising; exit codes."""
        with self._workers_lock:
            processes, self.workers, self._worker_specs = self.workers, [], []
        terminate(processes, timeout)
        return [process.returncode for process in processes]

    def _start_worker(self, spec: tuple[list[str], dict[str, str]]) -> subprocess.Popen:
        if self.worker_log is not None and self._log_file is None:
            self._log_file = open(self.worker_log, "ab")  # noqa: SIM115 - closed in stop()
        command, env = spec
        return self.worker_process(command, env, self._log_file)

    def worker_process(self, command: Sequence[str] | None = None,
                       env: Mapping[str, str] | None = None,
                       output: IO[bytes] | None = None) -> subprocess.Popen:
        """A worker process on this stack that nobody supervises (benchmarks and tests signal
        it): `command` (default the stack's), the stack's worker environment plus `env`,
        stdout and stderr to `output` (None: this process's own)."""
        return start_worker(self.outputs, self.endpoint_url,
                            env={**self.extra_worker_env, **(env or {})},
                            command=command or self.worker_command, output=output)

    def _supervise(self) -> None:
        """Restart a worker that died, as systemd's Restart=always does on an instance."""
        while not self._stopping.wait(0.5):
            with self._workers_lock:
                for index, process in enumerate(self.workers):
                    if process.poll() is not None and not self._stopping.is_set():
                        self.worker_exits.append(process.returncode)
                        self.workers[index] = self._start_worker(self._worker_specs[index])

    def kill_worker(self, index: int, sig: int = signal.SIGKILL) -> int:
        """Send `sig` to worker `index` (the supervisor restarts it); return its pid."""
        with self._workers_lock:
            process = self.workers[index]
        process.send_signal(sig)
        return process.pid

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        if self.follower is not None:
            terminate(self.follower.stop(), TEARDOWN_GRACE_SECONDS)
        # Everything goes away with the emulator: a worker still in its long poll (up to
        # 20 s after SIGTERM) is not waited for.
        self.stop_workers(timeout=TEARDOWN_GRACE_SECONDS)
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def terminate(processes: list[subprocess.Popen], timeout: float) -> None:
    """SIGTERM the processes still running, wait for them, SIGKILL those left after timeout."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    for process in running:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve(*, stack_name: str, port: int, workers: int, context: dict[str, str],
          as_json: bool, web: dict[str, Any] | None = None, follow_group: bool = False,
          start_delay: float = START_DELAY_SECONDS, idle_seconds: float = IDLE_SECONDS) -> int:
    """`python -m client local`: run the local stack in the foreground until Ctrl-C.

    With `web` (serve()'s options of client.web.server), the web page serves it meanwhile.
    With `follow_group`, the group's desired capacity decides the workers (LocalStack).
    """
    print(f"starting the emulator and deploying stack {stack_name!r} ...", file=sys.stderr)
    started = time.monotonic()
    stack = LocalStack(stack_name=stack_name, port=port, workers=workers, context=context,
                       follow_group=follow_group, start_delay=start_delay,
                       idle_seconds=idle_seconds)
    stack.start()
    if follow_group:
        workers_text = (f"workers following group {stack.outputs[StackOutput.WORKER_GROUP_NAME]!r} "
                        f"(each starts {start_delay:g} s after its instance)")
    else:
        workers_text = f"{workers} worker(s)"
    try:
        if as_json:
            print(json.dumps({"endpoint_url": stack.endpoint_url, "stack": stack_name,
                              "outputs": stack.outputs}), flush=True)
        else:
            print(f"local stack {stack_name!r} ready in {time.monotonic() - started:.1f} s "
                  f"with {workers_text}\n\n"
                  f"  endpoint: {stack.endpoint_url}\n\n"
                  f"In another terminal:\n"
                  f"  export AWS_ENDPOINT_URL={stack.endpoint_url} AWS_REGION=us-east-1 "
                  f"AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local\n"
                  f"  python -m client stats 3 1 2 --stack {stack_name}\n\n"
                  f"(Windows PowerShell: $env:AWS_ENDPOINT_URL=\"{stack.endpoint_url}\" ...)\n"
                  f"Ctrl-C stops everything; nothing is kept.", flush=True)
        signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
        if web is not None:
            from .web.server import serve as serve_web

            serve_web(stack.client(), **web)  # returns on Ctrl-C or SIGTERM
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        print("stopping ...", file=sys.stderr)
    finally:
        stack.stop()
    return 0


def _stop_like_ctrl_c(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt
