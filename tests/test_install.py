"""worker_src/install.sh: the script user data runs on the instance, run here with --local."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from client.local import LocalStack

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "worker_src" / "install.sh"
UNIT = ROOT / "worker_src" / "systemd" / "wqw-worker.service"
LAUNCH_UNIT = ROOT / "worker_src" / "systemd" / "wqw-launch.service"


def test_script_parses() -> None:
    subprocess.run(["bash", "-n", str(INSTALL)], check=True)


def test_every_unit_placeholder_is_filled_by_the_script() -> None:
    placeholders = {name for unit in (UNIT, LAUNCH_UNIT)
                    for name in re.findall(r"@([A-Z_]+)@", unit.read_text())}
    filled = set(re.findall(r's\|@([A-Z_]+)@\|', INSTALL.read_text()))
    assert placeholders and placeholders == filled


def test_unit_runs_the_worker_unprivileged_and_restarts_it() -> None:
    unit = dict(
        line.split("=", 1) for line in UNIT.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert unit["User"] == "@USER@" and unit["Restart"] == "always"
    assert unit["ExecStart"] == "@PREFIX@/venv/bin/python -m worker_src"
    assert unit["WorkingDirectory"] == "@PREFIX@/app"
    assert unit["EnvironmentFile"] == "@ENV_FILE@"
    assert "WQW_READY_FILE=/run/wqw-worker/ready" in UNIT.read_text()
    assert unit["RuntimeDirectory"] == "wqw-worker"


def test_instance_mode_needs_its_arguments_before_touching_anything(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(INSTALL), "--prefix", str(tmp_path / "p")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "--env-file" in done.stderr
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_local_install_into_a_prefix(tmp_path: Path) -> None:
    prefix = tmp_path / "wqw"
    subprocess.run(
        ["bash", str(INSTALL), "--local", "--prefix", str(prefix), "--python", sys.executable],
        check=True, capture_output=True, text=True,
    )
    app = prefix / "app" / "worker_src"
    shipped = {p.relative_to(app).as_posix() for p in app.rglob("*")}
    assert {"__init__.py", "wire.py", "install.sh", "requirements.txt",
            "systemd/wqw-worker.service"} <= shipped
    assert not [p for p in shipped if "__pycache__" in p]
    python = prefix / "venv" / "bin" / "python"
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (app / "requirements.txt").read_text(),
                           re.M))
    probe = (
        "import sys, importlib.metadata as m, worker_src, worker_src.wire, numpy, PIL, skimage,"
        " boto3; print(sys.prefix); print(worker_src.__file__);"
        f" print(*[m.version(n) for n in {sorted(pins)!r}])"
    )
    out = subprocess.run([str(python), "-c", probe], cwd=prefix / "app", check=True,
                         capture_output=True, text=True).stdout.split("\n")
    assert Path(out[0]) == prefix / "venv"
    assert Path(out[1]).parent == app
    assert out[2].split() == [pins[n] for n in sorted(pins)]
    launcher = (prefix / "bin" / "wqw-worker").read_text()
    assert f'cd "{prefix / "app"}"' in launcher and str(python) in launcher

    # The installed worker, run as the unit runs it, processes a job from the local stack.
    ready = tmp_path / "ready"
    with LocalStack(workers=0, stack_name="wqw-install") as stack:
        env = {**stack.worker_environment(), "WQW_READY_FILE": str(ready)}
        env.pop("PYTHONPATH")  # import the installed copy, not this checkout
        env.pop("AWS_DEFAULT_REGION")  # user data writes AWS_REGION only
        worker = subprocess.Popen([str(prefix / "bin" / "wqw-worker")], env=env,
                                  stderr=subprocess.PIPE, text=True)
        try:
            with stack.client() as client:
                [job_id] = client.submit([("stats", {"numbers": [4, 8, 15, 16, 23, 42]})])
                [result] = list(client.wait([job_id], timeout=60))
            assert ready.read_text().strip() == result.worker
            assert result.worker.endswith(f":{worker.pid}")
            assert result.value["sum"] == 108 and result.value["median"] == 15.5
        finally:
            worker.terminate()
            assert worker.wait(timeout=30) == 0, worker.stderr.read()


def stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


@pytest.mark.parametrize(("versions", "ready", "result"), [
    ("7\t7", True, "CONTINUE"),    # started from the pool: the worker came up
    ("8\t7", True, "ABANDON"),     # slept through a deploy that changed the worker
    ("7\t7", False, "ABANDON"),    # the worker never reached its queue
])
def test_a_later_boot_finishes_the_launch_without_installing(
        tmp_path: Path, versions: str, ready: bool, result: str) -> None:
    """install.sh --finish-launch (the wqw-launch unit) with curl, aws and systemctl stubbed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "aws-calls"
    stub(bin_dir, "curl", 'case "$*" in *api/token*) echo token ;; *instance-id*) echo i-123 ;;'
                          ' *) exit 22 ;; esac\n')
    stub(bin_dir, "systemctl", "exit 0\n")
    stub(bin_dir, "aws", f'echo "$*" >> {calls}\n'
                         f'case "$*" in *describe-auto-scaling-groups*) printf "{versions}\\n" ;;'
                         ' esac\n')
    ready_file = tmp_path / "ready"
    if ready:
        ready_file.write_text("host:1\n")
    done = subprocess.run(
        ["bash", str(INSTALL), "--finish-launch", "--region", "eu-west-1", "--group", "g-workers",
         "--launch-hook", "worker-installed", "--ready-file", str(ready_file),
         "--ready-timeout", "2", "--prefix", str(tmp_path / "p")],
        capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert done.returncode == (0 if result == "CONTINUE" or ready else 1), done.stderr
    completes = [c for c in calls.read_text().splitlines() if "complete-lifecycle-action" in c]
    assert completes == [
        "autoscaling complete-lifecycle-action --region eu-west-1 --auto-scaling-group-name "
        "g-workers --lifecycle-hook-name worker-installed --instance-id i-123 "
        f"--lifecycle-action-result {result}"]
    assert not (tmp_path / "p").exists()  # nothing installed
