"""The pinned `cdk` CLI (node_modules, from package.json) synthesizes the app offline."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CDK = ROOT / "node_modules" / ".bin" / "cdk"
pytestmark = pytest.mark.slow


def cdk(*args: str, outdir: Path) -> subprocess.CompletedProcess:
    assert CDK.exists(), "the cdk CLI is missing: run 'npm ci' (make test does)"
    env = {**os.environ, "CDK_DISABLE_VERSION_CHECK": "1", "CDK_DISABLE_CLI_TELEMETRY": "true"}
    return subprocess.run([str(CDK), *args, "--output", str(outdir), "--no-notices"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def test_cdk_synth_works_offline_without_credentials(tmp_path):
    done = cdk("synth", "--quiet", "-c", "stack_name=wqw-cli", "-c", "min_workers=0",
               "-c", "max_workers=10", outdir=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    template = json.loads((tmp_path / "wqw-cli.template.json").read_text())
    types = {r["Type"] for r in template["Resources"].values()}
    assert {"AWS::SQS::Queue", "AWS::S3::Bucket", "AWS::AutoScaling::AutoScalingGroup",
            "AWS::AutoScaling::WarmPool", "AWS::EC2::LaunchTemplate", "AWS::EC2::SecurityGroup",
            "AWS::IAM::Role"} <= types
    assert "AWS::EC2::KeyPair" not in types  # only with ssh_cidr
    assert "RequestQueueUrl" in template["Outputs"]


def test_cdk_synth_refuses_ssh_from_the_whole_internet(tmp_path):
    done = cdk("synth", "--quiet", "-c", "ssh_cidr=0.0.0.0/0", outdir=tmp_path)
    assert done.returncode != 0
    assert "ssh_cidr '0.0.0.0/0' would open SSH to the whole internet" in done.stderr
