"""Stats benchmark: the worker's compute beside statistics + sorted and numpy, and end to end.

    .venv/bin/python -m bench.stats            # 1 k, 1 M, 10 M int64 and 10 k x 1,000 digits
    .venv/bin/python -m bench.stats --quick    # smoke run (1 k and 100 k, seconds)
    .venv/bin/python -m bench.stats --no-today # without today's CLI path (the slowest row)

Data (generated here, never committed): integers drawn uniformly from the whole int64
range (about 20 characters each) or of exactly 1,000 digits with random signs, one per
line. Each measurement is a fresh Python process; times exclude interpreter start and
imports; peak RSS is the process's own high-water mark (VmHWM; imports included).

Compute (same file on disk, in one run):
  worker      the stats kind as the executor runs it: streamed, checked, numpy for
              64-bit values, exact Python ints beyond, the default 400 MiB budget
              (and a 64 MiB one: out of core); result compared with the reference
  statistics  read, split, int(), sorted(), statistics.mean/median, min, max, sum:
              the exact reference
  numpy       np.fromstring + min/max/sum/mean/median: no checking, sum wraps around
              int64, mean and median are floats (a floor, not an answer)

End to end (the local stack: moto on 127.0.0.1, one `python -m worker_src` process):
a client process checks and uploads the file (client/numbers.py), submits
("stats", {"file": key}) and waits for the result. "upload only" sends the same file
with the same parts and no check (the emulator's floor). "today's CLI" is `python -m
client stats --file F` as it is on main, which reads the whole file and sends the list
through args.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import ROOT, peak_rss_kib

MiB = 1024 * 1024
CASES = {"1 k int64": ("int64", 1_000), "1 M int64": ("int64", 1_000_000),
         "10 M int64": ("int64", 10_000_000), "10 k x 1,000 digits": ("digits", 10_000)}
QUICK = {"1 k int64": ("int64", 1_000), "100 k int64": ("int64", 100_000),
         "1 k x 1,000 digits": ("digits", 1_000)}


# ---- data ---------------------------------------------------------------------------------

def write_case(path: Path, shape: str, count: int, seed: int = 1) -> Path:
    import random

    import numpy as np

    with open(path, "w", encoding="ascii") as file:
        if shape == "int64":
            rng = np.random.default_rng(seed)
            for start in range(0, count, 1_000_000):
                block = rng.integers(-(2**63), 2**63 - 1, size=min(1_000_000, count - start),
                                     endpoint=True, dtype=np.int64)
                file.write("\n".join(map(str, block.tolist())) + "\n")
        else:
            rnd = random.Random(seed)
            for _ in range(count):
                sign = "-" if rnd.random() < 0.5 else ""
                file.write(f"{sign}{rnd.randint(10**999, 10**1000 - 1)}\n")
    return path


# ---- children (one process per measurement) -------------------------------------------------

def child_compute(method: str, path: Path, budget_mb: int) -> dict:
    from bench._common import DiskFile
    from worker_src import registry, wire
    from worker_src.jobs.stats import summary

    if method == "worker":
        kind = registry.get_kind("stats")
        limits = registry.Limits(max_input_bytes=kind.max_input_bytes,
                                 memory_budget_bytes=budget_mb * MiB)
        # Imports before the clock, as in a warm worker.
        kind.run(registry.JobContext({"numbers": [1]}, {}, limits))
        file = DiskFile(path)
        started = time.perf_counter()
        output = kind.run(registry.JobContext({}, {"file": file}, limits))
        return {"seconds": time.perf_counter() - started, "passes": file.opened,
                "value": wire.dumps(output.value)}
    if method == "statistics":
        import statistics
        from fractions import Fraction

        summary(1, 1, 1, 1, (1, 1))  # its imports before the clock
        started = time.perf_counter()
        numbers = list(map(int, path.read_bytes().split()))
        ordered = sorted(numbers)
        try:
            statistics.mean(ordered)  # exact sum, then a float
        except OverflowError:  # beyond floats: the exact value instead
            Fraction(sum(ordered), len(ordered))
        middle = statistics.median_low(ordered), statistics.median_high(ordered)
        value = summary(len(ordered), min(ordered), max(ordered), sum(ordered), middle)
        return {"seconds": time.perf_counter() - started, "value": wire.dumps(value)}
    import numpy as np

    started = time.perf_counter()
    values = np.fromstring(path.read_bytes(), dtype=np.int64, sep=" ")
    values.min(), values.max(), values.sum(), values.mean(), np.median(values)
    return {"seconds": time.perf_counter() - started}


def child_client(endpoint: str, stack: str, path: Path) -> dict:
    from client import api
    from client.numbers import upload_numbers
    from worker_src import wire

    started = time.perf_counter()
    with api.Client.connect(stack, endpoint_url=endpoint) as client:
        job_id = wire.new_job_id()
        with open(path, "rb") as file:
            key, count = upload_numbers(client, job_id, file, name=path.name)
        uploaded = time.perf_counter()
        client.submit([("stats", {"file": key})], job_ids=[job_id])
        [result] = list(client.wait([job_id], timeout=900))
    if not result.ok:
        raise SystemExit(f"{result.error_code}: {result.error_message}")
    return {"seconds": time.perf_counter() - started, "upload_seconds": uploaded - started,
            "run_seconds": result.timing.get("run_s"), "value": wire.dumps(result.value)}


def child_upload(endpoint: str, stack: str, path: Path) -> dict:
    """The floor of the client's part: the same file up to S3, same parts, no check, no job."""
    from client import api
    from client.numbers import STREAMED
    from worker_src import contract, wire

    started = time.perf_counter()
    with api.Client.connect(stack, endpoint_url=endpoint) as client, open(path, "rb") as file:
        raw = type("Raw", (), {"read": lambda self, size=-1: file.read(size)})()  # no seek
        api.aws_call(client.s3.upload_fileobj, Fileobj=raw, Bucket=client.stack.bucket,
                     Key=contract.input_key(wire.new_job_id(), "raw.txt"), Config=STREAMED)
    return {"seconds": time.perf_counter() - started}


def child_cli(argv: list[str]) -> dict:
    """`python -m client ARGV` in this process, its output discarded: its time and exit code."""
    import contextlib

    from client import cli

    started = time.perf_counter()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        code = cli.main(argv)
    return {"seconds": time.perf_counter() - started, "exit_code": code}


def run_child(argv: list[str], env: dict[str, str] | None = None) -> dict:
    """Run this script as a child (--child, --client, --cli): its JSON line, with rss_mb."""
    done = subprocess.run([sys.executable, "-m", "bench.stats", *argv], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, check=False)
    if done.returncode:
        raise RuntimeError(f"{argv} failed ({done.returncode}): {done.stdout[-2000:]!r}")
    return json.loads(done.stdout.splitlines()[-1])


def own_peak_mb() -> float:
    """This process's peak RSS (VmHWM) in MB: read at the end of a child."""
    return peak_mb(os.getpid())


# ---- the worker process's peak memory --------------------------------------------------------

def reset_peak(pid: int) -> None:
    """Start the process's peak RSS (VmHWM) again from its current RSS (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_mb(pid: int) -> float:
    kib = peak_rss_kib(pid)
    if kib is None:
        raise RuntimeError("no VmHWM")
    return kib * 1024 / 1e6


# ---- the run -------------------------------------------------------------------------------

def compute_table(files: dict[str, Path]) -> tuple[list[list[str]], dict[str, dict]]:
    rows, worker_values = [], {}
    for label, path in files.items():
        me = ["--child"]
        worker = run_child([*me, "worker", str(path), "400"])
        reference = run_child([*me, "statistics", str(path), "0"])
        exact = "yes" if worker["value"] == reference["value"] else "NO"
        numpy_cell, ratio_numpy = "n/a (beyond int64)", ""
        if not label.endswith("digits"):
            floor = run_child([*me, "numpy", str(path), "0"])
            numpy_cell = f"{floor['seconds']:.2f} s, {floor['rss_mb']:.0f} MB"
            ratio_numpy = f"{worker['seconds'] / floor['seconds']:.1f}x"
        rows.append([label, f"{path.stat().st_size / 1e6:.1f}",
                     f"{worker['seconds']:.3f} s, {worker['rss_mb']:.0f} MB",
                     f"{reference['seconds']:.3f} s, {reference['rss_mb']:.0f} MB",
                     f"{reference['seconds'] / worker['seconds']:.1f}x", numpy_cell,
                     ratio_numpy, exact])
        worker_values[label] = worker
        print(f"  compute {label}: done", file=sys.stderr)
    largest = max(files, key=lambda label: files[label].stat().st_size)
    small = run_child(["--child", "worker", str(files[largest]), "64"])
    rows.append([f"{largest}, 64 MiB budget", f"{files[largest].stat().st_size / 1e6:.1f}",
                 f"{small['seconds']:.3f} s, {small['rss_mb']:.0f} MB ({small['passes']} "
                 f"pass{'es' if small['passes'] > 1 else ''})", "", "", "", "",
                 "yes" if small["value"] == worker_values[largest]["value"] else "NO"])
    return rows, worker_values


def end_to_end_table(files: dict[str, Path], values: dict[str, dict],
                     today: bool) -> list[list[str]]:
    from bench._common import WorkerProcess, local_stack, quiet_emulator
    from worker_src.contract import Env

    quiet_emulator()
    rows = []
    with local_stack("wqw-bench-stats") as stack:
        env = stack.worker_environment()
        client = ["--client", stack.endpoint_url, stack.stack_name]

        def measure(label: str, path: Path, worker: WorkerProcess, note: str = "") -> None:
            reset_peak(worker.process.pid)
            done = run_child([*client, str(path)], env)
            exact = "yes" if done["value"] == values[label]["value"] else "NO"
            rows.append([label + note, f"{done['seconds']:.2f}", f"{done['upload_seconds']:.2f}",
                         f"{done['run_seconds']:.2f}", f"{done['rss_mb']:.0f}",
                         f"{peak_mb(worker.process.pid):.0f}", exact])
            print(f"  end to end {label}{note}: done", file=sys.stderr)

        # Short polls: a killed worker's open poll would take the next job (moto completes it).
        stack.extra_worker_env[Env.WAIT_SECONDS] = "1"
        worker = WorkerProcess(stack)
        try:
            idle = peak_mb(worker.process.pid)
            for label, path in files.items():
                measure(label, path, worker)
            largest = max(files, key=lambda label: files[label].stat().st_size)
            floor = run_child(["--upload", stack.endpoint_url, stack.stack_name,
                               str(files[largest])], env)
            rows.append([f"{largest}, upload only (no check, no job)", "",
                         f"{floor['seconds']:.2f}", "", f"{floor['rss_mb']:.0f}", "", ""])
            if today:
                reset_peak(worker.process.pid)
                cli = run_child(["--cli", "stats", "--file", str(files[largest]), "--stack",
                                 stack.stack_name, "--endpoint-url", stack.endpoint_url,
                                 "--timeout", "900"], env)
                rows.append([f"{largest}, today's CLI (list in args.json)",
                             f"{cli['seconds']:.2f}", "", "", f"{cli['rss_mb']:.0f}",
                             f"{peak_mb(worker.process.pid):.0f}", ""])
        finally:
            worker.stop()
        time.sleep(2)  # its last poll ends
        stack.extra_worker_env[Env.MEMORY_BUDGET_MB] = "64"
        worker = WorkerProcess(stack)
        try:
            measure(largest, files[largest], worker, ", worker budget 64 MiB")
        finally:
            worker.stop()
    rows.append([f"(idle worker: {idle:.0f} MB peak RSS before any job)", "", "", "", "", "",
                 ""])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--no-today", action="store_true", help="skip today's CLI path")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "PATH", "BUDGET_MB"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=3, metavar=("ENDPOINT", "STACK", "PATH"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--upload", nargs=3, metavar=("ENDPOINT", "STACK", "PATH"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--cli", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    child = None
    if args.child:
        method, path, budget = args.child
        child = child_compute(method, Path(path), int(budget))
    elif args.client:
        endpoint, stack, path = args.client
        child = child_client(endpoint, stack, Path(path))
    elif args.upload:
        endpoint, stack, path = args.upload
        child = child_upload(endpoint, stack, Path(path))
    elif args.cli:
        child = child_cli(args.cli)
    if child is not None:
        print(json.dumps({**child, "rss_mb": own_peak_mb()}))
        return

    from bench._common import machine_line, markdown_table

    cases = QUICK if args.quick else CASES
    with tempfile.TemporaryDirectory(prefix="wqw-bench-stats-") as directory:
        files = {}
        for label, (shape, count) in cases.items():
            files[label] = write_case(Path(directory) / f"{shape}-{count}.txt", shape, count)
        print("generated the data", file=sys.stderr)
        compute_rows, values = compute_table(files)
        e2e_rows = end_to_end_table(files, values, today=not args.no_today and not args.quick)
    print(f"\n## Stats: compute ({machine_line()})\n")
    print(markdown_table(["input", "MB", "worker", "statistics + sorted", "speed-up",
                          "numpy (unchecked, inexact)", "worker / numpy", "exact"],
                         compute_rows))
    print("\ntime from the file on disk to the result; peak RSS of the process (imports "
          "included)\n")
    print("## Stats: end to end through the local stack\n")
    print(markdown_table(["input", "total s", "check + upload s", "worker run s",
                          "client peak MB", "worker peak MB", "exact"], e2e_rows))
    print("\nworker peak MB: the worker process's high-water mark during the job (VmHWM, "
          "reset before each job); moto runs in the benchmark's own process")


if __name__ == "__main__":
    main()
