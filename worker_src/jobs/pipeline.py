"""The `pipeline` kind: several image steps in order, on one decode and one encode.

Each step is a registered kind that can be a step (`Kind.step`), with its own
arguments checked by that kind; its pixels are the kind's own when run alone.
The result records each step's time, and the decode's and the encode's; progress is
the share of steps done (the encode counts as one more).
"""

from __future__ import annotations

from typing import Any

from .. import registry
from ..registry import FILE, IMAGE, IMAGE_FILE, Arg, ArgError, JobContext, Kind, Output
from ..steps import StepsArg


def pipeline(ctx: JobContext) -> Output:
    from ._picture import run_steps

    kinds = registry.kinds()
    return run_steps([(kinds[step["kind"]], step["args"]) for step in ctx.args["steps"]], ctx)


def check(args: dict[str, Any]) -> None:
    kinds = registry.kinds()
    for number, step in enumerate(args["steps"], start=1):
        kind = kinds[step["kind"]]
        for name in kind.file_args():
            if name != kind.main_input and args.get(name) is None:
                raise ArgError(name, f"step {number} ({kind.name}) needs the pipeline's "
                                     f"argument {name} ({kind.arg(name).help})")


KIND = Kind(
    name="pipeline",
    summary="Image steps in order on one decode and one encode, e.g. "
            "orient,thumbnail:width=800,equalize,convert:format=webp.",
    run=pipeline,
    args=(
        IMAGE_FILE,
        StepsArg("steps", "kind[:arg=value...] joined by commas, e.g. orient,thumbnail:"
                         "width=800,convert:format=webp (or the wire format's JSON list)"),
        Arg("reference", FILE, "the reference image of a match step", default=None),
    ),
    main_input="image",
    output=IMAGE,
    example={"steps": [{"kind": "orient"}, {"kind": "thumbnail", "args": {"width": 256}},
                       {"kind": "equalize"}]},
    check=check,
)
