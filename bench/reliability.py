"""Run the reliability suite and write its tables into docs/reliability.md.

    .venv/bin/python -m bench.reliability [--fuzz-examples N]

First the fuzzer (tests/test_fuzz_messages.py) with more examples than the default run
(1,000 per test unless told), its tally written to a file; then the suite
(tests/reliability), against the local stack, which records per scenario the runs, jobs,
lost, misrouted and duplicated results, worker crashes and injected faults, and the
hostile-input table (the fuzzer's tally its first row). This script replaces the part of
docs/reliability.md between the two markers with the tables; the rest of the page is prose
kept by hand.
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz-examples", type=int, default=1000,
                        help="examples per fuzzer test (default 1000)")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wqw-reliability-") as directory:
        report, fuzz = Path(directory) / "table.md", Path(directory) / "fuzz.json"
        started = time.monotonic()
        fuzzed = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/test_fuzz_messages.py", "-q",
             "-p", "no:cacheprovider"], cwd=ROOT,
            env={**os.environ, "WQW_FUZZ_EXAMPLES": str(options.fuzz_examples),
                 "WQW_FUZZ_REPORT": str(fuzz)})
        figures = {"WQW_FUZZ_FIGURES": str(fuzz)} if fuzz.exists() else {}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/reliability", "-q", "-p", "no:cacheprovider"],
            cwd=ROOT, env={**os.environ, "WQW_RELIABILITY_REPORT": str(report), **figures})
        seconds = time.monotonic() - started
        if not report.exists():
            print("the suite wrote no figures", file=sys.stderr)
            return done.returncode or 1
        table = report.read_text(encoding="utf-8")
    failed = done.returncode or fuzzed.returncode
    outcome = "passed" if not failed else (f"FAILED (pytest exit {done.returncode}, fuzzer "
                                           f"exit {fuzzed.returncode})")
    stamp = (f"Suite {outcome} in {seconds:.0f} s on {os.cpu_count()} CPU(s), "
             f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}.\n\n")
    page = PAGE.read_text(encoding="utf-8")
    head, _, rest = page.partition(START)
    _, _, tail = rest.partition(END)
    PAGE.write_text(f"{head}{START}\n{stamp}{table}{END}{tail}", encoding="utf-8")
    print(table)
    print(f"{stamp.strip()} Written to {PAGE.relative_to(ROOT)}")
    return failed


if __name__ == "__main__":
    sys.exit(main())
