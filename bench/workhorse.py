"""The work horse's cost: an image job through the work horse beside the same work in-process.

    .venv/bin/python -m bench.workhorse            # 1 and 12 MP equalize, 7 runs (about 20 s)
    .venv/bin/python -m bench.workhorse --runs 3

Each cell is a fresh Python process (as in bench.image), the two ways interleaved, so that
the noise of a shared machine hits both alike and the ratio is measured in one run:

  work horse: bench.image's (b), Executor.perform: the job sent as data to the work horse
      forked before the clock starts (as the worker forks it at its start); the argument
      checks, reading the input, decode, the work, encode and the output's way back;
  in-process: the same kind's function with the same file in the benchmark's own process
      (Executor.compute, as the worker ran it before the work horse: main at c0a0635).

The target (issue 15): the work horse within 1.1x of in-process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import ROOT, run_in_process
from bench.image import QUICK_CASES, bench_executor, make_image, run_kind

TARGET = 1.1
WAYS = ("work horse", "in-process")


def run_once(way: str, path: Path) -> float:
    """One equalize job on `path` in this process, one way; wall seconds of the job."""
    from worker_src.executor import Executor
    from worker_src.store import MemoryStore

    # The kinds imported (and the work horse forked) before the clock starts.
    if way == "work horse":
        executor = bench_executor(path)
        started = time.perf_counter()
        run_kind("equalize", path, None, executor)
        return time.perf_counter() - started
    executor = Executor(MemoryStore(), identity="bench")
    started = time.perf_counter()
    run_in_process("equalize", {}, {"image": path}, executor)
    return time.perf_counter() - started


def measure(path: Path, runs: int) -> dict[str, float]:
    """Median seconds per way, over `runs` fresh processes each, interleaved."""
    samples: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(runs):
        for way in WAYS:
            output = subprocess.run([sys.executable, "-m", "bench.workhorse", "--child", way,
                                     str(path)], check=True, capture_output=True, text=True,
                                    cwd=ROOT).stdout
            samples[way].append(json.loads(output.strip().splitlines()[-1])["seconds"])
    return {way: statistics.median(values) for way, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per cell")
    parser.add_argument("--child", nargs=2, metavar=("WAY", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps({"seconds": run_once(args.child[0], Path(args.child[1]))}))
        return 0
    print(f"equalize, median of {args.runs} fresh processes per cell, interleaved\n")
    print("| image | work horse | in-process | ratio | target |")
    print("| --- | ---: | ---: | ---: | --- |")
    with tempfile.TemporaryDirectory(prefix="bench-workhorse-") as folder:
        for case in QUICK_CASES:
            path = make_image(Path(folder) / case.filename, case)
            result = measure(path, args.runs)
            ratio = result["work horse"] / result["in-process"]
            verdict = "met" if ratio <= TARGET else "missed"
            print(f"| {case.label} | {result['work horse']:.3f} s | {result['in-process']:.3f} s "
                  f"| {ratio:.2f}x | ≤ {TARGET}x: {verdict} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
