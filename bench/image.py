"""Image benchmark: the original way vs our equalize job vs the codec floor.

    .venv/bin/python bench/image.py            # full run (about 5 minutes)
    .venv/bin/python bench/image.py --quick    # smoke run (well under a minute)

For each synthetic photo-like image (smooth gradients plus noise, low contrast;
generated here, never committed) and each method, every run is a fresh Python
process; the table shows the median of the runs of wall time (the work only:
interpreter start and imports excluded) and peak RSS (the child's own high-water
mark, VmHWM, imports included; ru_maxrss where there is no /proc):

  (a) the original way: skimage.io.imread -> exposure.equalize_hist ->
      util.img_as_ubyte -> save with Pillow in the same format;
  (b) the worker's job function, worker_src.jobs.equalize.equalize_image(bytes),
      decode and encode included;
  (c) the floor: Pillow decode + encode of the same file, no processing.

`max |diff|` compares (a)'s equalized pixels with (b)'s before encoding, in one
extra process per image.
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

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

METHODS = ("a", "b", "c")


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


def run_method(method: str, path: Path) -> float:
    """Do one method's work on one file in this process; return its wall time in seconds."""
    if method == "a":
        from PIL import Image
        from skimage import exposure, io, util

        fmt = Image.open(path).format
        start = time.perf_counter()
        pixels = io.imread(path)
        out = util.img_as_ubyte(exposure.equalize_hist(pixels))
        buffer = io_bytes()
        Image.fromarray(out).save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        return time.perf_counter() - start
    if method == "b":
        from worker_src.jobs.equalize import equalize_image

        start = time.perf_counter()
        equalize_image(path.read_bytes())
        return time.perf_counter() - start
    if method == "c":
        from PIL import Image, JpegImagePlugin

        start = time.perf_counter()
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


def max_difference(path: Path) -> int:
    """max |a - b| between skimage's equalized pixels and ours, before encoding."""
    import warnings

    import numpy as np
    from PIL import Image
    from skimage import exposure, io, util

    from worker_src.jobs.equalize import equalize_pixels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage: "This might be a color image"
        expected = util.img_as_ubyte(exposure.equalize_hist(io.imread(path)))
    with Image.open(path) as image:
        image.load()
        got = np.asarray(equalize_pixels(image, in_place=True))
    return int(np.abs(got.astype(np.int16) - expected).max())


def measure_once(method: str, path: Path) -> tuple[float, int]:
    """Run one method in a fresh process: (wall seconds of the work, peak RSS in bytes)."""
    output = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", method, str(path)],
        check=True, capture_output=True, text=True, cwd=ROOT,
    ).stdout
    report = json.loads(output.strip().splitlines()[-1])
    return report["seconds"], report["maxrss_kib"] * 1024


def child_main(method: str, path: Path) -> None:
    if method == "diff":
        print(json.dumps({"max_diff": max_difference(path)}))
        return
    seconds = run_method(method, path)
    print(json.dumps({"seconds": seconds, "maxrss_kib": peak_rss_kib()}))


def peak_rss_kib() -> int:
    """This process's peak RSS in KiB.

    Linux's ru_maxrss survives exec: a child started by a big parent reports at
    least the parent's size. VmHWM is the peak of this process's own memory.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_case(path: Path, runs: int) -> dict[str, tuple[float, float]]:
    """Median (seconds, peak bytes) per method, runs interleaved a, b, c, a, b, c, ..."""
    samples: dict[str, list[tuple[float, int]]] = {m: [] for m in METHODS}
    for _ in range(runs):
        for method in METHODS:
            samples[method].append(measure_once(method, path))
    return {m: (statistics.median(s for s, _ in samples[m]),
                statistics.median(r for _, r in samples[m])) for m in METHODS}


def diff_in_child(path: Path) -> int:
    output = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", "diff", str(path)],
        check=True, capture_output=True, text=True, cwd=ROOT,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])["max_diff"]


def format_row(case: Case, size: int, result: dict[str, tuple[float, float]],
               diff: int | str) -> str:
    (ta, ma), (tb, mb), (tc, mc) = result["a"], result["b"], result["c"]
    mb_ = 1e6
    cells = [case.label, f"{size / mb_:.1f}",
             f"{ta:.2f} s / {ma / mb_:.0f} MB", f"{tb:.3f} s / {mb / mb_:.0f} MB",
             f"{tc:.3f} s / {mc / mb_:.0f} MB",
             f"{ta / tb:.1f}x", f"{ma / mb:.1f}x", f"{tb / tc:.2f}x", str(diff)]
    return "| " + " | ".join(cells) + " |"


HEADER = ("| image | file MB | (a) original: time / peak RSS | (b) ours | (c) floor: decode+encode "
          "| a/b time | a/b memory | b/c time | max abs diff a vs b |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two sizes, 3 runs: a smoke run")
    parser.add_argument("--runs", type=int, help="runs per method and image (default 5; 3 quick)")
    parser.add_argument("--no-diff", action="store_true", help="skip the max |diff| check")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child[0], Path(args.child[1]))
        return 0

    import PIL
    from PIL import features

    cases = QUICK_CASES if args.quick else FULL_CASES
    runs = args.runs or (3 if args.quick else 5)
    workdir = Path(tempfile.mkdtemp(prefix="bench-image-"))
    started = time.perf_counter()
    try:
        print(f"Python {platform.python_version()}, Pillow {PIL.__version__} "
              f"(libjpeg-turbo {features.version('libjpeg_turbo')}), {os.cpu_count()} CPUs; "
              f"median of {runs} fresh processes per cell; MB = 10^6 bytes\n")
        print(HEADER, flush=True)
        for case in cases:
            path = make_image(workdir / case.filename, case)
            result = measure_case(path, runs)
            diff = "-" if args.no_diff else diff_in_child(path)
            print(format_row(case, path.stat().st_size, result, diff), flush=True)
            path.unlink()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n(total {time.perf_counter() - started:.0f} s; command: "
          f"python bench/image.py{' --quick' if args.quick else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
