"""Fallback until the worker sends histograms: 256-bin histograms of an image, with Pillow.

One histogram over the colour channels (alpha left out), as equalize_hist counts them.
Used only for results whose value has no `histogram`; remove when every worker sends it.
"""

from __future__ import annotations

import io

# Decoding for a histogram must not cost the web server more than this.
MAX_PIXELS = 50_000_000


def histogram(data: bytes) -> list[int] | None:
    """256 counts over the colour channels' 8-bit values; None if Pillow cannot say."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # the client alone needs no Pillow
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                return None
            if image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif image.mode == "1":
                image = image.convert("L")
            if image.mode not in ("L", "LA", "RGB", "RGBA"):
                return None
            bands = image.mode.replace("A", "")
            counts = image.histogram()  # 256 per band, in band order
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    return [sum(counts[band * 256 + value] for band in range(len(bands)))
            for value in range(256)]
