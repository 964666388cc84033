"""The CDK app's own template, made deployable into moto's CloudFormation (the local stack).

synthesize() runs app.py in a subprocess (no CDK CLI, no credentials) and keeps the template
in .cache/templates/, under a hash of everything the synthesis reads (the app's sources, the
worker it ships, the context, the stack name, aws-cdk-lib's version): the next local stack with
the same inputs starts without the 10 s synthesis. prepare_for_emulator() drops what moto
cannot run. docs/deploy.md ("The local stack") lists what is dropped and why.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "templates"
# What a synthesis reads: the app and its constructs, the worker it ships as an asset; cdk.json
# too (the CLI's settings, where context may be added).
SYNTH_INPUTS = ("app.py", "cdk.json", "infra", "worker_src")

# Attributes that make CloudFormation wait for cfn-signal from a real instance.
WAIT_ATTRIBUTES = ("CreationPolicy", "UpdatePolicy")
# Resource types moto's CloudFormation cannot create: replaced by fixed strings wherever the
# template refers to them ("local-<LogicalId>" for Ref, "local-<LogicalId>-<Attr>" for GetAtt).
PLACEHOLDER_TYPES = ("AWS::EC2::KeyPair",)


class SynthError(RuntimeError):
    """The CDK app failed (bad context option, broken app); the message is its stderr."""


def synthesize(stack_name: str, context: dict[str, str], outdir: Path) -> dict[str, Any]:
    """The stack's template for `context` (+ stack_name): from the cache, or by running the CDK
    app into `outdir` (then cached; a failed synthesis is not)."""
    key = synth_key(stack_name, context)
    cached = CACHE / f"{key}.json" if key else None
    template = _cached(cached) if cached else None
    if template is None:
        template = _run_app(stack_name, context, Path(outdir))
        if cached:
            _keep(template, cached)
    return template


def _cached(path: Path) -> dict[str, Any] | None:
    """The template kept at `path`; None if there is none, or it is not one (then replaced)."""
    try:
        template = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(template, dict) and isinstance(template.get("Resources"), dict):
        return template
    return None


def _keep(template: dict[str, Any], path: Path) -> None:
    """Write `template` at `path` whole or not at all (two synths may finish at once)."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False,
                                         encoding="utf-8") as file:
            temporary = Path(file.name)
            json.dump(template, file)
        os.replace(temporary, path)
    except OSError:
        pass  # a read-only checkout (or a full disk) synthesizes every time
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)


def synth_key(stack_name: str, context: dict[str, str]) -> str | None:
    """A hash of everything a synthesis depends on: equal keys, equal templates. None (no
    caching) where this interpreter cannot tell aws-cdk-lib's version (app.py then runs in
    the project's .venv)."""
    try:
        cdk_version = metadata.version("aws-cdk-lib")
    except metadata.PackageNotFoundError:
        return None
    digest = hashlib.sha256()
    inputs = {"stack_name": stack_name, "context": context, "aws-cdk-lib": cdk_version,
              "env": {k: v for k, v in os.environ.items()
                      if k.startswith(("CDK_", "AWS_REGION", "AWS_DEFAULT_REGION"))}}
    digest.update(json.dumps(inputs, sort_keys=True).encode())
    for name in SYNTH_INPUTS:
        path = ROOT / name
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
        for file in files:
            digest.update(str(file.relative_to(ROOT)).encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def _run_app(stack_name: str, context: dict[str, str], outdir: Path) -> dict[str, Any]:
    outdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        CDK_OUTDIR=str(outdir),
        CDK_CONTEXT_JSON=json.dumps({**context, "stack_name": stack_name}),
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SynthError(done.stderr.strip() or f"app.py exited with {done.returncode}")
    return json.loads((outdir / f"{stack_name}.template.json").read_text(encoding="utf-8"))


def _references(node: Any) -> set[str]:
    """Names a template fragment points at: Ref, Fn::GetAtt, ${Name} in Fn::Sub, Condition."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found.update(
                    part.split("}")[0].split(".")[0] for part in str(text).split("${")[1:]
                )
            elif key == "Condition" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::If" and isinstance(value, list) and value:
                found.add(str(value[0]))
            found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def _depends_on(resource: dict[str, Any]) -> set[str]:
    value = resource.get("DependsOn", [])
    return {value} if isinstance(value, str) else set(value)


def _unsupported(resources: dict[str, Any]) -> set[str]:
    """Custom resources, the Lambda functions behind them and those functions' roles."""
    dropped = {
        name
        for name, resource in resources.items()
        if resource["Type"].startswith("Custom::") or resource["Type"] == "AWS::CDK::Metadata"
    }
    for name in list(dropped):
        token = resources[name].get("Properties", {}).get("ServiceToken")
        for provider in _references(token) & resources.keys():
            if resources[provider]["Type"] == "AWS::Lambda::Function":
                dropped.add(provider)
                role = resources[provider].get("Properties", {}).get("Role")
                dropped |= {
                    r
                    for r in _references(role) & resources.keys()
                    if resources[r]["Type"] == "AWS::IAM::Role"
                }
    return dropped


def _substitute(node: Any, names: set[str]) -> Any:
    """`node` with every Ref / Fn::GetAtt to one of `names` replaced by a placeholder string."""
    if isinstance(node, dict):
        if len(node) == 1 and node.get("Ref") in names:
            return f"local-{node['Ref']}"
        getatt = node.get("Fn::GetAtt") if len(node) == 1 else None
        if isinstance(getatt, list) and getatt and getatt[0] in names:
            return f"local-{getatt[0]}-{getatt[1]}"
        return {key: _substitute(value, names) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(item, names) for item in node]
    return node


def prepare_for_emulator(template: dict[str, Any]) -> dict[str, Any]:
    """A copy of `template` that moto's CloudFormation can create.

    - drops custom resources, their provider function and its role, AWS::CDK::Metadata, and
      then every resource that still refers (Ref, GetAtt, Sub) to a dropped one (for CDK's
      auto-delete-objects: the bucket policy, which moto ignores anyway);
    - removes resources of PLACEHOLDER_TYPES; references to them become fixed strings;
    - drops Rules, the BootstrapVersion parameter, outputs and conditions left dangling or
      unused, and DependsOn entries on dropped resources;
    - removes CreationPolicy/UpdatePolicy: nothing in the emulator runs user data or signals.
    """
    prepared = copy.deepcopy(template)
    placeholders = {
        name
        for name, resource in prepared.get("Resources", {}).items()
        if resource["Type"] in PLACEHOLDER_TYPES
    }
    for name in placeholders:
        del prepared["Resources"][name]
    prepared = _substitute(prepared, placeholders)
    resources: dict[str, Any] = prepared.get("Resources", {})

    dropped = _unsupported(resources)
    while True:
        dependents = {
            name
            for name, resource in resources.items()
            if name not in dropped and _references(resource) & dropped
        }
        if not dependents:
            break
        dropped |= dependents
    for name in dropped:
        del resources[name]

    for resource in resources.values():
        for attribute in WAIT_ATTRIBUTES:
            resource.pop(attribute, None)
        remaining = sorted(_depends_on(resource) - dropped)
        if "DependsOn" in resource:
            if remaining:
                resource["DependsOn"] = remaining
            else:
                del resource["DependsOn"]

    outputs = prepared.get("Outputs", {})
    for key in [k for k, v in outputs.items() if _references(v) & dropped]:
        del outputs[key]

    prepared.pop("Rules", None)
    prepared.get("Parameters", {}).pop("BootstrapVersion", None)

    conditions = prepared.get("Conditions", {})
    used = _references({k: v for k, v in prepared.items() if k != "Conditions"})
    # Conditions may refer to other conditions: keep the closure of the used ones.
    while True:
        more = {c for c in used & conditions.keys() for c in _references(conditions[c])} - used
        if not more:
            break
        used |= more
    for name in [c for c in conditions if c not in used]:
        del conditions[name]
    if "Conditions" in prepared and not conditions:
        del prepared["Conditions"]
    return prepared
