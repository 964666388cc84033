"""checkov's CloudFormation checks on the synthesized template: no failure, every skip justified.

checkov runs offline as its own program, from its own virtualenv: its pins (boto3==1.35.49,
networkx<2.7, packaging<24) cannot share the project's venv (boto3>=1.40, scikit-image needs
networkx>=3). It is found in $CHECKOV, then .venv-checkov/bin/checkov, then on PATH.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

import infra.nag
from tests import synth

ROOT = Path(__file__).resolve().parent.parent
SKIP_ID = re.compile(r"CKV2?_AWS_\d+")
MIN_REASON = 80


def checkov_program() -> str:
    candidates = [os.environ.get("CHECKOV"), str(ROOT / ".venv-checkov" / "bin" / "checkov"),
                  shutil.which("checkov")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("checkov is not installed: python3 -m venv .venv-checkov && "
                ".venv-checkov/bin/pip install -r requirements-checkov.txt (or set $CHECKOV)")


def run_checkov(templates: list[Path]) -> dict[str, Any]:
    """checkov's JSON report on `templates`; fails the test if checkov itself failed."""
    command = [checkov_program(), "--framework", "cloudformation", "--skip-download",
               "--output", "json"]
    for template in templates:
        command += ["--file", str(template)]
    # No update check against PyPI; exit code 1 only means "failed checks".
    env = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] > 0
    return report


def findings(report: dict[str, Any], kind: str) -> set[tuple[str, str, str]]:
    """(template file name, logical id, check id) of every result of `kind` (failed, skipped)."""
    return {
        (Path(r["file_abs_path"]).name, r["resource"].split(".", 1)[1], r["check_id"])
        for r in report["results"][f"{kind}_checks"]
    }


def collect_skips(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(logical id, check id) -> reason of every checkov skip in a template's Metadata.

    Refuses a skip without a check id or without a specific reason: checkov itself accepts
    both (it reads a missing comment as "No comment provided").
    """
    found = {}
    for name, resource in template["Resources"].items():
        metadata = resource.get("Metadata", {})
        for tool in ("checkov", "bridgecrew"):
            for skip in metadata.get(tool, {}).get("skip", []):
                check = str(skip.get("id", ""))
                reason = str(skip.get("comment", "")).strip()
                if not SKIP_ID.fullmatch(check):
                    raise ValueError(f"{name}: checkov skip {skip!r} has no valid check id")
                if len(reason) < MIN_REASON or "not needed" in reason.lower():
                    raise ValueError(f"{name}: the skip of {check} gives no specific reason")
                found[(name, check)] = reason
    return found


def without_skips(template: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(template)
    for resource in stripped["Resources"].values():
        resource.get("Metadata", {}).pop("checkov", None)
    return stripped


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """name -> {"path": template file, "template": its JSON}, for every context."""
    paths = {name: synth.synthesized(context, tmp_path_factory).template_path
             for name, context in synth.SCANNED_CONTEXTS.items()}
    return {name: {"path": path, "template": json.loads(path.read_text())}
            for name, path in paths.items()}


@pytest.fixture(scope="module")
def reports(synthesized: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, Any]:
    """One checkov run (it takes seconds to start) over the templates as synthesized and as
    they would be without their skips; the report of each part and the unskipped files."""
    folder = tmp_path_factory.mktemp("checkov-unskipped")
    unskipped = {}
    for name, s in synthesized.items():
        unskipped[name] = folder / f"{name}-unskipped.template.json"
        unskipped[name].write_text(json.dumps(without_skips(s["template"])))
    report = run_checkov([*(s["path"] for s in synthesized.values()), *unskipped.values()])
    names = {path.name for path in unskipped.values()}

    def part(without: bool) -> dict[str, Any]:
        return {"results": {kind: [r for r in report["results"][kind]
                                   if (Path(r["file_abs_path"]).name in names) == without]
                            for kind in ("passed_checks", "failed_checks", "skipped_checks")}}

    return {"synthesized": part(False), "unskipped": part(True), "unskipped files": unskipped}


def test_checkov_reports_no_failure(synthesized: dict[str, dict[str, Any]],
                                    reports: dict[str, Any]) -> None:
    report = reports["synthesized"]
    assert report["results"]["failed_checks"] == [], sorted(findings(report, "failed"))
    assert len(report["results"]["passed_checks"]) > 0
    # checkov skipped exactly what the templates declare, with the declared reasons
    declared = {(s["path"].name, name, check): reason
                for s in synthesized.values()
                for (name, check), reason in collect_skips(s["template"]).items()}
    assert findings(report, "skipped") == set(declared)
    for result in report["results"]["skipped_checks"]:
        key = (Path(result["file_abs_path"]).name, result["resource"].split(".", 1)[1],
               result["check_id"])
        assert result["check_result"]["suppress_comment"] == declared[key]


def test_every_skip_silences_a_real_finding(
    synthesized: dict[str, dict[str, Any]], reports: dict[str, Any]
) -> None:
    """Without the skips, checkov fails exactly the skipped checks on the skipped resources."""
    declared = set()
    for name, s in synthesized.items():
        path = reports["unskipped files"][name]
        declared |= {(path.name, *key) for key in collect_skips(s["template"])}
    report = reports["unskipped"]
    assert findings(report, "skipped") == set()
    assert findings(report, "failed") == declared


def test_a_skip_without_a_reason_is_refused(synthesized: dict[str, dict[str, Any]]) -> None:
    template = copy.deepcopy(synthesized["default"]["template"])
    assert collect_skips(template)  # the real template passes
    bucket = next(k for k, v in template["Resources"].items() if v["Type"] == "AWS::S3::Bucket")
    for bad in ({"id": "CKV_AWS_21"}, {"id": "CKV_AWS_21", "comment": "   "},
                {"id": "CKV_AWS_21", "comment": "Not needed."}, {"comment": "x" * 100}):
        broken = copy.deepcopy(template)
        broken["Resources"][bucket]["Metadata"]["checkov"]["skip"].append(bad)
        with pytest.raises(ValueError, match=bucket):
            collect_skips(broken)


@pytest.mark.parametrize(("check", "reason", "message"), [
    ("CKV_AWS_21", "", "specific reason"),
    ("CKV_AWS_21", "cheaper", "specific reason"),
    ("AwsSolutions-S1", "x" * 100, "not a checkov"),
])
def test_skip_checkov_refuses_a_skip_without_a_reason(check: str, reason: str,
                                                      message: str) -> None:
    """The helper that writes skips refuses them at synth time, before any scanner runs."""
    stack = cdk.Stack(cdk.App(), "Probe")
    topic = cdk.aws_sns.Topic(stack, "Topic")
    with pytest.raises(ValueError, match=message):
        infra.nag.skip_checkov(topic, check, reason)
    infra.nag.skip_checkov(topic, "CKV_AWS_26", "r" * MIN_REASON)
    infra.nag.skip_checkov(topic, "CKV_AWS_27", "s" * MIN_REASON)
    metadata = cdk.assertions.Template.from_stack(stack).to_json()["Resources"]
    (resource,) = metadata.values()
    assert resource["Metadata"]["checkov"] == {"skip": [
        {"id": "CKV_AWS_26", "comment": "r" * MIN_REASON},
        {"id": "CKV_AWS_27", "comment": "s" * MIN_REASON}]}
