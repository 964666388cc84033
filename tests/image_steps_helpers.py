"""Helpers for the everyday image kinds' tests: images of every mode with an EXIF orientation,
real-looking photos, running a kind with its arguments read as the CLI reads them."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageOps

from tests.exposure_helpers import decoded, encoded, limits
from worker_src import registry
from worker_src.registry import Output
from worker_src.store import MemoryFile

MODES = ("L", "LA", "RGB", "RGBA", "P")
ORIENTATIONS = tuple(range(1, 9))


def picture(mode: str, size: tuple[int, int] = (45, 30), seed: int = 0) -> Image.Image:
    """A small image of `mode`: smooth colours, noise, an alpha ramp; P has a transparent index."""
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([40 + 150 * x / width, 30 + 180 * y / height, 120 + 60 * np.sin(x / 5.0)],
                   axis=-1) + rng.normal(0, 12, (height, width, 3))
    im = Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB")
    if mode == "P":
        im = im.quantize(64, dither=Image.Dither.NONE)
        im.info["transparency"] = 3
        return im
    alpha = Image.fromarray((255 * x / max(1, width - 1)).astype(np.uint8), "L")
    if mode in ("L", "LA"):
        im = im.convert("L")
    if mode in ("LA", "RGBA"):
        im.putalpha(alpha)
    return im


def exif_with(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "wqw test camera"  # Make: a tag that must survive
    return exif.tobytes()


def png_file(mode: str, orientation: int = 1, size: tuple[int, int] = (45, 30),
             name: str = "in.png") -> MemoryFile:
    im = picture(mode, size)
    params: dict[str, Any] = {"exif": exif_with(orientation)}
    if "transparency" in im.info:
        params["transparency"] = im.info["transparency"]
    return MemoryFile(name, encoded(im, "PNG", **params))


def jpeg_file(image: Image.Image, orientation: int = 1, name: str = "in.jpg",
              quality: int = 90) -> MemoryFile:
    return MemoryFile(name, encoded(image, "JPEG", quality=quality, exif=exif_with(orientation)))


def opened(file: MemoryFile) -> Image.Image:
    im = Image.open(file.open())
    im.load()
    return im


def upright(file: MemoryFile) -> Image.Image:
    """The reference orient: Pillow's ImageOps.exif_transpose of the decoded input."""
    return ImageOps.exif_transpose(opened(file))


def real_looking(seed: int, size: tuple[int, int]) -> Image.Image:
    """A photo (scikit-image's sample photos) scaled to `size` with sensor-like noise."""
    from skimage import data

    source = [data.astronaut, data.coffee, data.chelsea, data.rocket][seed % 4]()
    im = Image.fromarray(source).resize(size, Image.Resampling.BICUBIC)
    rng = np.random.default_rng(seed)
    noisy = np.asarray(im, dtype=np.float64) + rng.normal(0, 5, (size[1], size[0], 1))
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8), "RGB")


def psnr(a: Image.Image, b: Image.Image) -> float:
    difference = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mse = float((difference ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def run(kind_name: str, files: dict[str, MemoryFile], **texts: str) -> Output:
    """Run a kind on `files` with arguments given as command-line text (-a NAME=VALUE)."""
    kind = registry.get_kind(kind_name)
    args = {name: kind.arg(name).parse(text) for name, text in texts.items()}
    checked = kind.check_args({**args, **{name: f.name for name, f in files.items()}})
    plain = {name: value for name, value in checked.items() if name not in kind.file_args()}
    return kind.run(registry.JobContext(plain, files, limits()))


def pixels_of(output: Output) -> np.ndarray:
    return np.asarray(decoded(output))


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return a.mode == b.mode and a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))
