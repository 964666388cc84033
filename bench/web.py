"""Web tier: 20 images dropped at once through the API, beside the CLI on the same 20.

    .venv/bin/python -m bench.web            # full run: 20 images of 1 MP, 3 rounds
    .venv/bin/python -m bench.web --quick    # smoke run: 20 images of 0.08 MP, 1 round

Everything runs as a user runs it, each in a process of its own: the local stack
(`python -m client local`: moto on 127.0.0.1, the CDK template, real worker processes) and
the web server (`python -m client.web --port 0 --no-browser`). This script is the browser:
20 threads POST /api/images at once, then it polls GET /api/jobs until all 20 are done. A
21st thread calls GET /api/status every 0.1 s from the first upload to the last result, and
for 5 s while nothing runs (idle).

The CLI is `python -m client equalize` of the same 20 files (interpreter start included:
that is what a user waits for). Web and CLI rounds alternate, so machine noise hits both;
the table shows the median round. Every round checks that the web's outputs are the CLI's
bytes. The request queue holds at most 20 messages (shallow).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2

from bench._common import ROOT, machine_line, make_photo, markdown_table, peak_rss_kib, percentile
from client.local import LOCAL_CREDENTIALS

STACK = "wqw-bench-web"
IMAGES = 20
READY_LINE = re.compile(r"web: (http://127\.0\.0\.1:\d+)/\?token=([A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class WebRound:
    uploaded_s: float  # the 20 POSTs answered 202
    done_s: float  # the 20 results seen in GET /api/jobs
    status_s: list[float]  # GET /api/status latencies while they ran


class WebServer:
    """`python -m client web` as a process, and an HTTP client with its token."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "client", "web", "--port", "0", "--no-browser",
             "--stack", STACK], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        match = READY_LINE.fullmatch(line.strip())
        if match is None:
            self.process.kill()
            raise SystemExit(f"the web server did not start: {line!r}")
        self.http = httpx2.Client(base_url=match.group(1), timeout=120,
                                  headers={"Authorization": f"Bearer {match.group(2)}"},
                                  limits=httpx2.Limits(max_connections=40))

    def peak_rss_mb(self) -> float | None:
        """The server process's high-water mark of resident memory (Linux /proc)."""
        kib = peak_rss_kib(self.process.pid)
        return kib / 1024 if kib is not None else None

    def stop(self) -> None:
        self.http.close()
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)


def poll_status(web: WebServer, stop: threading.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        response = web.http.get("/api/status")
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
        stop.wait(0.1)


def web_round(web: WebServer, images: list[Path], out: Path) -> WebRound:
    latencies: list[float] = []
    stop = threading.Event()
    poller = threading.Thread(target=poll_status, args=(web, stop, latencies))

    def upload(path: Path) -> str:
        with open(path, "rb") as file:
            response = web.http.post("/api/images", files={"file": (path.name, file)})
        response.raise_for_status()
        return response.json()["job_id"]

    started = time.perf_counter()
    poller.start()
    with ThreadPoolExecutor(max_workers=len(images)) as pool:
        ids = list(pool.map(upload, images))
    uploaded = time.perf_counter() - started
    wanted = set(ids)
    while True:
        jobs = {j["job_id"]: j for j in web.http.get("/api/jobs").json()["jobs"]
                if j["job_id"] in wanted}
        if all(j["state"] in ("done", "failed") for j in jobs.values()):
            break
        time.sleep(0.05)
    done = time.perf_counter() - started
    stop.set()
    poller.join()
    failed = [j["name"] for j in jobs.values() if j["state"] != "done"]
    if failed:
        raise SystemExit(f"web jobs failed: {failed}")
    out.mkdir(parents=True)
    for job in jobs.values():
        (out / job["download_name"]).write_bytes(web.http.get(job["output_url"]).content)
    return WebRound(uploaded, done, latencies)


def idle_status(web: WebServer, seconds: float) -> list[float]:
    latencies: list[float] = []
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    poll_status(web, stop, latencies)
    return latencies


def cli_round(env: dict[str, str], images: list[Path], out: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "client", "equalize", *map(str, images),
                           "-o", str(out), "--stack", STACK], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the CLI failed: {done.stderr}")
    return elapsed


def same_outputs(web_dir: Path, cli_dir: Path) -> bool:
    names = sorted(p.name for p in cli_dir.iterdir())
    return names == sorted(p.name for p in web_dir.iterdir()) and all(
        (web_dir / n).read_bytes() == (cli_dir / n).read_bytes() for n in names)


def milliseconds(values: list[float], fraction: float) -> str:
    return f"{percentile(values, fraction) * 1000:.0f} ms"


@contextmanager
def local_stack(workers: int, log: Path) -> Iterator[str]:
    """`python -m client local` in a process of its own; its endpoint URL."""
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "client", "local", "--port", "0", "--json", "--stack",
             STACK, "--workers", str(workers)], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=stderr, text=True)
        try:
            line = process.stdout.readline() if process.stdout else ""
            if not line:
                raise SystemExit(f"the local stack did not start; see {log}")
            yield json.loads(line)["endpoint_url"]
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small images, one round")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--rounds", type=int, help="rounds of web + CLI (default 3; quick 1)")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    width, height = (320, 240) if args.quick else (1152, 864)
    print(f"# {machine_line()}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="wqw-bench-web-") as tmp, \
            local_stack(args.workers, Path(tmp) / "stack.log") as endpoint_url:
        folder = Path(tmp)
        images = [make_photo(folder / f"photo{i:02d}.jpg", width, height, seed=i)
                  for i in range(IMAGES)]
        env = {**os.environ, **LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint_url}
        web = WebServer(env)
        try:
            web_rounds, cli_times, identical = [], [], True
            for number in range(rounds):
                print(f"round {number + 1}/{rounds} ...", file=sys.stderr)
                web_rounds.append(web_round(web, images, folder / f"web{number}"))
                cli_times.append(cli_round(env, images, folder / f"cli{number}"))
                identical &= same_outputs(folder / f"web{number}", folder / f"cli{number}")
            idle = idle_status(web, 5.0)
            peak = web.peak_rss_mb()
        finally:
            web.stop()
    busy = [latency for r in web_rounds for latency in r.status_s]
    web_done = statistics.median(r.done_s for r in web_rounds)
    cli_done = statistics.median(cli_times)
    print(f"\n{IMAGES} JPEG images of {width}x{height} ({width * height / 1e6:.2f} MP), "
          f"{args.workers} worker(s), median of {rounds} round(s); web outputs identical to "
          f"the CLI's: {'yes' if identical else 'NO'}; web server peak RSS "
          f"{f'{peak:.0f} MB' if peak is not None else 'n/a'}\n")
    print(markdown_table(
        ["path", "all 20 done", "per image", "uploads answered", "vs CLI"],
        [["web: 20 POST /api/images at once", f"{web_done:.2f} s",
          f"{web_done / IMAGES * 1000:.0f} ms",
          f"{statistics.median(r.uploaded_s for r in web_rounds):.2f} s",
          f"{web_done / cli_done:.2f}x"],
         ["CLI: python -m client equalize (20 files)", f"{cli_done:.2f} s",
          f"{cli_done / IMAGES * 1000:.0f} ms", "-", "1.00x"]]))
    print()
    print(markdown_table(
        ["GET /api/status", "requests", "p50", "p95", "max"],
        [["while the 20 run", len(busy), milliseconds(busy, 0.5), milliseconds(busy, 0.95),
          milliseconds(busy, 1.0)],
         ["idle", len(idle), milliseconds(idle, 0.5), milliseconds(idle, 0.95),
          milliseconds(idle, 1.0)]]))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
