"""The pipeline's `steps` argument: a list of kinds that can be steps, read and checked.

A step is a registered kind with a `step` function (image in, image out), with its own
arguments checked by that kind. The argument is declared with `StepsArg`, an `Arg`
of the type STEPS whose `check` and `parse` look the steps up in the registry; the
registry itself knows nothing of steps beyond `Kind.step`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .registry import Arg, ArgError, Kind, kinds
from .wire import shown

# The argument type, as written in `kinds --json` (the web page shows a step picker).
STEPS = "steps"
MAX_STEPS = 16


class StepsArg(Arg):
    """An argument whose value is a list of steps, each `{"kind": name, "args": {...}}`."""

    def __init__(self, name: str, help: str) -> None:
        super().__init__(name, STEPS, help)

    def __post_init__(self) -> None:
        """Its type is STEPS, which the plain `Arg` does not take."""

    def range_text(self) -> str:
        return "a list of image steps"

    def check(self, value: Any) -> list[dict[str, Any]]:
        return check_steps(self.name, value, kinds())

    def parse(self, text: str) -> list[dict[str, Any]]:
        return self.check(parse_steps(self.name, text, kinds()))


def parse_steps(name: str, text: str, known: Mapping[str, Kind]) -> list[dict[str, Any]]:
    """Steps from a command line: `kind[:arg=value[:arg=value...]]` joined by commas.

    E.g. `orient,thumbnail:width=800:height=600,equalize,convert:format=webp`; each
    value is read as its argument's type. Text starting with `[` is read as the
    wire format's JSON list.
    """
    text = text.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ArgError(name, f"{name}: not a JSON list of steps: {exc}") from None
    steps: list[dict[str, Any]] = []
    for number, part in enumerate(text.split(","), start=1):
        kind_name, *pairs = [piece.strip() for piece in part.split(":")]
        step_kind = _step_kind(name, number, kind_name, known)
        args: dict[str, Any] = {}
        for pair in pairs:
            arg_name, sep, value = pair.partition("=")
            if not sep or not arg_name:
                raise ArgError(name, f"{name}: step {number} ({kind_name}): expected "
                                     f"NAME=VALUE after ':', got {pair!r}")
            try:
                args[arg_name] = step_kind.arg(arg_name).parse(value)
            except ArgError as exc:
                raise ArgError(name, f"{name}: step {number} ({kind_name}): "
                                     f"{exc.message}") from None
        steps.append({"kind": kind_name, "args": args})
    return steps


def check_steps(name: str, value: Any, known: Mapping[str, Kind]) -> list[dict[str, Any]]:
    """The steps checked, each `{"kind": name, "args": {...}}` with defaults filled in.

    Every step is a kind of `known` that can be a step, its arguments checked by
    that kind (its image is the pipeline's; its other file arguments, e.g. match's
    reference, are the pipeline's arguments of the same name).
    """
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_STEPS:
        raise ArgError(name, f"{name} must be a list of 1 to {MAX_STEPS} steps, got "
                             f"{shown(value)}")
    checked = []
    for number, step in enumerate(value, start=1):
        if not isinstance(step, Mapping) or not set(step) <= {"kind", "args"}:
            raise ArgError(name, f"{name}: step {number} must be an object with 'kind' and "
                                 f"'args', got {shown(step)}")
        step_kind = _step_kind(name, number, step.get("kind"), known)
        args = step.get("args") or {}
        if not isinstance(args, Mapping):
            raise ArgError(name, f"{name}: step {number} ({step_kind.name}): args must be an "
                                 f"object")
        files = step_kind.file_args()
        for file_arg in files:
            if file_arg in args:
                raise ArgError(name, f"{name}: step {number} ({step_kind.name}): {file_arg} "
                                     f"is not a step argument: the pipeline's image and "
                                     f"file arguments are the steps' files")
        try:
            full = step_kind.check_args({**args, **dict.fromkeys(files, "pipeline")})
        except ArgError as exc:
            raise ArgError(name, f"{name}: step {number} ({step_kind.name}): "
                                 f"{exc.message}") from None
        checked.append({"kind": step_kind.name,
                        "args": {k: v for k, v in full.items() if k not in files}})
    return checked


def _step_kind(name: str, number: int, kind_name: Any, known: Mapping[str, Kind]) -> Kind:
    steps = ", ".join(sorted(k for k, kind in known.items() if kind.step is not None))
    if not isinstance(kind_name, str) or known.get(kind_name) is None:
        raise ArgError(name, f"{name}: step {number}: unknown kind {shown(kind_name)}; the "
                             f"steps are {steps}")
    if known[kind_name].step is None:
        raise ArgError(name, f"{name}: step {number}: {kind_name} cannot be a step (it does "
                             f"not turn an image into an image); the steps are {steps}")
    return known[kind_name]
