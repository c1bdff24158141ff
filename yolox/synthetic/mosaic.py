"""Large synthetic crater mosaics with a known crater list, for testing whole-image detection.

The craters are placed over the whole mosaic (the placement rule of `yolox.synthetic.craters`, plus optional
craters larger than any detector tile) and the image is rendered block by block with the same bowls and
hill-shading as the training tiles, so craters cross block and tile edges seamlessly and memory stays at
one block. The terrain is a sum of plane waves evaluated at mosaic coordinates, continuous across blocks.
Style "discs" draws flat dark discs on a plain background instead: craters that a threshold finds exactly,
for testing the tiling and merging logic with a stand-in model.
"""
from dataclasses import dataclass
from typing import Iterator, List, Tuple

import numpy as np

from yolox.synthetic.craters import add_crater, hillshade

__all__ = ["MosaicConfig", "place_mosaic_craters", "render_block", "iter_blocks", "write_mosaic",
           "truth_rows"]

DISC_BACKGROUND, DISC_VALUE = 170.0, 60.0


@dataclass(frozen=True)
class MosaicConfig:
    """What a mosaic holds; radii are rim radii in pixels."""

    width: int
    height: int
    seed: int = 0
    min_radius: float = 5.0
    max_radius: float = 42.0
    craters_per_megapixel: float = 300.0
    big_craters: int = 0                          # extra craters with radii in big_radius
    big_radius: Tuple[float, float] = (150.0, 300.0)
    max_overlap: float = 0.5                      # centre distance must exceed this x (r1 + r2) + min_gap
    min_gap: float = 0.0
    terrain_relief: float = 0.5
    noise_sigma: float = 4.0
    style: str = "shaded"                          # "shaded" or "discs"
    block: int = 1024


def _fits(candidate: np.ndarray, kept: np.ndarray, cfg: MosaicConfig) -> bool:
    if len(kept) == 0:
        return True
    dist = np.hypot(kept[:, 0] - candidate[0], kept[:, 1] - candidate[1])
    return not np.any(dist < cfg.max_overlap * (kept[:, 2] + candidate[2]) + cfg.min_gap)


def place_mosaic_craters(cfg: MosaicConfig) -> np.ndarray:
    """Crater centres and radii [k, 3] (cx, cy, r), largest first; log-uniform radii as in the training tiles."""
    rng = np.random.default_rng([cfg.seed, 7])
    big = [np.array([rng.uniform(0, cfg.width), rng.uniform(0, cfg.height), rng.uniform(*cfg.big_radius)])
           for _ in range(cfg.big_craters)]
    kept_big: List[np.ndarray] = []
    for candidate in big:
        if _fits(candidate, np.asarray(kept_big).reshape(-1, 3), cfg):
            kept_big.append(candidate)
    big_table = np.asarray(kept_big, np.float64).reshape(-1, 3)
    wanted = int(cfg.craters_per_megapixel * cfg.width * cfg.height / 1e6)
    radii = np.sort(np.exp(rng.uniform(np.log(cfg.min_radius), np.log(cfg.max_radius), wanted)))[::-1]
    centres = rng.uniform((0, 0), (cfg.width, cfg.height), (wanted, 2))
    # a grid of cells one largest-reach wide: a conflict can only come from the 3 x 3 cells around
    cell = cfg.max_overlap * 2 * cfg.max_radius + cfg.min_gap + 1e-6
    grid = {}
    kept: List[Tuple[float, float, float]] = []
    for (cx, cy), r in zip(centres, radii):
        candidate = np.array([cx, cy, r])
        if not _fits(candidate, big_table, cfg):
            continue
        gx, gy = int(cx // cell), int(cy // cell)
        near = [kept[k] for dx in (-1, 0, 1) for dy in (-1, 0, 1) for k in grid.get((gx + dx, gy + dy), ())]
        if not _fits(candidate, np.asarray(near).reshape(-1, 3), cfg):
            continue
        grid.setdefault((gx, gy), []).append(len(kept))
        kept.append((cx, cy, r))
    return np.concatenate([big_table, np.asarray(kept, np.float64).reshape(-1, 3)])


def plane_waves(rng: np.random.Generator, count: int, wavelengths: Tuple[float, float]) -> np.ndarray:
    """[count, 4] rows (kx, ky, phase, amplitude): waves of random direction, amplitude ~ wavelength."""
    lengths = np.exp(rng.uniform(np.log(wavelengths[0]), np.log(wavelengths[1]), count))
    angles = rng.uniform(0, 2 * np.pi, count)
    k = 2 * np.pi / lengths
    return np.stack([k * np.cos(angles), k * np.sin(angles), rng.uniform(0, 2 * np.pi, count), lengths / 100.0], 1)


def wave_sum(waves: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sum of the waves on the grid of columns `xs` x rows `ys` (1-D), [len(ys), len(xs)] float32.

    sin(a + b) = sin a cos b + cos a sin b splits each wave into two outer products of 1-D vectors.
    """
    total = np.zeros((len(ys), len(xs)), np.float32)
    for kx, ky, phase, amplitude in waves:
        along_x, along_y = kx * xs, ky * ys + phase
        sin_x, cos_x = np.sin(along_x).astype(np.float32), np.cos(along_x).astype(np.float32)
        total += np.outer((amplitude * np.cos(along_y)).astype(np.float32), sin_x)
        total += np.outer((amplitude * np.sin(along_y)).astype(np.float32), cos_x)
    return total


def crater_params(cfg: MosaicConfig, count: int) -> np.ndarray:
    """Per crater (depth fraction, rim fraction), fixed by the seed."""
    rng = np.random.default_rng([cfg.seed, 11])
    depth = rng.uniform(0.25, 0.45, count)
    rim = np.where(rng.random(count) < 0.6, rng.uniform(0.0, 0.5, count), 0.0)
    return np.stack([depth, rim], 1)


def render_block(cfg: MosaicConfig, craters: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """Grey uint8 pixels of the mosaic window [y0, y0+h) x [x0, x0+w)."""
    if cfg.style == "discs":
        return _render_discs(cfg, craters, x0, y0, w, h)
    pad = 2                                             # gradient context beyond the window
    side = max(w, h) + 2 * pad                          # add_crater works on square arrays
    xs, ys = np.arange(x0 - pad, x0 - pad + side, dtype=np.float64), np.arange(y0 - pad, y0 - pad + side, dtype=np.float64)
    terrain_rng = np.random.default_rng([cfg.seed, 3])
    height = cfg.terrain_relief * wave_sum(plane_waves(terrain_rng, 12, (40.0, 400.0)), xs, ys)
    albedo = 120.0 + 2.0 * wave_sum(plane_waves(terrain_rng, 6, (200.0, 2000.0)), xs, ys) / 4.0
    params = crater_params(cfg, len(craters))
    reach = 1.6 * craters[:, 2] + 1
    inside = ((craters[:, 0] + reach > x0 - pad) & (craters[:, 0] - reach < x0 - pad + side)
              & (craters[:, 1] + reach > y0 - pad) & (craters[:, 1] - reach < y0 - pad + side))
    for (cx, cy, r), (depth, rim) in zip(craters[inside], params[inside]):
        add_crater(height, cx - (x0 - pad), cy - (y0 - pad), r, rim * depth * r, depth * r)
    azimuth = 2 * np.pi * np.random.default_rng([cfg.seed, 5]).random()
    image = hillshade(height, azimuth, albedo)[pad:pad + h, pad:pad + w]
    noise_rng = np.random.default_rng([cfg.seed, 13, x0, y0])
    image = image + noise_rng.normal(0.0, cfg.noise_sigma, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _render_discs(cfg: MosaicConfig, craters: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    image = np.full((h, w), DISC_BACKGROUND, np.float32)
    ys, xs = np.mgrid[y0:y0 + h, x0:x0 + w].astype(np.float32) + 0.5     # pixel centres
    for cx, cy, r in craters:
        if cx + r < x0 or cx - r > x0 + w or cy + r < y0 or cy - r > y0 + h:
            continue
        image[np.hypot(xs - cx, ys - cy) <= r] = DISC_VALUE
    return image.astype(np.uint8)


def iter_blocks(cfg: MosaicConfig) -> Iterator[Tuple[int, int, int, int]]:
    """(x0, y0, w, h) of the render blocks, row by row."""
    for y0 in range(0, cfg.height, cfg.block):
        for x0 in range(0, cfg.width, cfg.block):
            yield x0, y0, min(cfg.block, cfg.width - x0), min(cfg.block, cfg.height - y0)


def write_mosaic(path: str, cfg: MosaicConfig, transform=None, crs=None, progress: bool = True) -> np.ndarray:
    """Write the mosaic as a tiled GeoTIFF block by block (rasterio); returns its craters [k, 3]."""
    import rasterio

    from yolox.utils.progress import track

    craters = place_mosaic_craters(cfg)
    profile = dict(driver="GTiff", width=cfg.width, height=cfg.height, count=1, dtype="uint8", tiled=True,
                   blockxsize=256, blockysize=256, compress="deflate", BIGTIFF="IF_SAFER")
    if transform is not None:
        profile.update(transform=transform, crs=crs)
    blocks = list(iter_blocks(cfg))
    with rasterio.open(path, "w", **profile) as dst:
        for x0, y0, w, h in track(blocks, desc=f"render {path}", unit="block", bar=None if progress else False):
            window = rasterio.windows.Window(x0, y0, w, h)
            dst.write(render_block(cfg, craters, x0, y0, w, h)[None], window=window)
    return craters


def truth_rows(craters: np.ndarray) -> List[Tuple[float, float, float]]:
    """(x_px, y_px, diameter_px) of the craters, the columns a catalogue comparison reads."""
    return [(float(cx), float(cy), float(2 * r)) for cx, cy, r in craters]
