"""Preparing a job, once, for every caller: the kind found, its arguments checked, its files named.

    job = prepare("gamma", parse_args(find_kind("gamma"), {"gamma": "0.5"}),
                  {"image": "photo.jpg"})
    [job_id] = client.submit_prepared([job], [{"image": Path("photo.jpg")}])

The CLI (`run`, `equalize`, `stats`) and the web page call this, before anything is
uploaded or sent; the worker checks the arguments again on its side (it trusts no client).
Standard library and the registry only: no AWS call here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker_src import contract, registry

from . import numbers
from .errors import UsageError
from .names import safe_name

# The name under inputs/<job>/ that holds a job's arguments when they travel through S3.
RESERVED_NAME = contract.args_key("x").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class PreparedJob:
    """A job ready to upload and send: its kind, checked arguments and upload names."""

    kind: registry.Kind
    # The arguments checked, defaults filled in (the job says what it ran with), without
    # the file arguments (their S3 keys are filled in when the files are uploaded) and
    # without those that are null (absent, to the worker too).
    args: dict[str, Any]
    # Each file argument given, and the name its file goes up under inputs/<job_id>/.
    upload_names: dict[str, str]


def find_kind(name: str) -> registry.Kind:
    """The registered kind called `name`; UsageError naming the known ones if none."""
    try:
        return registry.get_kind(name)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


def parse_args(kind: registry.Kind, texts: Mapping[str, str]) -> dict[str, Any]:
    """Arguments written as text (the CLI's -a NAME=VALUE, the page's form fields) as values.

    Integers are read with the client's digit bound (client/numbers.py); a file argument
    cannot be written as text.
    """
    values: dict[str, Any] = {}
    try:
        for name, text in texts.items():
            arg = kind.arg(name)
            if arg.type == registry.FILE:
                raise UsageError(f"{name} is a file: give a file for it, not a value")
            if arg.type == registry.INTEGERS:
                values[name] = arg.check(numbers.read_integers(numbers.split_tokens(text)))
            elif arg.type == registry.INT:
                values[name] = arg.check(_integer(arg, text))
            else:
                values[name] = arg.parse(text)
    except registry.ArgError as exc:
        raise UsageError(exc.message) from None
    return values


def _integer(arg: registry.Arg, text: str) -> int:
    try:
        return numbers.parse_integer(text.strip())
    except numbers.NotAnInteger:
        raise UsageError(f"{arg.name} must be {arg.range_text()}, got "
                         f"{numbers.shown_token(text)}") from None


def prepare(kind_name: str, values: Mapping[str, Any],
            files: Mapping[str, str] = {}) -> PreparedJob:
    """Check a job before anything is uploaded: UsageError saying what is wrong.

    `files` maps each file argument given to its file's name (the main input's among
    them, for kinds that take one); they go up as <name> (the main input) and
    <argument>-<name> (any other), never as the job's own arguments file.
    """
    kind = find_kind(kind_name)
    for name in files:
        if name not in kind.file_args():
            raise UsageError(f"{kind.name} takes no file {name!r}; its files: "
                             f"{', '.join(kind.file_args()) or 'none'}")
    if files and kind.main_input not in files:
        raise UsageError(f"{kind.name}: file arguments need an input file")
    try:
        checked = kind.check_args({**values, **files})
    except registry.ArgError as exc:
        raise UsageError(exc.message) from None
    upload_names = {name: _upload_name(file_name if name == kind.main_input
                                       else f"{name}-{file_name}")
                    for name, file_name in files.items()}
    return PreparedJob(kind, {name: value for name, value in checked.items()
                              if name not in kind.file_args() and value is not None},
                       upload_names)


def _upload_name(name: str) -> str:
    """A file's S3 name: safe, and never the name of the job's arguments file."""
    safe = safe_name(name)
    return "_" + safe if safe == RESERVED_NAME else safe
