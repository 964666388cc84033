"""The CDK app synthesized for tests: once per context in a test process, read through helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.config import config_from_context
from infra.stack import WebQueueWorkerStack

# The configurations every scanner (cdk-nag, cfn-lint, checkov) checks: the defaults, scale from
# zero (no instance at rest, a warm pool, the launch hook, the capacity raise), every option.
SCANNED_CONTEXTS = {
    "default": {},
    "elastic": {"min_workers": "0", "max_workers": "10"},
    "all-options": {
        "stack_name": "wqw-scanned",
        "max_workers": "4",
        "ssh_cidr": "198.51.100.7/32",
        "alarm_email": "ops@example.com",
        "instance_type": "t3.micro",
        "retention_days": "2",
        "visibility_timeout": "30",
    },
}


class Synth:
    """One synthesized stack: its config, template (dict and assertions object) and helpers."""

    def __init__(self, context: dict[str, str], outdir: Path) -> None:
        self.config = config_from_context(context)
        app = cdk.App(outdir=str(outdir))
        self.stack = WebQueueWorkerStack(app, self.config)
        self.assembly = app.synth()
        self.template_path = Path(self.assembly.directory) / self.stack.template_file
        self.template = Template.from_stack(self.stack)
        self.json: dict[str, Any] = self.template.to_json()
        self.resources: dict[str, Any] = self.json["Resources"]

    def of_type(self, cfn_type: str) -> dict[str, Any]:
        return {k: v for k, v in self.resources.items() if v["Type"] == cfn_type}

    def one(self, cfn_type: str, **properties: Any) -> tuple[str, dict[str, Any]]:
        """The one resource of `cfn_type` whose properties include `properties`."""
        found = {k: v for k, v in self.of_type(cfn_type).items()
                 if all(v["Properties"].get(p) == x for p, x in properties.items())}
        assert len(found) == 1, f"expected one {cfn_type} {properties}, found {sorted(found)}"
        return next(iter(found.items()))

    def queues(self) -> tuple[str, str]:
        """(requests, dead letters) logical ids: the requests queue is the one with a redrive."""
        queues = self.of_type("AWS::SQS::Queue")
        requests = [k for k, v in queues.items() if "RedrivePolicy" in v["Properties"]]
        assert len(queues) == 2 and len(requests) == 1
        (dead,) = set(queues) - set(requests)
        return requests[0], dead

    def outputs(self) -> dict[str, Any]:
        return {k: v["Value"] for k, v in self.json["Outputs"].items()}


# Synthesizing takes a second or more (the first one in a process several): the modules that
# read the same context share one synthesis. No test may change what it is given.
_SYNTHS: dict[tuple[tuple[str, str], ...], Synth] = {}


def synthesized(context: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The stack synthesized with `context`, the same object for every caller in this process."""
    key = tuple(sorted(context.items()))
    if key not in _SYNTHS:
        _SYNTHS[key] = Synth(context, tmp_path_factory.mktemp("cdk"))
    return _SYNTHS[key]


def render(value: Any) -> str:
    """An intrinsic-function value as one string: ${Name} for Ref, ${Name.Attr} for GetAtt."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref":
            return "${" + arg + "}"
        if fn == "Fn::GetAtt":
            return "${" + ".".join(arg) + "}"
        if fn == "Fn::Join":
            return arg[0].join(render(part) for part in arg[1])
        if fn == "Fn::Sub":
            return arg if isinstance(arg, str) else arg[0]
        if fn == "Fn::Base64":
            return render(arg)
    raise AssertionError(f"cannot render {value!r}")
