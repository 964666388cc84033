#!/usr/bin/env python3
"""The CDK app: one WebQueueWorkerStack configured from context (cdk.json or -c key=value)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def _rerun_in_project_venv() -> None:
    """`npx cdk synth` runs "python3 app.py" with whatever python3 is first on PATH; if that one
    lacks aws_cdk, run this app again with the project's .venv (Linux, macOS or Windows)."""
    if importlib.util.find_spec("aws_cdk") is not None:
        return
    venv = ROOT / ".venv"
    if Path(sys.prefix).resolve() != venv.resolve():
        for candidate in (venv / "bin" / "python", venv / "Scripts" / "python.exe"):
            if candidate.exists():
                sys.exit(subprocess.run([str(candidate), __file__, *sys.argv[1:]]).returncode)
    sys.exit("error: aws-cdk-lib is not installed: create .venv (see the README) or activate it")


def main() -> None:
    _rerun_in_project_venv()
    import aws_cdk as cdk

    from infra.config import OPTIONS, ConfigError, config_from_context
    from infra.stack import WebQueueWorkerStack

    app = cdk.App()
    try:
        config = config_from_context({name: app.node.try_get_context(name) for name in OPTIONS})
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
    WebQueueWorkerStack(app, config)
    app.synth()


if __name__ == "__main__":
    main()
