"""A table kind's two functions, run alone and as a pipeline step, written once for every such kind.

Standard library only at the top (the kind modules import it where the client lists kinds);
`_tables` and its numpy and Pillow are imported when a job runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..registry import JobFile, Limits, Output, Progress, no_progress

# A kind's arguments -> (histograms -> tables): see _tables.MakeTables.
TablesFor = Callable[[dict[str, Any]], Callable[[Any], Any]]
Run = Callable[..., Output]
Step = Callable[[Any, dict[str, Any], Mapping[str, JobFile], Limits], Any]


def table_functions(tables_for: TablesFor) -> tuple[Run, Step]:
    """The kind's `run` (the "image" file, with the ORIENT argument) and its `step`."""

    def run(args: dict[str, Any], files: Mapping[str, JobFile], limits: Limits,
            progress: Progress = no_progress) -> Output:
        from ._tables import run_tables

        return run_tables(files["image"], limits, tables_for(args), progress=progress,
                          orient=args["orient"])

    def step(picture: Any, args: dict[str, Any], files: Mapping[str, JobFile],
             limits: Limits) -> Any:
        from ._tables import tables_step

        return tables_step(picture.pixels(), tables_for(args))

    return run, step
