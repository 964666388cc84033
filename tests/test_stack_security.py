"""Security checks on the whole CDK app: cdk-nag's AwsSolutions pack and cfn-lint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import lint

import infra.nag
from infra.config import config_from_context
from infra.stack import WebQueueWorkerStack
from tests.synth import SCANNED_CONTEXTS

PACK_PREFIX = "AwsSolutions::"


def synth_with_nag(context: dict[str, str], outdir: Path) -> tuple[cdk.Stack, str | None]:
    """Synthesize with the AwsSolutions pack; return the stack and the failure message if any."""
    app = cdk.App(outdir=str(outdir))
    stack = WebQueueWorkerStack(app, config_from_context(context))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    try:
        app.synth()
    except RuntimeError as exc:
        return stack, str(exc)
    return stack, None


def violations(outdir: Path) -> list[tuple[str, str]]:
    """(rule, construct path) of every finding in the validation report."""
    report = json.loads((outdir / "validation-report.json").read_text())
    return [
        (v["ruleName"], c["constructPath"])
        for plugin in report["pluginReports"]
        for v in plugin.get("violations", [])
        for c in v["violatingConstructs"]
    ]


def acknowledgments(stack: cdk.Stack) -> dict[tuple[str, str], str]:
    """(construct path, rule id) -> reason for every AwsSolutions acknowledgment in the stack."""
    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    found = {}
    for construct in stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == key:
                for rule, reason in entry.data.items():
                    if rule.startswith(PACK_PREFIX):
                        found[(construct.node.path, rule[len(PACK_PREFIX):])] = reason
    return found


@pytest.fixture(scope="module")
def every_nagged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """name -> the stack synthesized with the pack, its failure message and its outdir."""
    found = {}
    for name, context in SCANNED_CONTEXTS.items():
        outdir = tmp_path_factory.mktemp(f"nag-{name}")
        stack, failure = synth_with_nag(context, outdir)
        found[name] = {"stack": stack, "failure": failure, "outdir": outdir}
    return found


@pytest.fixture(params=sorted(SCANNED_CONTEXTS))
def nagged(request: pytest.FixtureRequest, every_nagged: dict[str, dict[str, Any]]
           ) -> dict[str, Any]:
    return every_nagged[request.param]


def test_no_unacknowledged_findings(nagged: dict[str, Any]) -> None:
    found = violations(nagged["outdir"]) if nagged["failure"] else []
    assert nagged["failure"] is None and found == [], "\n".join(map(str, found))


def test_every_acknowledgment_names_its_rule_and_a_specific_reason(
    nagged: dict[str, Any],
) -> None:
    acks = acknowledgments(nagged["stack"])
    assert acks, "the stack acknowledges its known findings; none were recorded"
    for (path, rule), reason in acks.items():
        assert rule.startswith("AwsSolutions-"), (path, rule)
        assert len(reason) >= 80, (path, rule, reason)
        assert "not needed" not in reason.lower()


def test_every_acknowledgment_silences_a_real_finding(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, every_nagged: dict[str, dict[str, Any]]
) -> None:
    """Without the acknowledgments, the pack reports exactly the acknowledged findings."""
    acknowledged = set(acknowledgments(every_nagged["all-options"]["stack"]))
    monkeypatch.setattr(infra.nag, "acknowledge", lambda construct, rule, reason: None)
    _, failure = synth_with_nag(SCANNED_CONTEXTS["all-options"], tmp_path / "without")
    assert failure is not None
    reported = set(violations(tmp_path / "without"))
    assert sorted({rule for rule, _ in reported}) == sorted({rule for _, rule in acknowledged})
    # each finding sits on the L1 resource below the construct that acknowledges it
    for rule, path in reported:
        assert any(path.startswith(ack_path + "/") and rule == ack_rule
                   for ack_path, ack_rule in acknowledged), (rule, path)


def test_cfn_lint_is_clean(nagged: dict[str, Any]) -> None:
    stack = nagged["stack"]
    template = (nagged["outdir"] / stack.template_file).read_text()
    matches = lint(template, regions=["us-east-1", "eu-west-1", "ap-southeast-2"])
    assert [str(m) for m in matches] == []
