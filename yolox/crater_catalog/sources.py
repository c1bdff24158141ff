"""Windowed image readers that hand out tiles as the model saw its training images (BGR uint8).

Rasters (TIFF, GeoTIFF, JPEG2000, ...) are read window by window with rasterio, so an image of any
size never sits whole in memory; plain pictures (PNG, JPEG, BMP) are decoded once with OpenCV. One
or two bands become grey BGR, three or more take the first three as RGB. 8-bit values pass as they
are; 16-bit and float rasters are stretched linearly between percentiles measured once on a reduced
read of the whole image, so that every tile gets the same mapping.
"""
import os
from typing import Optional, Tuple

import cv2
import numpy as np
from loguru import logger

from yolox.crater_catalog.geo import GeoReference
from yolox.data.image_files.intensity import STRETCH_PERCENTILES, IntensityScale

__all__ = ["IntensityScale", "ImageSource", "OpenCVSource", "RasterioSource", "open_source", "RASTER_EXT",
           "PICTURE_EXT"]

RASTER_EXT = (".tif", ".tiff", ".jp2", ".img", ".vrt")
PICTURE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
STATS_SIDE = 1024        # longest side of the reduced read that measures the stretch
GEO_HINT = "pip install -e \".[geo]\""


def _to_bgr(pixels: np.ndarray, rgb_order: bool) -> np.ndarray:
    """HxW or HxWxB uint8 -> HxWx3 BGR: grey repeated, first three bands kept (RGB swapped when asked)."""
    if pixels.ndim == 2 or pixels.shape[2] < 3:
        grey = pixels if pixels.ndim == 2 else pixels[:, :, 0]
        return np.repeat(grey[:, :, None], 3, axis=2)
    colour = pixels[:, :, :3]
    return np.ascontiguousarray(colour[:, :, ::-1] if rgb_order else colour)


class ImageSource:
    """One image: size, optional georeference, BGR windows at any reduction, a reduced overview."""

    path: str
    width: int
    height: int
    geo: Optional[GeoReference] = None
    scale: IntensityScale
    valid_fraction: float = 1.0     # share of pixels holding data (no-data excluded)
    rgb_order: bool = False

    def read_raw(self, x0: int, y0: int, w: int, h: int, out_w: int, out_h: int) -> np.ndarray:
        """Window [x0, x0+w) x [y0, y0+h) resampled to (out_h, out_w), native dtype, HxWxB."""
        raise NotImplementedError

    def valid_mask(self, pixels: np.ndarray) -> Optional[np.ndarray]:
        """True where raw pixels hold data (None: all of them)."""
        return None

    def read_bgr(self, x0: int, y0: int, w: int, h: int, out_w: Optional[int] = None,
                 out_h: Optional[int] = None) -> np.ndarray:
        """The window as the model's input: HxWx3 BGR uint8, no-data set to the letterbox grey."""
        from yolox.data.data_augment import PAD_VALUE

        raw = self.read_raw(x0, y0, w, h, out_w or w, out_h or h)
        bgr = _to_bgr(self.scale.to_uint8(raw), self.rgb_order)
        valid = self.valid_mask(raw)
        if valid is not None:
            bgr[~valid] = PAD_VALUE
        return bgr

    def reduction_for(self, max_side: int) -> float:
        """Factor (<= 1) that brings the longest side to at most `max_side`."""
        return min(1.0, max_side / max(self.width, self.height))

    def overview(self, max_side: int) -> Tuple[np.ndarray, float]:
        """(BGR uint8 image with the longest side <= max_side, its factor to full resolution)."""
        factor = self.reduction_for(max_side)
        out_w, out_h = max(1, round(self.width * factor)), max(1, round(self.height * factor))
        return self.read_bgr(0, 0, self.width, self.height, out_w, out_h), factor

    def _stats_shape(self) -> Tuple[int, int]:
        factor = self.reduction_for(STATS_SIDE)
        return max(1, round(self.width * factor)), max(1, round(self.height * factor))

    def _survey(self) -> None:
        """Measure the intensity stretch and the share of pixels holding data on one reduced read."""
        raw = self.read_raw(0, 0, self.width, self.height, *self._stats_shape())
        valid = self.valid_mask(raw)
        self.scale = IntensityScale.measure(raw, valid)
        self.valid_fraction = 1.0 if valid is None else float(valid.mean())
        if raw.dtype != np.uint8:
            logger.info(f"{self.path}: {raw.dtype} values {self.scale.low:g}..{self.scale.high:g} "
                        f"(percentiles {STRETCH_PERCENTILES}) stretched to 0..255")

    def close(self) -> None:
        """Release the file (nothing to do for pictures decoded in memory)."""

    def __enter__(self) -> "ImageSource":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _cv2_interpolation(width: int, out_width: int) -> int:
    """Area averaging to reduce; bilinear to enlarge, as the training letterbox enlarges (INTER_AREA would
    repeat pixels like nearest neighbour)."""
    return cv2.INTER_AREA if out_width < width else cv2.INTER_LINEAR


class OpenCVSource(ImageSource):
    """A plain picture decoded whole by OpenCV (8 or 16 bit, 1, 3 or 4 channels; alpha dropped)."""

    def __init__(self, path: str) -> None:
        pixels = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if pixels is None:
            raise ValueError(f"cannot read image {path}: missing file or a format OpenCV cannot decode "
                             f"(for rasters install the geo extra: {GEO_HINT})")
        if pixels.ndim == 3 and pixels.shape[2] == 4:
            pixels = pixels[:, :, :3]
        self.path = path
        self.pixels = pixels
        self.height, self.width = pixels.shape[:2]
        self.rgb_order = False          # OpenCV decodes colour as BGR already
        self._survey()

    def read_raw(self, x0: int, y0: int, w: int, h: int, out_w: int, out_h: int) -> np.ndarray:
        window = self.pixels[y0:y0 + h, x0:x0 + w]
        if (out_w, out_h) != (window.shape[1], window.shape[0]):
            window = cv2.resize(window, (out_w, out_h), interpolation=_cv2_interpolation(w, out_w))
        return window


class RasterioSource(ImageSource):
    """A raster read window by window through rasterio (GDAL); georeferenced when it has a CRS."""

    def __init__(self, path: str) -> None:
        import rasterio

        self.dataset = rasterio.open(path)
        self.path = path
        self.width, self.height = self.dataset.width, self.dataset.height
        self.bands = (1, 2, 3) if self.dataset.count >= 3 else (1,)
        self.rgb_order = True
        self.nodata = self.dataset.nodata
        self.geo = GeoReference.from_dataset(self.dataset) if self.dataset.crs is not None else None
        self._survey()

    def read_raw(self, x0: int, y0: int, w: int, h: int, out_w: int, out_h: int) -> np.ndarray:
        from rasterio.enums import Resampling
        from rasterio.windows import Window

        if (out_w, out_h) == (w, h):
            resampling = Resampling.nearest
        else:
            resampling = Resampling.average if out_w < w else Resampling.bilinear
        data = self.dataset.read(self.bands, window=Window(x0, y0, w, h), out_shape=(len(self.bands), out_h, out_w),
                                 resampling=resampling)
        return np.moveaxis(data, 0, -1)

    def valid_mask(self, pixels: np.ndarray) -> Optional[np.ndarray]:
        if self.nodata is None:
            return None
        return ~np.all(pixels == self.nodata, axis=2)

    def close(self) -> None:
        self.dataset.close()


def _rasterio_available() -> bool:
    try:
        import rasterio  # noqa: F401 - only whether it imports
    except ImportError:
        return False
    return True


def open_source(path: str) -> ImageSource:
    """The reader for `path`: rasterio for rasters when installed, OpenCV otherwise (with a one-line hint)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {path} not found: check the path")
    ext = os.path.splitext(path)[1].lower()
    if ext in PICTURE_EXT:
        return OpenCVSource(path)
    if _rasterio_available():
        return RasterioSource(path)
    logger.warning(f"{path}: rasterio is not installed, so it is read whole with OpenCV and without map "
                   f"coordinates; for windowed reading and map/lon-lat columns: {GEO_HINT}")
    return OpenCVSource(path)
