"""CLAHE as skimage.exposure.equalize_adapthist computes it, strip by strip in bounded memory.

scikit-image works on whole-image arrays (float64 HSV, a padded 14-bit copy,
float32 blocks: several GB for 12 MP). Every one of its steps is either a
function of one pixel or a small global quantity (a min, a max, one histogram
per contextual region), so the same arithmetic can run a strip of rows at a time:

1. the intensity: the image itself if grayscale, else HSV's V = max(R, G, B); it
   goes through img_as_uint and a min-max rescale to 14 bits, then into `nbins`
   bins: for an 8-bit image that is one 256-entry table;
2. one histogram per contextual region (`kernel_size` tiles from the top-left
   corner; the last ones reach into the reflected border as np.pad's "reflect"),
   clipped and mapped by scikit-image's own clip_histogram and map_histogram;
3. each pixel: the four neighbouring regions' mappings, weighted bilinearly and
   summed in float32 in scikit-image's order, truncated to 16 bits;
4. a min-max rescale of those to [0, 1] (a table over the 14-bit values), then
   for colour hsv2rgb with the new V, and img_as_ubyte.

Steps 2 and 3 read the image as uint8 intensities (1 byte a pixel) and write
16-bit results (2 bytes a pixel); step 4 writes into the decoded image in place.
The result equals scikit-image's exactly.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from skimage import color, exposure, util
from skimage.exposure._adapthist import NR_OF_GRAY, clip_histogram, map_histogram

from ..registry import Progress

# Pixels per strip: the working set is about 100 bytes a pixel of the strip (colour).
STRIP_PIXELS = 65_536


def kernel_shape(size: tuple[int, int], kernel_size: list[int] | None) -> tuple[int, int]:
    """(rows, columns) of a contextual region, as equalize_adapthist reads kernel_size."""
    width, height = size
    if kernel_size is None:
        return max(height // 8, 1), max(width // 8, 1)
    if len(kernel_size) == 1:
        return kernel_size[0], kernel_size[0]
    return kernel_size[0], kernel_size[1]


def region_count(size: tuple[int, int], kernel: tuple[int, int]) -> int:
    """How many contextual regions (tiles) cover an image of `size` (width, height)."""
    width, height = size
    return math.ceil(height / kernel[0]) * math.ceil(width / kernel[1])


def clahe_in_place(im: Image.Image, kernel: tuple[int, int], clip_limit: float,
                   nbins: int, progress: Progress | None = None) -> Image.Image:
    """equalize_adapthist of a decoded L, LA, RGB or RGBA image, into `im`; alpha unchanged.

    `progress` hears the share of the final strips written (the maps before take little).
    """
    if im.mode not in ("L", "LA", "RGB", "RGBA"):
        raise ValueError(f"mode {im.mode} cannot go through CLAHE")
    colour = im.mode in ("RGB", "RGBA")
    intensity = _intensity(im, colour)
    bins = _bin_table(intensity, colour, nbins)
    rows, columns = (_Axis(im.height, kernel[0]), _Axis(im.width, kernel[1]))
    maps = _region_maps(intensity, bins, rows, columns, clip_limit, nbins)
    result = _interpolate(intensity, bins, maps, rows, columns, nbins)
    low, high = int(result.min()), int(result.max())
    value = exposure.rescale_intensity(np.arange(high + 1, dtype=np.float64),
                                       in_range=(float(low), float(high)))
    _write(im, result, value, colour, progress)
    return im


class _Axis:
    """One axis of the padded image: np.pad's reflected indices and the region grid."""

    def __init__(self, length: int, kernel: int) -> None:
        self.kernel = kernel
        self.start = kernel // 2
        end = (kernel - length % kernel) % kernel + math.ceil(kernel / 2)
        self.source = np.pad(np.arange(length), (self.start, end), mode="reflect")
        self.regions = len(self.source) // kernel - 1
        fraction = np.arange(kernel) / kernel
        self.fraction, self.inverse = fraction, 1 - fraction

    def of_pixels(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For image positions first..last-1: block index, and the two weights."""
        padded = np.arange(first, last) + self.start
        offset = padded % self.kernel
        return padded // self.kernel, self.inverse[offset], self.fraction[offset]


def _intensity(im: Image.Image, colour: bool) -> np.ndarray:
    """The 8-bit intensity scikit-image equalizes: L, or max(R, G, B) (HSV's V times 255)."""
    if not colour:
        return np.asarray(im.getchannel(0))
    out = np.empty((im.height, im.width), dtype=np.uint8)
    step = max(1, STRIP_PIXELS // max(1, im.width))
    for top in range(0, im.height, step):
        strip = np.asarray(im.crop((0, top, im.width, min(im.height, top + step))))
        np.maximum(np.maximum(strip[..., 0], strip[..., 1]), strip[..., 2],
                   out=out[top:top + step])
    return out


def _bin_table(intensity: np.ndarray, colour: bool, nbins: int) -> np.ndarray:
    """Each 8-bit intensity's histogram bin: img_as_uint, rescale to 14 bits, round, // bin size."""
    levels = np.arange(256, dtype=np.uint8)
    if colour:  # scikit-image passes HSV's V, a float in [0, 1]
        levels = color.rgb2hsv(np.repeat(levels, 3).reshape(256, 1, 3))[:, 0, 2]
    as_uint = util.img_as_uint(levels)
    present = np.flatnonzero(np.bincount(intensity.ravel(), minlength=256))
    in_range = (float(as_uint[present[0]]), float(as_uint[present[-1]]))
    scaled = np.round(exposure.rescale_intensity(as_uint, in_range=in_range,
                                                 out_range=(0, NR_OF_GRAY - 1)))
    scaled = scaled.astype(np.min_scalar_type(NR_OF_GRAY))
    return scaled // (1 + NR_OF_GRAY // nbins)


def _region_maps(intensity: np.ndarray, bins: np.ndarray, rows: _Axis, columns: _Axis,
                 clip_limit: float, nbins: int) -> np.ndarray:
    """Every region's clipped, cumulated mapping, edge-padded by one region (float64)."""
    histograms = np.zeros((rows.regions, columns.regions * nbins), dtype=np.int64)
    source_columns = columns.source[columns.start:columns.start + columns.regions
                                    * columns.kernel]
    offsets = np.repeat(np.arange(columns.regions) * nbins, columns.kernel)
    step = max(1, min(rows.kernel, STRIP_PIXELS // len(source_columns)))
    for region in range(rows.regions):
        first = rows.start + region * rows.kernel
        for top in range(first, first + rows.kernel, step):
            source_rows = rows.source[top:min(first + rows.kernel, top + step)]
            block = bins[intensity[np.ix_(source_rows, source_columns)]] + offsets
            histograms[region] += np.bincount(block.ravel(), minlength=len(histograms[region]))
    histograms = histograms.reshape(-1, nbins)
    pixels = rows.kernel * columns.kernel
    limit = int(np.clip(clip_limit * pixels, 1, None)) if clip_limit > 0 else pixels
    for histogram in histograms:
        clip_histogram(histogram, limit)
    maps = map_histogram(histograms, 0, NR_OF_GRAY - 1, pixels)
    maps = maps.reshape(rows.regions, columns.regions, nbins)
    return np.pad(maps, [[1, 1], [1, 1], [0, 0]], mode="edge").astype(np.float64)


def _interpolate(intensity: np.ndarray, bins: np.ndarray, maps: np.ndarray, rows: _Axis,
                 columns: _Axis, nbins: int) -> np.ndarray:
    """Each pixel's bilinear mix of its four regions' mappings, as scikit-image sums it."""
    height, width = intensity.shape
    flat = maps.reshape(-1)
    row_stride, column_stride = maps.shape[1] * nbins, nbins
    column_block, column_inverse, column_fraction = columns.of_pixels(0, width)
    column_base = column_block * column_stride
    result = np.empty((height, width), dtype=np.uint16)
    step = max(1, STRIP_PIXELS // max(1, width))
    for top in range(0, height, step):
        bottom = min(height, top + step)
        row_block, row_inverse, row_fraction = (a[:, None] for a in rows.of_pixels(top, bottom))
        base = row_block * row_stride + column_base + bins[intensity[top:bottom]]
        total = np.zeros(base.shape, dtype=np.float32)
        for corner, weight in (
                (0, column_inverse * row_inverse),
                (column_stride, column_fraction * row_inverse),
                (row_stride, column_inverse * row_fraction),
                (row_stride + column_stride, column_fraction * row_fraction)):
            total += (flat[base + corner] * weight).astype(np.float32)
        result[top:bottom] = total
    return result


def _write(im: Image.Image, result: np.ndarray, value: np.ndarray, colour: bool,
           progress: Progress | None = None) -> None:
    """The final rescale (and for colour, back from HSV) written into `im`, strip by strip."""
    grey = util.img_as_ubyte(value)
    step = max(1, STRIP_PIXELS // max(1, im.width))
    for top in range(0, im.height, step):
        box = (0, top, im.width, min(im.height, top + step))
        strip = np.array(im.crop(box))
        if colour:
            strip[..., :3] = util.img_as_ubyte(with_value(strip[..., :3],
                                                          value[result[top:top + step]]))
        elif strip.ndim == 3:
            strip[..., 0] = grey[result[top:top + step]]
        else:
            strip = grey[result[top:top + step]]
        im.paste(Image.fromarray(strip, im.mode), box)
        if progress is not None:
            progress(box[3] / im.height)


# img_as_float of each 8-bit value, as rgb2hsv reads uint8 input.
_UNIT = util.img_as_float(np.arange(256, dtype=np.uint8))
# hsv2rgb's (R, G, B) in each of the six hue sectors, as indices into (v, p, q, t).
_SECTOR_PICKS = np.array([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]],
                         dtype=np.intp)


def with_value(rgb: np.ndarray, value: np.ndarray) -> np.ndarray:
    """hsv2rgb(rgb2hsv(rgb) with V replaced by `value`), in scikit-image's float64 arithmetic.

    The same operations in the same order as skimage.color's rgb2hsv and hsv2rgb
    (so the same bits), without their boolean-mask assignments, axis reductions and
    18-array np.choose, which make them several times slower. The tests compare the two.
    """
    red8, green8, blue8 = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    top = np.maximum(np.maximum(red8, green8), blue8)
    bottom = np.minimum(np.minimum(red8, green8), blue8)
    v = _UNIT[top]
    delta = v - _UNIT[bottom]
    red, green, blue = _UNIT[red8], _UNIT[green8], _UNIT[blue8]
    flat = delta == 0.0
    blue_top, green_top = blue8 == top, green8 == top
    # rgb2hsv assigns the red, then the green, then the blue case: a later maximum wins.
    numerator = np.where(blue_top, red - green, np.where(green_top, blue - red, green - blue))
    with np.errstate(invalid="ignore", divide="ignore"):
        saturation = delta / v
        hue = numerator / delta
    hue += np.where(blue_top, 4.0, np.where(green_top, 2.0, 0.0))  # x + 0.0 is x
    saturation[flat] = 0.0
    hue = (hue / 6.0) % 1.0
    hue[flat] = 0.0
    sector = np.floor(hue * 6)
    f = hue * 6 - sector
    p = value * (1 - saturation)
    q = value * (1 - f * saturation)
    t = value * (1 - (1 - f) * saturation)
    sector = sector.astype(np.uint8) % 6
    # hsv2rgb's choice of (R, G, B) among (v, p, q, t) in each sector, as one gather.
    candidates = np.stack([value, p, q, t], axis=-1).reshape(-1)
    pick = _SECTOR_PICKS[sector] + (np.arange(sector.size) * 4).reshape(sector.shape + (1,))
    return candidates[pick]
