"""The one rule that brings images of more than 8 bits to the 8-bit pixels the model is trained on.

Rule: 8-bit images pass unchanged; 16-bit, 32-bit and float images are stretched linearly from the
0.1th to the 99.9th percentile of their finite values onto 0..255, clipped (NaN and inf become 0). Training
tiles measure the percentiles on the tile itself; whole-image detection (yolox.crater_catalog.sources)
measures them once on a reduced read of the whole mosaic (at most 1024 px a side), so that every tile
of the mosaic gets the same mapping. A tile of up to 1024 px therefore gets the same mapping either way.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["IntensityScale", "STRETCH_PERCENTILES", "stretch_to_uint8"]

STRETCH_PERCENTILES = (0.1, 99.9)


@dataclass(frozen=True)
class IntensityScale:
    """Linear map of raw values [low, high] to 0..255; (0, 255) on uint8 leaves the pixels unchanged."""

    low: float
    high: float

    @classmethod
    def measure(cls, sample: np.ndarray, valid: Optional[np.ndarray] = None) -> "IntensityScale":
        if sample.dtype == np.uint8:
            return cls(0.0, 255.0)
        values = sample[valid] if valid is not None else sample.reshape(-1)
        if values.size == 0:
            return cls(0.0, 255.0)
        low, high = np.percentile(values.astype(np.float64), STRETCH_PERCENTILES)
        return cls(float(low), float(max(high, low + 1e-6)))

    def to_uint8(self, pixels: np.ndarray) -> np.ndarray:
        if pixels.dtype == np.uint8 and (self.low, self.high) == (0.0, 255.0):
            return pixels
        scaled = (pixels.astype(np.float32) - self.low) * (255.0 / (self.high - self.low))
        # NaN (float no-data) becomes 0: the no-data mask, not the pixel value, says where there is no image
        return np.nan_to_num(np.clip(scaled + 0.5, 0, 255), nan=0.0).astype(np.uint8)


def stretch_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """`pixels` as uint8 by the rule above, measured on the image itself."""
    if pixels.dtype.kind != "f":
        return IntensityScale.measure(pixels).to_uint8(pixels)
    valid = np.isfinite(pixels)
    scale = IntensityScale.measure(pixels, valid)
    return scale.to_uint8(np.where(valid, pixels, scale.low))  # no value (NaN, inf) becomes 0
