"""Windowed image readers that hand out tiles as the model saw its training images (BGR uint8).

Rasters (TIFF, GeoTIFF, JPEG2000, ...) are read window by window with rasterio, so an image of any
size never sits whole in memory; plain pictures (PNG, JPEG, BMP) are decoded once with OpenCV. One
or two bands become grey BGR, three or more take the first three as RGB. 8-bit values pass as they
are; 16-bit and float rasters are stretched linearly between percentiles measured once on a reduced
read of the whole image (no-data left out), so that every tile gets the same mapping.
Whole-image reduced reads (the stretch, the overview, the counting area) go strip by strip, so memory
stays bounded and one unreadable block costs one strip, not the run.
"""
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import cv2
import numpy as np
from loguru import logger

from yolox.crater_catalog.geo import GeoReference
from yolox.crater_catalog.picture_size import check_picture_size
from yolox.data.errors import DataError, DataFileNotFoundError
from yolox.data.image_files.intensity import STRETCH_PERCENTILES, IntensityScale
from yolox.utils.user_errors import UserError, one_line

__all__ = ["IntensityScale", "ImageSource", "OpenCVSource", "RasterioSource", "open_source",
           "open_georeferenced_raster", "RASTER_EXT", "PICTURE_EXT", "ReducedRead", "UnreadableImage"]

RASTER_EXT = (".tif", ".tiff", ".jp2", ".img", ".vrt")
PICTURE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
STATS_SIDE = 1024        # longest side of the reduced read that measures the stretch
GEO_HINT = "pip install -e \".[geo]\""
STRIP_ROWS = 2048        # source rows per strip of a whole-image reduced read (bounded memory, local errors)
GDAL_CACHE_MB = 128      # GDAL block cache while a raster is open
FALLBACK_PIECE = 256     # side (source pixels) of the pieces an unreadable strip is read again in


class UnreadableImage(UserError):
    """An image that cannot be decoded at all."""


@dataclass
class ReducedRead:
    """The whole image reduced: native-dtype pixels, where they hold data, source windows that failed."""

    pixels: Optional[np.ndarray]
    valid: np.ndarray
    failed: List[Tuple[int, int, int, int]]


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
    rgb_order: bool = False

    def read_window(self, x0: int, y0: int, w: int, h: int, out_w: int, out_h: int, nearest: bool = False
                    ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Window [x0, x0+w) x [y0, y0+h) resampled to (out_h, out_w): native-dtype HxWxB pixels and where
        they hold data (HxW bool; None: everywhere). `nearest` samples instead of averaging."""
        raise NotImplementedError

    def read_tile(self, x0: int, y0: int, w: int, h: int, out_w: Optional[int] = None,
                  out_h: Optional[int] = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """The window as the model's input (HxWx3 BGR uint8, no-data set to the letterbox grey) and its
        valid-data mask (None: all valid)."""
        from yolox.data.data_augment import PAD_VALUE

        raw, valid = self.read_window(x0, y0, w, h, out_w or w, out_h or h)
        bgr = _to_bgr(self.scale.to_uint8(raw), self.rgb_order)
        if valid is not None:
            bgr[~valid] = PAD_VALUE
        return bgr, valid

    def read_bgr(self, x0: int, y0: int, w: int, h: int, out_w: Optional[int] = None,
                 out_h: Optional[int] = None) -> np.ndarray:
        """The window as the model's input: HxWx3 BGR uint8, no-data set to the letterbox grey."""
        return self.read_tile(x0, y0, w, h, out_w, out_h)[0]

    def reduction_for(self, max_side: int) -> float:
        """Factor (<= 1) that brings the longest side to at most `max_side`."""
        return min(1.0, max_side / max(self.width, self.height))

    def reduced_shape(self, max_side: int) -> Tuple[int, int]:
        """(width, height) of the whole image reduced to at most `max_side`."""
        factor = self.reduction_for(max_side)
        return max(1, round(self.width * factor)), max(1, round(self.height * factor))

    def read_reduced(self, max_side: int, nearest: bool = False) -> ReducedRead:
        """The whole image reduced to at most `max_side`, read in strips of about STRIP_ROWS source rows; a
        strip that cannot be read is read again in pieces of FALLBACK_PIECE pixels, and a piece that still
        fails is logged (naming its window) and marked as no data."""
        out_w, out_h = self.reduced_shape(max_side)
        target = ReducedRead(None, np.ones((out_h, out_w), bool), [])
        rows_per_strip = max(1, out_h * STRIP_ROWS // self.height)
        for top in range(0, out_h, rows_per_strip):
            self._read_part(target, 0, top, out_w, min(out_h, top + rows_per_strip), nearest, split=True)
        if target.pixels is None:
            raise UnreadableImage(f"{self.path}: no part of the image can be read; check the file "
                                  "(gdalinfo -checksum) or convert it again")
        return target

    def _read_part(self, target: ReducedRead, left: int, top: int, right: int, bottom: int, nearest: bool,
                   split: bool) -> None:
        """Output rows [top, bottom) x columns [left, right) of a reduced read into `target`."""
        out_h, out_w = target.valid.shape
        x0, x1 = round(left * self.width / out_w), round(right * self.width / out_w)
        y0, y1 = round(top * self.height / out_h), round(bottom * self.height / out_h)
        try:
            raw, valid = self.read_window(x0, y0, x1 - x0, y1 - y0, right - left, bottom - top, nearest)
        except OSError as error:
            if split and max(x1 - x0, y1 - y0) > FALLBACK_PIECE:
                rows = max(1, FALLBACK_PIECE * out_h // self.height)
                cols = max(1, FALLBACK_PIECE * out_w // self.width)
                for piece_top in range(top, bottom, rows):
                    for piece_left in range(left, right, cols):
                        self._read_part(target, piece_left, piece_top, min(right, piece_left + cols),
                                        min(bottom, piece_top + rows), nearest, split=False)
                return
            logger.warning(f"{self.path}: pixels x {x0}..{x1}, y {y0}..{y1} unreadable ({one_line(error)[:160]}): "
                           "left out as no data")
            target.valid[top:bottom, left:right] = False
            target.failed.append((x0, y0, x1 - x0, y1 - y0))
            return
        if target.pixels is None:
            target.pixels = np.zeros((out_h, out_w) + raw.shape[2:], raw.dtype)
        target.pixels[top:bottom, left:right] = raw
        if valid is not None:
            target.valid[top:bottom, left:right] = valid

    def overview(self, max_side: int) -> Tuple[np.ndarray, float]:
        """(BGR uint8 image with the longest side <= max_side, its factor to full resolution)."""
        from yolox.data.data_augment import PAD_VALUE

        reduced = self.read_reduced(max_side)
        bgr = _to_bgr(self.scale.to_uint8(reduced.pixels), self.rgb_order)
        bgr[~reduced.valid] = PAD_VALUE
        return bgr, self.reduction_for(max_side)

    def _survey(self) -> None:
        """Measure the intensity stretch on one reduced read, no-data left out."""
        reduced = self.read_reduced(STATS_SIDE, nearest=True)
        self.scale = IntensityScale.measure(reduced.pixels, reduced.valid)
        if reduced.pixels.dtype != np.uint8:
            logger.info(f"{self.path}: {reduced.pixels.dtype} values {self.scale.low:g}..{self.scale.high:g} "
                        f"(percentiles {STRETCH_PERCENTILES} of the valid data) stretched to 0..255")

    def close(self) -> None:
        """Release the file (nothing to do for pictures decoded in memory)."""

    def __enter__(self) -> "ImageSource":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _values_valid(pixels: np.ndarray, nodata: Optional[float]) -> Optional[np.ndarray]:
    """Where pixels hold data by value: not the nodata value in every band, finite in float data."""
    pixels = pixels if pixels.ndim == 3 else pixels[:, :, None]
    valid = None
    if nodata is not None and not np.isnan(nodata):
        valid = ~np.all(pixels == nodata, axis=2)
    if pixels.dtype.kind == "f":
        finite = np.all(np.isfinite(pixels), axis=2)
        valid = finite if valid is None else valid & finite
    return valid


def _cv2_interpolation(width: int, out_width: int) -> int:
    """Area averaging to reduce; bilinear to enlarge, as the training letterbox enlarges (INTER_AREA would
    repeat pixels like nearest neighbour)."""
    return cv2.INTER_AREA if out_width < width else cv2.INTER_LINEAR


class OpenCVSource(ImageSource):
    """A plain picture decoded whole by OpenCV (8 or 16 bit, 1, 3 or 4 channels; alpha dropped)."""

    def __init__(self, path: str) -> None:
        check_picture_size(path)
        pixels = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if pixels is None:
            raise UnreadableImage(f"cannot read image {path}: missing file or a format OpenCV cannot decode "
                                  f"(for rasters install the geo extra: {GEO_HINT})")
        if pixels.ndim == 3 and pixels.shape[2] == 4:
            pixels = pixels[:, :, :3]
        self.path = path
        self.pixels = pixels
        self.height, self.width = pixels.shape[:2]
        self.rgb_order = False          # OpenCV decodes colour as BGR already
        self._survey()

    def read_window(self, x0: int, y0: int, w: int, h: int, out_w: int, out_h: int, nearest: bool = False
                    ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        window = self.pixels[y0:y0 + h, x0:x0 + w]
        if (out_w, out_h) != (window.shape[1], window.shape[0]):
            interpolation = cv2.INTER_NEAREST if nearest else _cv2_interpolation(w, out_w)
            window = cv2.resize(window, (out_w, out_h), interpolation=interpolation)
        return window, _values_valid(window, None)


class RasterioSource(ImageSource):
    """A raster read window by window through rasterio (GDAL); georeferenced when it has a CRS.

    Valid data: not the nodata value, finite (float data), and inside the raster's mask or alpha band
    when it has one.
    """

    def __init__(self, path: str) -> None:
        import rasterio
        from rasterio.enums import MaskFlags

        # GDAL's block cache defaults to 5% of the machine's memory; a fixed size keeps a run's memory the same
        # on any machine and any raster (a row of tiles needs a few block rows)
        self._env = rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)
        self._env.__enter__()
        try:
            self.dataset = rasterio.open(path)
        except Exception:
            self._env.__exit__(None, None, None)
            raise
        self.path = path
        self.width, self.height = self.dataset.width, self.dataset.height
        self.bands = (1, 2, 3) if self.dataset.count >= 3 else (1,)
        self.rgb_order = True
        self.nodata = self.dataset.nodata
        flags = self.dataset.mask_flag_enums[0]
        self.mask_band = MaskFlags.per_dataset in flags or MaskFlags.alpha in flags
        self.geo = GeoReference.from_dataset(self.dataset) if self.dataset.crs is not None else None
        self._survey()

    def read_window(self, x0: int, y0: int, w: int, h: int, out_w: int, out_h: int, nearest: bool = False
                    ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        from rasterio.enums import Resampling
        from rasterio.windows import Window

        if nearest or (out_w, out_h) == (w, h):
            resampling = Resampling.nearest
        else:
            resampling = Resampling.average if out_w < w else Resampling.bilinear
        window = Window(x0, y0, w, h)
        data = self.dataset.read(self.bands, window=window, out_shape=(len(self.bands), out_h, out_w),
                                 resampling=resampling)
        pixels = np.moveaxis(data, 0, -1)
        valid = _values_valid(pixels, self.nodata)
        if self.mask_band:
            inside = self.dataset.read_masks(1, window=window, out_shape=(out_h, out_w),
                                             resampling=Resampling.nearest) > 0
            valid = inside if valid is None else valid & inside
        return pixels, valid

    def close(self) -> None:
        self.dataset.close()
        self._env.__exit__(None, None, None)


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


def open_georeferenced_raster(path: str) -> RasterioSource:
    """The raster as a windowed source with a georeference, or a one-line error."""
    if not os.path.isfile(path):
        raise DataFileNotFoundError(f"raster {path} not found: check the path")
    source = RasterioSource(path)
    if source.geo is None:
        source.close()
        raise DataError(f"raster {path} has no coordinate reference system, so catalogue longitudes and "
                        "latitudes cannot be placed on it: use the georeferenced product (GeoTIFF, or a .tif "
                        "with its .aux.xml/.prj) or assign its CRS with gdal_edit.py -a_srs")
    return source
