"""Thumbnail and pipeline benchmark: ours beside libvips' thumbnail and Pillow's full decode.

    .venv/bin/python -m bench.image_steps            # both tables (a few minutes)
    .venv/bin/python -m bench.image_steps --quick    # smoke run

The input is a 12 MP real-looking JPEG (scikit-image's sample photos scaled up,
sensor-like noise, quality 90, EXIF orientation 6; 1 MP with --quick), written
here and never committed. Every cell is a fresh Python process, timed around
the work only (imports and the interpreter's start excluded), with its peak RSS
(VmHWM, imports included); the median over the runs.

Thumbnail, to fit 1600 x 1600 (the output a JPEG, quality 90 or the input's tables):
  libvips: pyvips' `Image.thumbnail` + JPEG encode (the row is left out without pyvips);
  ours:    the `thumbnail` kind's function as the worker calls it (shrink-on-load);
  exact:   the same with shrink_on_load=false;
  Pillow:  full decode + `resize(..., LANCZOS)` + encode, the path without shrink-on-load.

Pipeline (orient, thumbnail to 1600, equalize, convert to WebP):
  the `pipeline` kind's function, beside each step's kind run alone on the same JPEG
  (the target: at most 1.2x the slowest), and through the local stack (`client.local`):
  one pipeline job, beside the four kinds run as four jobs one after another, each on
  the photo, and chained, each on the previous one's output (uploads, queue, downloads
  included; the target: less than a third).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import ROOT, peak_rss_kib, run_in_process

BOX = 1600
STEPS = f"orient,thumbnail:width={BOX}:height={BOX},equalize,convert:format=webp"
# The pipeline's steps, each as a kind of its own with its arguments (the text form).
ALONE = (("orient", {}), ("thumbnail", {"width": BOX, "height": BOX, "orient": True}),
         ("equalize", {}), ("convert", {"format": "webp"}))


def make_photo(path: Path, megapixels: float, orientation: int = 6) -> Path:
    """A real-looking photo: a sample photo scaled to `megapixels` (4:3) with sensor noise."""
    import numpy as np
    from PIL import Image
    from skimage import data

    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = round(width * 3 / 4)
    im = Image.fromarray(data.astronaut()).resize((width, height), Image.Resampling.BICUBIC)
    rng = np.random.default_rng(0)
    rows = max(1, 2_000_000 // width)
    for top in range(0, height, rows):
        box = (0, top, width, min(height, top + rows))
        strip = np.asarray(im.crop(box), dtype=np.int16)
        strip = strip + rng.normal(0, 5, strip.shape[:2] + (1,)).astype(np.int16)
        im.paste(Image.fromarray(strip.clip(0, 255).astype(np.uint8)), box)
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(path, "JPEG", quality=90, exif=exif.tobytes())
    return path


def pipeline_args() -> dict[str, Any]:
    from worker_src import registry

    return {"steps": registry.get_kind("pipeline").arg("steps").parse(STEPS)}


# ---- one measurement, in a fresh process ----------------------------------------------

def work(method: str, path: Path, warm_up: Path | None = None) -> float:
    """Do one method's work in this process; its wall time in seconds.

    With `warm_up` (a tiny JPEG), the same work is done on it first, untimed: the
    imports and the codecs' first-use costs stay out of the time, for every method.
    """
    if warm_up is not None:
        work(method, warm_up)
    if method == "libvips":
        import pyvips

        start = time.perf_counter()
        pyvips.Image.thumbnail(str(path), BOX, height=BOX).write_to_buffer(".jpg[Q=90]")
        return time.perf_counter() - start
    if method == "pillow":
        from PIL import Image

        start = time.perf_counter()
        im = Image.open(path)
        im.load()
        width, height = im.size
        scale = min(BOX / width, BOX / height)
        out = im.resize((round(width * scale), round(height * scale)), Image.Resampling.LANCZOS)
        out.save(io.BytesIO(), "JPEG", quality=90)
        return time.perf_counter() - start
    kind_name, args = {"ours": ("thumbnail", {"width": BOX, "height": BOX}),
                       "exact": ("thumbnail", {"width": BOX, "height": BOX,
                                               "shrink_on_load": False}),
                       "pipeline": ("pipeline", pipeline_args()),
                       **{f"alone-{name}": (name, a) for name, a in ALONE}}[method]
    from worker_src.executor import Executor
    from worker_src.store import MemoryStore

    executor = Executor(MemoryStore(), identity="bench")  # every kind imported: off the clock
    start = time.perf_counter()
    run_in_process(kind_name, args, {"image": path}, executor)
    return time.perf_counter() - start


def measure(method: str, path: Path, runs: int) -> tuple[float, float]:
    """Median (seconds, peak MB) of `runs` fresh processes."""
    return measure_all([method], path, runs)[method]


def measure_all(methods: list[str], path: Path, runs: int) -> dict[str, tuple[float, float]]:
    """Median (seconds, peak MB) per method, the runs interleaved (a, b, c, a, b, c, ...) so
    that the machine's load changes weigh on every method alike."""
    samples: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
    for _ in range(runs):
        for method in methods:
            output = subprocess.run([sys.executable, "-m", "bench.image_steps", "--child",
                                     method, str(path)], check=True, capture_output=True,
                                    text=True, cwd=ROOT).stdout
            report = json.loads(output.strip().splitlines()[-1])
            samples[method].append((report["seconds"], report["maxrss_kib"] * 1024 / 1e6))
    return {m: (statistics.median(s for s, _ in samples[m]),
                statistics.median(mb for _, mb in samples[m])) for m in methods}


def have_pyvips() -> bool:
    try:
        import pyvips  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


# ---- the tables ---------------------------------------------------------------------------

def thumbnail_table(path: Path, runs: int) -> None:
    methods = (["libvips"] if have_pyvips() else []) + ["ours", "exact", "pillow"]
    results = measure_all(methods, path, runs)
    names = {"libvips": "libvips `thumbnail` (pyvips)",
             "ours": "ours: `thumbnail` (shrink-on-load)",
             "exact": "ours: `thumbnail shrink_on_load=false`",
             "pillow": "Pillow: full decode + resize LANCZOS"}
    ours_s, ours_mb = results["ours"]
    print(f"\nthumbnail of {path.name} to fit {BOX} x {BOX} ({runs} runs):\n")
    print("| method | time | peak RSS | time / ours |")
    print("| --- | ---: | ---: | ---: |")
    for method in methods:
        seconds, mb = results[method]
        print(f"| {names[method]} | {seconds * 1e3:.0f} ms | {mb:.0f} MB | "
              f"{seconds / ours_s:.2f}x |")
    print()
    if "libvips" in results:
        ratio = ours_s / results["libvips"][0]
        print(f"ours / libvips: {ratio:.2f}x "
              f"(target <= 1.5x: {'met' if ratio <= 1.5 else 'MISSED'})")
    else:
        print("libvips: pyvips is not installed (pip install -r requirements-dev.txt)")
    speedup = results["pillow"][0] / ours_s
    print(f"Pillow full decode / ours: {speedup:.2f}x (target >= 2x: "
          f"{'met' if speedup >= 2 else 'MISSED'})")
    print(f"peak RSS ours {ours_mb:.0f} MB vs full decode {results['pillow'][1]:.0f} MB "
          f"({'met' if ours_mb < results['pillow'][1] else 'MISSED'})")


def pipeline_table(path: Path, runs: int, stack_runs: int) -> None:
    methods = ["pipeline"] + [f"alone-{name}" for name, _ in ALONE]
    results = measure_all(methods, path, runs)
    print(f"\npipeline {STEPS} on {path.name} ({runs} runs):\n")
    print("| job | time | peak RSS |")
    print("| --- | ---: | ---: |")
    for method in methods:
        seconds, mb = results[method]
        label = "pipeline (one decode, one encode)" if method == "pipeline" else (
            f"`{method.removeprefix('alone-')}` alone")
        print(f"| {label} | {seconds * 1e3:.0f} ms | {mb:.0f} MB |")
    slowest = max(methods[1:], key=lambda m: results[m][0])
    ratio = results["pipeline"][0] / results[slowest][0]
    print(f"\npipeline / slowest step alone ({slowest.removeprefix('alone-')}): {ratio:.2f}x "
          f"(target <= 1.2x: {'met' if ratio <= 1.2 else 'MISSED'})")
    if stack_runs:
        one, separate, chained = through_local_stack(path, stack_runs)
        print(f"\nthrough the local stack (1 worker, median of {stack_runs} runs; uploads, queue "
              f"and downloads included):\n")
        print("| jobs | time | pipeline / this |")
        print("| --- | ---: | ---: |")
        print(f"| one pipeline job | {one:.2f} s | |")
        print(f"| the four kinds as four jobs, one after another, each on the photo | "
              f"{separate:.2f} s | {one / separate:.2f} |")
        print(f"| the four kinds as four jobs, each on the previous one's output | "
              f"{chained:.2f} s | {one / chained:.2f} |")
        print(f"\npipeline / four jobs: {one / separate:.2f} on the photo, {one / chained:.2f} "
              f"chained (target < 0.33: {'met' if one / separate < 1 / 3 else 'MISSED'}, "
              f"{'met' if one / chained < 1 / 3 else 'MISSED'})")


def through_local_stack(path: Path, runs: int) -> tuple[float, float, float]:
    """Median seconds, end to end: the pipeline as one job; the four kinds as four jobs on
    the photo; the four jobs chained, each on the previous one's output."""
    from client.local import LocalStack

    times: dict[str, list[float]] = {"one": [], "separate": [], "chained": []}
    with tempfile.TemporaryDirectory() as folder, \
            LocalStack(stack_name="wqw-bench-steps", workers=1,
                       worker_log=Path(folder) / "worker.log") as stack, \
            stack.client() as client:
        out = Path(folder)
        run_job(client, "orient", path, {}, out)  # a warm worker for every row
        for _ in range(runs):
            started = time.perf_counter()
            run_job(client, "pipeline", path, pipeline_args(), out)
            times["one"].append(time.perf_counter() - started)
            started = time.perf_counter()
            for name, args in ALONE:
                run_job(client, name, path, args, out)
            times["separate"].append(time.perf_counter() - started)
            started = time.perf_counter()
            current = path
            for name, args in ALONE:
                current = run_job(client, name, current, args, out)
            times["chained"].append(time.perf_counter() - started)
    one, separate, chained = (statistics.median(times[k]) for k in ("one", "separate",
                                                                     "chained"))
    return one, separate, chained


def run_job(client: Any, kind: str, path: Path, args: dict[str, Any], folder: Path) -> Path:
    """One job through the stack: upload, run, download its output next to the others."""
    [job_id] = client.submit_files(kind, [path], args)
    [result] = list(client.wait([job_id], 300))
    if not result.ok:
        raise RuntimeError(f"{kind}: {result.error_code}: {result.error_message}")
    key = result.value["output_key"]
    destination = folder / f"{path.stem}-{kind}{Path(key).suffix}"
    client.download_output(key, destination)
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 MP, fewer runs: a smoke run")
    parser.add_argument("--runs", type=int, help="fresh processes per cell (default 5; 2 quick)")
    parser.add_argument("--only", choices=("thumbnail", "pipeline"), help="one table only")
    parser.add_argument("--no-stack", action="store_true",
                        help="leave out the local stack's comparison")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        method, path = args.child
        seconds = work(method, Path(path), warm_up=Path(path).with_name("warm-up.jpg"))
        print(json.dumps({"seconds": seconds, "maxrss_kib": peak_rss_kib() or 0}))
        return 0
    runs = args.runs or (2 if args.quick else 5)
    with tempfile.TemporaryDirectory(prefix="bench-steps-") as folder:
        megapixels = 1 if args.quick else 12
        path = make_photo(Path(folder) / f"photo-{megapixels}mp.jpg", megapixels)
        make_photo(Path(folder) / "warm-up.jpg", 0.01)  # each child's untimed first run
        if args.only != "pipeline":
            thumbnail_table(path, runs)
        if args.only != "thumbnail":
            pipeline_table(path, runs, 0 if args.no_stack else (1 if args.quick else 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
