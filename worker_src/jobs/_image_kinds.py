"""Image kinds declared once: the image in, the image out, run alone and as a pipeline step.

A kind made here takes its image first and the ORIENT option last, around its own arguments.
Standard library only at the top (the kind modules import it where the client lists kinds);
`_picture` and `_tables`, with numpy and Pillow, are imported when a job runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from ..registry import IMAGE, IMAGE_FILE, ORIENT, Arg, JobContext, Kind, Output

# A check across arguments: see Kind.check.
Check = Callable[[dict[str, Any]], None]
# A table kind's tables from its arguments and the image's colour histograms (channels x 256
# counts): channels x 256 uint8 values, or 256 for every channel (see _tables.MakeTables).
Tables = Callable[[dict[str, Any], Any], Any]


def step_kind(name: str, summary: str, step: Callable[[Any, JobContext], Any],
              args: tuple[Arg, ...] = (), *, check: Check | None = None,
              example: Mapping[str, Any] | None = None) -> Kind:
    """The kind whose job is its pipeline `step` alone (see _picture.run_kind_alone)."""

    def run(ctx: JobContext) -> Output:
        from ._picture import run_kind_alone

        return run_kind_alone(kind, ctx)

    kind = Kind(name=name, summary=summary, run=run, args=(IMAGE_FILE, *args, ORIENT),
                main_input=IMAGE_FILE.name, output=IMAGE, step=step, check=check,
                example=example or {})
    return kind


def table_kind(name: str, summary: str, tables: Tables, args: tuple[Arg, ...] = (),
               *, image: Arg = IMAGE_FILE, check: Check | None = None) -> Kind:
    """The kind whose pixels are its `tables` applied to its image (see _tables).

    Alone it reports progress by strips; as a step it changes the decoded image in place.
    """

    def run(ctx: JobContext) -> Output:
        from ._tables import run_tables

        return run_tables(ctx, partial(tables, ctx.args))

    def step(picture: Any, ctx: JobContext) -> Any:
        from ._tables import tables_step

        return tables_step(picture.pixels(), partial(tables, ctx.args))

    return Kind(name=name, summary=summary, run=run, args=(image, *args, ORIENT),
                main_input=image.name, output=IMAGE, step=step, check=check)
