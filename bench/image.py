"""Image benchmark: each image kind beside scikit-image's own call path and the codec floor.

    .venv/bin/python -m bench.image            # full run (about 10 minutes)
    .venv/bin/python -m bench.image --quick    # smoke run (about a minute)

Four tables, one run. The first is `equalize` over image sizes; the second has
one row per image kind on a 12 MP RGB JPEG (1 MP with --quick); the third and
fourth are `thumbnail` beside libvips and the `pipeline` beside its steps, from
bench/image_steps.py (its docstring says how they are measured). The images are
synthetic photo-like pictures (smooth gradients plus noise, low contrast;
generated here, never committed); `match` gets a second such picture, same
size, as its reference. Every cell is a fresh Python process; the table shows
the median over the runs of wall time (the work only: interpreter start and
imports excluded) and of peak RSS (the child's own high-water mark, VmHWM,
imports included; ru_maxrss where there is no /proc):

  (a) scikit-image's path: skimage.io.imread -> the exposure function
      (img_as_ubyte where it returns floats) -> save with Pillow, same format;
  (b) ours: the kind's function as the worker calls it, Executor.perform: the job
      sent as data to the work horse (a child forked in advance, before the clock
      starts, as the worker forks it at its start), with its time and memory limits;
      the argument checks, decode, the work, the histograms, encode and the output's
      way back to the parent included; its peak RSS is the larger of the process's
      and the work horse's;
  (c) the floor: Pillow decode + encode of the same file, no processing (for
      `match` the reference is decoded too: the job cannot avoid it).

`max |diff|` compares (a)'s pixels with (b)'s before encoding, in one extra
process per row.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import ROOT, DiskFile
from bench._common import peak_rss_kib as own_peak_kib

METHODS = ("a", "b", "c")
# Each kind's arguments in the benchmark (the rest are the kinds' defaults).
KIND_ARGS = {"equalize": {}, "clahe": {}, "stretch": {}, "gamma": {"gamma": 0.5}, "log": {},
             "sigmoid": {}, "match": {}}


@dataclass(frozen=True)
class Case:
    megapixels: float
    mode: str  # "RGB" or "L"
    fmt: str  # "JPEG" or "PNG"

    @property
    def label(self) -> str:
        kind = "RGB" if self.mode == "RGB" else "gray"
        return f"{self.megapixels:g} MP {kind} {self.fmt}"

    @property
    def filename(self) -> str:
        ext = "jpg" if self.fmt == "JPEG" else "png"
        return f"{self.megapixels:g}mp-{self.mode.lower()}.{ext}"


FULL_CASES = (
    Case(1, "RGB", "JPEG"), Case(12, "RGB", "JPEG"), Case(24, "RGB", "JPEG"),
    Case(48, "RGB", "JPEG"), Case(100, "RGB", "JPEG"), Case(12, "L", "JPEG"),
    Case(12, "RGB", "PNG"),
)
QUICK_CASES = (Case(1, "RGB", "JPEG"), Case(12, "RGB", "JPEG"))
KINDS_CASE, QUICK_KINDS_CASE = Case(12, "RGB", "JPEG"), Case(1, "RGB", "JPEG")


def make_image(path: Path, case: Case, seed: int = 0) -> Path:
    """Write a photo-like test image: smooth low-contrast gradients plus sensor-like noise."""
    import numpy as np
    from PIL import Image

    width = round(math.sqrt(case.megapixels * 1e6 * 4 / 3))
    height = round(width * 3 / 4)
    rng = np.random.default_rng(seed)
    bands = len(case.mode)
    small = rng.integers(70, 180, (9, 12, bands), dtype=np.uint8)
    small_image = Image.fromarray(small[..., 0] if bands == 1 else small)
    base = small_image.resize((width, height), Image.Resampling.BICUBIC)
    rows = max(1, 2_000_000 // width)
    for top in range(0, height, rows):
        box = (0, top, width, min(height, top + rows))
        strip = np.asarray(base.crop(box), dtype=np.int16)
        strip = strip + rng.normal(0, 6, strip.shape).astype(np.int16)
        base.paste(Image.fromarray(strip.clip(0, 255).astype(np.uint8)), box)
    if case.fmt == "JPEG":
        base.save(path, "JPEG", quality=90)
    else:
        base.save(path, "PNG")
    return path


def skimage_result(kind: str, pixels, reference_path: Path | None):
    """scikit-image's answer for `kind` on decoded pixels (img_as_ubyte where it gives floats)."""
    import warnings

    import numpy as np
    from skimage import exposure, io, util

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # equalize_hist: "This might be a color image"
        if kind == "equalize":
            return util.img_as_ubyte(exposure.equalize_hist(pixels))
        if kind == "clahe":
            return util.img_as_ubyte(exposure.equalize_adapthist(pixels))
        if kind == "stretch":
            return exposure.rescale_intensity(pixels, in_range=tuple(np.percentile(pixels,
                                                                                   (2, 98))))
        if kind == "gamma":
            return exposure.adjust_gamma(pixels, KIND_ARGS["gamma"]["gamma"])
        if kind == "log":
            return exposure.adjust_log(pixels)
        if kind == "sigmoid":
            return exposure.adjust_sigmoid(pixels)
        if kind == "match":
            return exposure.match_histograms(pixels, io.imread(reference_path), channel_axis=-1)
    raise ValueError(f"unknown kind {kind!r}")


class DiskStore:
    """The worker's store over local files: an input key's last part names a file in `folders`."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = folders

    def connect(self) -> None:
        return None

    def open(self, key: str, max_bytes: int) -> DiskFile:
        from worker_src import wire

        name = key.rsplit("/", 1)[-1]
        file = DiskFile(next(f / name for f in self.folders if (f / name).exists()))
        if file.size > max_bytes:  # as S3Store refuses it, before a byte is read
            raise wire.JobError(wire.TOO_LARGE, f"{key} is over {max_bytes} bytes")
        return file


def bench_executor(path: Path, reference_path: Path | None = None) -> Any:
    """The worker's executor, its work horse forked (as a worker does at start, before any
    job): it loads every kind's modules, before any clock starts."""
    from worker_src.executor import Executor

    folders = [path.parent] + ([reference_path.parent] if reference_path else [])
    executor = Executor(store=DiskStore(folders), identity="bench")
    executor.start()
    return executor


def run_kind(kind: str, path: Path, reference_path: Path | None, executor: Any = None):
    """The kind's function as the executor calls it (the job sent to its work horse); its Output."""
    from worker_src import contract, wire

    executor = executor or bench_executor(path, reference_path)
    spec = executor.find_kind(kind)
    job_id = wire.new_job_id()
    files = {spec.main_input: path, **({"reference": reference_path} if reference_path else {})}
    args = {**KIND_ARGS[kind], **{n: contract.input_key(job_id, p.name) for n, p in files.items()}}
    job = wire.Job(job_id=job_id, kind=kind, args=args, reply_to=None, submitted_at=time.time())
    return executor.perform(job, spec).output


def run_method(method: str, path: Path, kind: str = "equalize",
               reference_path: Path | None = None) -> float:
    """Do one method's work on one file in this process; return its wall time in seconds."""
    if method == "a":
        from PIL import Image
        from skimage import io

        fmt = Image.open(path).format
        start = time.perf_counter()
        out = skimage_result(kind, io.imread(path), reference_path)
        buffer = io_bytes()
        Image.fromarray(out).save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        return time.perf_counter() - start
    if method == "b":
        # What the kinds import, imported before the clock starts, as (a)'s scikit-image is.
        executor = bench_executor(path, reference_path)

        start = time.perf_counter()
        run_kind(kind, path, reference_path, executor)
        return time.perf_counter() - start
    if method == "c":
        from PIL import Image, JpegImagePlugin

        start = time.perf_counter()
        if reference_path is not None:
            Image.open(io_bytes(reference_path.read_bytes())).load()
        image = Image.open(io_bytes(path.read_bytes()))
        image.load()
        params = {}
        if image.format == "JPEG":
            params = {"qtables": image.quantization,
                      "subsampling": JpegImagePlugin.get_sampling(image)}
        image.save(io_bytes(), image.format, **params)
        return time.perf_counter() - start
    raise ValueError(f"unknown method {method!r}")


def io_bytes(data: bytes = b"") -> io.BytesIO:
    return io.BytesIO(data)


def max_difference(path: Path, kind: str = "equalize",
                   reference_path: Path | None = None) -> int:
    """max |a - b| between scikit-image's pixels and ours, before encoding.

    Ours are the kind's output for a PNG copy of the input (the same pixels, encoded without
    loss), decoded again.
    """
    import numpy as np
    from PIL import Image
    from skimage import io

    expected = skimage_result(kind, io.imread(path), reference_path)
    with tempfile.TemporaryDirectory(prefix="wqw-bench-diff-") as tmp:
        lossless = Path(tmp) / f"{path.stem}.png"
        with Image.open(path) as image:
            image.save(lossless, "PNG")
        output = run_kind(kind, lossless, reference_path)
    ours = np.asarray(Image.open(io_bytes(output.data)))
    return int(np.abs(ours.astype(np.int16) - expected).max())


def child(*args: str) -> dict:
    """Run this file with --child ARGS in a fresh process; its last JSON line."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.image", "--child", *args],
        check=True, capture_output=True, text=True, cwd=ROOT,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure_once(method: str, path: Path, kind: str = "equalize",
                 reference_path: Path | None = None) -> tuple[float, int]:
    """Run one method in a fresh process: (wall seconds of the work, peak RSS in bytes)."""
    report = child(method, kind, str(path), str(reference_path or ""))
    return report["seconds"], report["maxrss_kib"] * 1024


def child_main(method: str, kind: str, path: Path, reference_path: Path | None) -> None:
    if method == "diff":
        print(json.dumps({"max_diff": max_difference(path, kind, reference_path)}))
        return
    seconds = run_method(method, path, kind, reference_path)
    print(json.dumps({"seconds": seconds, "maxrss_kib": peak_rss_kib()}))


def peak_rss_kib() -> int:
    """The peak RSS in KiB of this process and of its work horses, whichever is larger.

    Linux's ru_maxrss survives exec: a child started by a big parent reports at
    least the parent's size. VmHWM is the peak of this process's own memory; a work
    horse, forked, counts the pages it shares with this process too.
    """
    own = own_peak_kib() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def measure(path: Path, runs: int, kind: str = "equalize",
            reference_path: Path | None = None) -> dict[str, tuple[float, float]]:
    """Median (seconds, peak bytes) per method, runs interleaved a, b, c, a, b, c, ..."""
    samples: dict[str, list[tuple[float, int]]] = {m: [] for m in METHODS}
    for _ in range(runs):
        for method in METHODS:
            samples[method].append(measure_once(method, path, kind, reference_path))
    return {m: (statistics.median(s for s, _ in samples[m]),
                statistics.median(r for _, r in samples[m])) for m in METHODS}


def diff_in_child(path: Path, kind: str = "equalize", reference_path: Path | None = None) -> int:
    return child("diff", kind, str(path), str(reference_path or ""))["max_diff"]


def cells(result: dict[str, tuple[float, float]], diff: int | str) -> list[str]:
    (ta, ma), (tb, mb), (tc, mc) = result["a"], result["b"], result["c"]
    mb_ = 1e6
    return [f"{ta:.2f} s / {ma / mb_:.0f} MB", f"{tb:.3f} s / {mb / mb_:.0f} MB",
            f"{tc:.3f} s / {mc / mb_:.0f} MB",
            f"{ta / tb:.1f}x", f"{ma / mb:.1f}x", f"{tb / tc:.2f}x", str(diff)]


def format_row(case: Case, size: int, result: dict[str, tuple[float, float]],
               diff: int | str) -> str:
    return "| " + " | ".join([case.label, f"{size / 1e6:.1f}", *cells(result, diff)]) + " |"


COLUMNS = ("(a) scikit-image: time / peak RSS | (b) ours | (c) floor: decode+encode "
           "| a/b time | a/b memory | b/c time | max abs diff a vs b |")
HEADER = (f"| image | file MB | {COLUMNS}\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
KINDS_HEADER = (f"| kind | {COLUMNS}\n"
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="two sizes and 1 MP kinds, fewer runs: a smoke run")
    parser.add_argument("--runs", type=int, help="runs per method and image (default 5 for the "
                                                 "sizes, 3 for the kinds; 3 and 2 quick)")
    parser.add_argument("--only", choices=("sizes", "kinds", "thumbnail", "pipeline"),
                        help="print one table only")
    parser.add_argument("--no-stack", action="store_true",
                        help="the pipeline table without the local stack's comparison")
    parser.add_argument("--kinds", help="comma-separated kinds for the second table (default all)")
    parser.add_argument("--no-diff", action="store_true", help="skip the max |diff| check")
    parser.add_argument("--child", nargs=4, metavar=("METHOD", "KIND", "PATH", "REFERENCE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        method, kind, path, reference = args.child
        child_main(method, kind, Path(path), Path(reference) if reference else None)
        return 0

    import PIL
    from PIL import features

    workdir = Path(tempfile.mkdtemp(prefix="bench-image-"))
    started = time.perf_counter()
    try:
        print(f"Python {platform.python_version()}, Pillow {PIL.__version__} "
              f"(libjpeg-turbo {features.version('libjpeg_turbo')}), {os.cpu_count()} CPUs; "
              f"median of fresh processes per cell; MB = 10^6 bytes\n")
        if args.only in (None, "sizes"):
            sizes_table(workdir, args)
        if args.only in (None, "kinds"):
            kinds_table(workdir, args)
        if args.only in (None, "thumbnail", "pipeline"):
            everyday_tables(workdir, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n(total {time.perf_counter() - started:.0f} s; command: "
          f"python -m bench.image{' --quick' if args.quick else ''})")
    return 0


def sizes_table(workdir: Path, args: argparse.Namespace) -> None:
    runs = args.runs or (3 if args.quick else 5)
    print(f"equalize by image size ({runs} runs):\n")
    print(HEADER, flush=True)
    for case in QUICK_CASES if args.quick else FULL_CASES:
        path = make_image(workdir / case.filename, case)
        result = measure(path, runs)
        diff = "-" if args.no_diff else diff_in_child(path)
        print(format_row(case, path.stat().st_size, result, diff), flush=True)
        path.unlink()


def kinds_table(workdir: Path, args: argparse.Namespace) -> None:
    case = QUICK_KINDS_CASE if args.quick else KINDS_CASE
    runs = args.runs or (2 if args.quick else 3)
    kinds = args.kinds.split(",") if args.kinds else list(KIND_ARGS)
    path = make_image(workdir / case.filename, case)
    reference = make_image(workdir / f"reference-{case.filename}", case, seed=1)
    print(f"\nEvery image kind on a {case.label} ({path.stat().st_size / 1e6:.1f} MB; "
          f"arguments {KIND_ARGS}, else the defaults; {runs} runs):\n")
    print(KINDS_HEADER, flush=True)
    for kind in kinds:
        ref = reference if kind == "match" else None
        result = measure(path, runs, kind, ref)
        diff = "-" if args.no_diff else diff_in_child(path, kind, ref)
        print("| " + " | ".join([kind, *cells(result, diff)]) + " |", flush=True)


def everyday_tables(workdir: Path, args: argparse.Namespace) -> None:
    """The thumbnail beside libvips and Pillow, the pipeline beside its steps (image_steps)."""
    from bench import image_steps

    runs = args.runs or (2 if args.quick else 5)
    megapixels = 1 if args.quick else 12
    path = image_steps.make_photo(workdir / f"photo-{megapixels}mp.jpg", megapixels)
    image_steps.make_photo(workdir / "warm-up.jpg", 0.01)
    if args.only in (None, "thumbnail"):
        image_steps.thumbnail_table(path, runs)
    if args.only in (None, "pipeline"):
        image_steps.pipeline_table(path, runs, 0 if args.no_stack else (1 if args.quick else 3))


if __name__ == "__main__":
    sys.exit(main())
