"""Run the reliability suite and write its table into docs/reliability.md.

    .venv/bin/python -m bench.reliability

The suite (tests/reliability) runs against the local stack and records, per scenario, the
runs, jobs, lost, misrouted and duplicated results, worker crashes and injected faults. This
script runs it with WQW_RELIABILITY_REPORT set and replaces the part of docs/reliability.md
between the two markers with the table; the rest of the page is prose kept by hand.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import ROOT

PAGE = ROOT / "docs" / "reliability.md"
START, END = "<!-- reliability-table:start -->", "<!-- reliability-table:end -->"


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wqw-reliability-") as directory:
        report = Path(directory) / "table.md"
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/reliability", "-q", "-p", "no:cacheprovider"],
            cwd=ROOT, env={**os.environ, "WQW_RELIABILITY_REPORT": str(report)})
        seconds = time.monotonic() - started
        if not report.exists():
            print("the suite wrote no figures", file=sys.stderr)
            return done.returncode or 1
        table = report.read_text(encoding="utf-8")
    outcome = "passed" if done.returncode == 0 else f"FAILED (pytest exit {done.returncode})"
    stamp = (f"Suite {outcome} in {seconds:.0f} s on {os.cpu_count()} CPU(s), "
             f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}.\n\n")
    page = PAGE.read_text(encoding="utf-8")
    head, _, rest = page.partition(START)
    _, _, tail = rest.partition(END)
    PAGE.write_text(f"{head}{START}\n{stamp}{table}{END}{tail}", encoding="utf-8")
    print(table)
    print(f"{stamp.strip()} Written to {PAGE.relative_to(ROOT)}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
