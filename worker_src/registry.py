"""The job registry: what a job kind declares, and the kinds found in `worker_src/jobs/`.

A kind is one module in `worker_src/jobs/` with a module-level `KIND = Kind(...)`:
its name, summary, arguments, input, output, limits and its function. This module
and the kind modules' top levels import the standard library only, so the client
can list and check kinds without numpy, Pillow or scikit-image; a kind's function
imports what it needs when it runs.

    KIND = Kind(name="invert", summary="Invert an image's colours.",
                args=(Arg("image", FILE, "the image"),), main_input="image",
                output=IMAGE, run=invert)

The function is called as `run(ctx)` with one `JobContext`: `ctx.args` are the checked
arguments with defaults filled in (file arguments left out), `ctx.files` the file
arguments as `JobFile`s by name, `ctx.limits` the worker's `Limits`, and `ctx.progress`
a callable taking the fraction done (0 to 1), to call as often as it likes (the worker
sends at most one word every few seconds, and only for jobs that run longer than one).
It returns an `Output`, or raises `wire.JobError` for input that can never succeed.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from .contract import MAX_PIXELS
from .wire import shown

# Argument types, as written in `kinds --json` and the wire format's args (the pipeline's
# list of steps is one more, `steps.STEPS`, declared with `steps.StepsArg`).
INT, FLOAT, BOOL, STR, FILE, INTEGERS = "int", "float", "bool", "str", "file", "integers"
ARG_TYPES = (INT, FLOAT, BOOL, STR, FILE, INTEGERS)
# Outputs.
JSON, IMAGE = "json", "image"

# A job runs at most this long (wall clock) unless its kind says otherwise.
DEFAULT_TIME_LIMIT_S = 300.0
# The heartbeat can hold a message for at most SQS's 12 hours from its receipt; a job
# must end well within that, its result delivered.
MAX_TIME_LIMIT_S = 11 * 3600.0


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


class ArgError(ValueError):
    """An argument the kind refuses; `name` is the argument's name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


@dataclass(frozen=True)
class Arg:
    """One argument of a kind. `default` REQUIRED: must be given; None: optional, no value."""

    name: str
    type: str
    help: str
    default: Any = REQUIRED
    minimum: float | None = None
    maximum: float | None = None
    # True: the bounds themselves are refused (e.g. gamma > 0).
    exclusive: bool = False
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in ARG_TYPES:
            raise ValueError(f"argument {self.name}: unknown type {self.type!r}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def range_text(self) -> str:
        """The allowed values in words, e.g. 'a number > 0 and <= 10'."""
        words = {INT: "an integer", FLOAT: "a number", BOOL: "true or false", STR: "a string",
                 FILE: "a file (-a NAME=@PATH)", INTEGERS: "a list of integers"}[self.type]
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.exclusive else '>='} {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"{'<' if self.exclusive else '<='} {self.maximum:g}")
        if self.choices is not None:
            bounds.append("one of " + ", ".join(map(str, self.choices)))
        return words + (" " + " and ".join(bounds) if bounds else "")

    def check(self, value: Any) -> Any:
        """The value if it is allowed (ints widened to float for FLOAT), else ArgError."""
        # Written only when raised: the value may be a list of a million long integers.
        def wrong() -> ArgError:
            return ArgError(self.name, f"{self.name} must be {self.range_text()}, "
                                       f"got {shown(value)}")

        if self.type == BOOL:
            if not isinstance(value, bool):
                raise wrong()
            return value
        if isinstance(value, bool):
            raise wrong()
        if self.type == INT and not isinstance(value, int):
            raise wrong()
        if self.type == FLOAT:
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise wrong()
            value = float(value)
        if self.type in (STR, FILE) and not isinstance(value, str):
            raise wrong()
        if self.type == INTEGERS and not isinstance(value, list):
            raise wrong()
        if self.type in (INT, FLOAT):
            low, high = self.minimum, self.maximum
            if low is not None and (value < low or (self.exclusive and value == low)):
                raise wrong()
            if high is not None and (value > high or (self.exclusive and value == high)):
                raise wrong()
        if self.choices is not None and value not in self.choices:
            raise wrong()
        return value

    def parse(self, text: str) -> Any:
        """A command-line value (NAME=VALUE) as this argument's type, checked."""
        if self.type == INT:
            try:
                value: Any = int(text)
            except ValueError:
                raise ArgError(self.name, f"{self.name} must be {self.range_text()}, "
                                          f"got {text!r}") from None
        elif self.type == FLOAT:
            try:
                value = float(text)
            except ValueError:
                raise ArgError(self.name, f"{self.name} must be {self.range_text()}, "
                                          f"got {text!r}") from None
        elif self.type == BOOL:
            words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
            if text.lower() not in words:
                raise ArgError(self.name, f"{self.name} must be true or false, got {text!r}")
            value = words[text.lower()]
        elif self.type == INTEGERS:
            try:
                value = [int(token) for token in text.replace(",", " ").split()]
            except ValueError:
                raise ArgError(self.name, f"{self.name} must be {self.range_text()}, "
                                          f"got {text!r}") from None
        else:
            value = text
        return self.check(value)

    def describe(self) -> dict[str, Any]:
        """This argument as `kinds --json` and the web page show it."""
        return {"name": self.name, "type": self.type, "help": self.help,
                "required": self.required,
                "default": None if self.required else self.default,
                "minimum": self.minimum, "maximum": self.maximum,
                "exclusive": self.exclusive,
                "choices": list(self.choices) if self.choices is not None else None,
                "allowed": self.range_text()}


# The input of most image kinds, and the option every image kind has: turn the image upright
# first (what the orient kind does).
IMAGE_FILE = Arg("image", FILE, "the image (JPEG, PNG, GIF or BMP)")
ORIENT = Arg("orient", BOOL, "apply the EXIF orientation first (turn the image upright) and "
                             "clear the tag", default=False)


@dataclass(frozen=True)
class Limits:
    """What one job may use on this worker (from the kind, lowered by the worker's settings)."""

    max_input_bytes: int
    max_pixels: int | None = None
    memory_budget_bytes: int = 400 * 1024 * 1024
    # Wall-clock seconds the job may run (the work horse stops it then: time_limit).
    time_limit_s: float = DEFAULT_TIME_LIMIT_S


class JobFile(Protocol):
    """A file argument of a job: an object under inputs/<job_id>/ in the bucket."""

    name: str  # the file's name as the client sent it
    key: str
    size: int

    def open(self) -> BinaryIO:
        """A stream of the object's bytes (read it once, in pieces, to save memory)."""

    def read(self) -> bytes:
        """The whole object (its size is within the kind's max_input_bytes)."""


# A kind's progress callback: the fraction of the job done, from 0 to 1.
Progress = Callable[[float], None]


def no_progress(_fraction: float) -> None:
    """A progress callback that reports nowhere: a job run without a worker (tests, benchmarks)."""


@dataclass(frozen=True)
class JobContext:
    """What a kind's function (and its pipeline step) is given for one job."""

    args: dict[str, Any]  # checked, defaults filled in, file arguments left out
    files: Mapping[str, JobFile]  # the file arguments given, by name
    limits: Limits
    progress: Progress = no_progress


@dataclass(frozen=True)
class Output:
    """What a job gives back: a JSON value, and for image kinds the encoded file."""

    value: dict[str, Any] = field(default_factory=dict)
    data: bytes | None = None
    content_type: str | None = None
    suffix: str = ""  # the output file's extension, e.g. ".jpg"


@dataclass(frozen=True)
class Kind:
    """A job kind: what it takes, what it gives, its limits, and the function that runs it."""

    name: str
    summary: str
    run: Callable[[JobContext], Output]
    args: tuple[Arg, ...] = ()
    # The file argument that `run KIND FILE ...` fills (one job per FILE); None: no FILE.
    main_input: str | None = None
    output: str = JSON
    max_input_bytes: int = 200 * 1024 * 1024
    # Pixels an input image may have (checked from its header); the worker's WQW_MAX_PIXELS
    # replaces it.
    max_pixels: int = MAX_PIXELS
    # A check across arguments (e.g. low < high): raise ArgError naming one of them.
    check: Callable[[dict[str, Any]], None] | None = None
    # Wall-clock seconds a job of this kind may run before it is stopped (time_limit).
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    # How the kind runs as a pipeline step (image in, image out), None if it cannot:
    # step(picture, ctx) -> the new image (see jobs/_picture.py).
    step: Callable[[Any, JobContext], Any] | None = None
    # Arguments a demo job of this kind uses (`python -m client demo`) besides its files.
    example: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.time_limit_s <= MAX_TIME_LIMIT_S:
            raise ValueError(f"kind {self.name}: time_limit_s must be > 0 and <= "
                             f"{MAX_TIME_LIMIT_S:g}, got {self.time_limit_s!r}")
        names = [arg.name for arg in self.args]
        if len(set(names)) != len(names):
            raise ValueError(f"kind {self.name}: an argument name is used twice")
        if self.main_input is not None and self.main_input not in self.file_args():
            raise ValueError(f"kind {self.name}: main_input {self.main_input!r} is not a "
                             f"file argument")
        if self.output not in (JSON, IMAGE):
            raise ValueError(f"kind {self.name}: output must be {JSON!r} or {IMAGE!r}")

    def arg(self, name: str) -> Arg:
        for arg in self.args:
            if arg.name == name:
                return arg
        raise ArgError(name, f"{self.name} has no argument {name!r}; its arguments: "
                             f"{', '.join(a.name for a in self.args) or 'none'}")

    def file_args(self) -> list[str]:
        return [arg.name for arg in self.args if arg.type == FILE]

    def check_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments checked, with defaults filled in; ArgError names the first bad one."""
        if not isinstance(args, Mapping):
            raise ArgError("args", "args must be a JSON object")
        for name in args:
            self.arg(name)
        checked: dict[str, Any] = {}
        for arg in self.args:
            if arg.name in args and args[arg.name] is not None:
                checked[arg.name] = arg.check(args[arg.name])
            elif arg.required:
                raise ArgError(arg.name, f"{self.name} needs the argument {arg.name} "
                                         f"({arg.range_text()}): {arg.help}")
            else:
                checked[arg.name] = arg.default
        if self.check is not None:
            self.check(checked)
        return checked

    def describe(self) -> dict[str, Any]:
        """This kind as `kinds --json` and the web page show it."""
        return {"name": self.name, "summary": self.summary, "main_input": self.main_input,
                "output": self.output, "max_input_bytes": self.max_input_bytes,
                "max_pixels": self.max_pixels, "time_limit_s": self.time_limit_s,
                "step": self.step is not None,
                "args": [a.describe() for a in self.args]}


def load_kinds(package: str = "worker_src.jobs") -> dict[str, Kind]:
    """Every kind in `package`: each module (not starting with _) that defines KIND."""
    root = importlib.import_module(package)
    kinds: dict[str, Kind] = {}
    for module_info in sorted(pkgutil.iter_modules(root.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{module_info.name}")
        kind = getattr(module, "KIND", None)
        if not isinstance(kind, Kind):
            continue
        if kind.name in kinds:
            raise ValueError(f"two modules define the kind {kind.name!r}")
        kinds[kind.name] = kind
    return kinds


def load_implementations(package: str = "worker_src.jobs") -> None:
    """Import every module of `package`, the kinds' helpers and what they import included.

    A kind's function imports numpy, Pillow or scikit-image when it runs; the worker calls
    this once at start, before it forks its work horse, so that each new work horse has them
    loaded already (importing them in a child would cost about 0.1 s).
    """
    root = importlib.import_module(package)
    for module_info in pkgutil.iter_modules(root.__path__):
        importlib.import_module(f"{package}.{module_info.name}")


_KINDS: dict[str, Kind] | None = None


def kinds() -> dict[str, Kind]:
    """The registered kinds by name (found once per process)."""
    global _KINDS
    if _KINDS is None:
        _KINDS = load_kinds()
    return _KINDS


def get_kind(name: str) -> Kind:
    """The kind called `name`; KeyError with the known names if there is none."""
    known = kinds()
    if name not in known:
        raise KeyError(f"unknown job kind {name!r}; known kinds: {', '.join(sorted(known))}")
    return known[name]
