"""Helpers for the image kinds' tests: running a kind, references, test images."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from hypothesis import strategies as st
from PIL import Image

from worker_src import registry
from worker_src.contract import MAX_PIXELS
from worker_src.jobs import equalize
from worker_src.registry import Kind, Limits, Output
from worker_src.store import MemoryFile


def limits(**overrides: Any) -> Limits:
    values = {"max_input_bytes": 50_000_000, "max_pixels": 10_000_000}
    return registry.Limits(**{**values, **overrides})


def run_kind(kind: Kind, args: Mapping[str, Any], files: Mapping[str, MemoryFile],
             job_limits: Limits | None = None) -> Output:
    """What the executor does: check the arguments (file ones by name), then run."""
    checked = kind.check_args({**args, **{name: f.name for name, f in files.items()}})
    checked = {name: value for name, value in checked.items() if name not in kind.file_args()}
    return kind.run(registry.JobContext(checked, files, job_limits or limits()))


def equalize_image(data: bytes, *, max_pixels: int | None = None) -> bytes:
    """The equalize kind's output for encoded image bytes, run as the worker runs it."""
    file = MemoryFile("in.img", data)
    return run_kind(equalize.KIND, {}, {"image": file},
                    limits(max_pixels=max_pixels or MAX_PIXELS)).data


def equalize_pixels(im: Image.Image, *, in_place: bool = False) -> Image.Image:
    """Equalize's tables applied to a decoded 8-bit image (L, LA, RGB, RGBA or P)."""
    from worker_src.jobs._tables import apply_tables, colour_histograms, full_tables

    histograms = colour_histograms(im)
    tables = full_tables(equalize.equalization_lut(histograms.sum(axis=0)), len(histograms))
    return apply_tables(im, tables, in_place=in_place)


def encoded(image: Image.Image, fmt: str = "PNG", **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_file(pixels: np.ndarray, mode: str, name: str = "in.png") -> MemoryFile:
    return MemoryFile(name, encoded(image_of(pixels, mode)))


def image_of(pixels: np.ndarray, mode: str) -> Image.Image:
    return Image.fromarray(pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1
                           else pixels, mode)


def decoded(output: Output) -> Image.Image:
    image = Image.open(io.BytesIO(output.data))
    image.load()
    return image


def colour_of(pixels: np.ndarray, mode: str) -> np.ndarray:
    """The colour channels as scikit-image would get them: (h, w) for L/LA, (h, w, 3) else."""
    if mode in ("L", "LA"):
        return pixels if pixels.ndim == 2 else pixels[..., 0]
    return pixels[..., :3]


def expected(pixels: np.ndarray, mode: str,
             function: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`function` (scikit-image) on the colour channels; alpha (LA, RGBA) unchanged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # exp overflow in adjust_sigmoid
        warnings.simplefilter("ignore", UserWarning)  # equalize_hist: "might be a color image"
        result = function(colour_of(pixels, mode))
    if mode == "LA":
        return np.stack([result, pixels[..., 1]], axis=-1)
    if mode == "RGBA":
        return np.concatenate([result, pixels[..., 3:]], axis=-1)
    return result


def histogram_of(pixels: np.ndarray, mode: str) -> list[int]:
    return np.bincount(colour_of(pixels, mode).ravel(), minlength=256).tolist()


@st.composite
def images(draw: st.DrawFn, modes: tuple[str, ...] = ("L", "LA", "RGB", "RGBA"),
           max_side: int = 24) -> tuple[np.ndarray, str]:
    """A small image: its mode, size and value range drawn; noise within that range."""
    mode = draw(st.sampled_from(modes))
    width, height = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    low = draw(st.integers(0, 255))
    high = draw(st.integers(low, 255))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    pixels = rng.integers(low, high + 1, (height, width, len(mode)), dtype=np.uint8)
    if len(mode) > 1 and draw(st.booleans()):  # alpha anywhere in 0..255
        pixels[..., -1] = rng.integers(0, 256, (height, width), dtype=np.uint8)
    return (pixels[..., 0] if len(mode) == 1 else pixels), mode


def photo(mode: str, size: tuple[int, int] = (96, 64), seed: int = 0) -> Image.Image:
    """A small low-contrast photo-like image: a gradient plus noise; alpha is a ramp."""
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 80 + 60 * (x / width) + 30 * np.sin(y / 7.0)
    colours = 1 if mode in ("L", "LA") else 3
    channels = [base + 10 * c + rng.normal(0, 6, base.shape) for c in range(colours)]
    if mode in ("LA", "RGBA"):
        channels.append((x * 255) // max(1, width - 1))
    pixels = np.stack(channels, axis=-1).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels, mode)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def crafted_png(width: int, height: int, *, depth: int = 8, colour_type: int = 2,
                rows: bytes | None = None) -> bytes:
    """A PNG written by hand; without `rows` it is a header only: no pixel data at all."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0))
    data = png_chunk(b"IDAT", zlib.compress(rows)) if rows is not None else b""
    return b"\x89PNG\r\n\x1a\n" + header + data + png_chunk(b"IEND", b"")
