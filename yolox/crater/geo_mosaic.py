"""Small georeferenced crater mosaics (GeoTIFF, Mars sphere) and their crater list in lon/lat/diameter_km.

Craters are placed by the synthetic mosaic's rule, then drawn on the body: a pixel belongs to a crater
when the geodesic distance from the crater's centre to the pixel's own longitude and latitude is under
the rim radius. So an equirectangular mosaic away from the equator shows craters wider than tall, and a
polar stereographic one shows them as the projection does, which is what the tile maker's projected
rims must reproduce. Pixels south of `nodata_below_lat` hold no data (value 0, the GeoTIFF's nodata).
Needs rasterio and pyproj (the geo extra).
"""
import csv
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from yolox.crater.synthetic import hillshade
from yolox.crater.synthetic_mosaic import (DISC_BACKGROUND, DISC_VALUE, MosaicConfig, crater_params, iter_blocks,
                                           place_mosaic_craters, plane_waves, wave_sum)

__all__ = ["MARS_RADIUS_M", "PROJECTIONS", "GeoMosaicSpec", "GeoMosaic", "write_geo_mosaic", "MosaicConfig"]

MARS_RADIUS_M = 3396190.0
PROJECTIONS = {
    "equirectangular": f"+proj=eqc +lat_ts=0 +lat_0=0 +lon_0=0 +x_0=0 +y_0=0 +R={MARS_RADIUS_M:.0f} +units=m +no_defs",
    "polar": f"+proj=stere +lat_0=90 +lat_ts=90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R={MARS_RADIUS_M:.0f} +units=m "
             "+no_defs",
}
NODATA = 0
REACH = 2.5     # pixels searched around a crater, in rim radii: more than any stretch of these projections


@dataclass(frozen=True)
class GeoMosaicSpec:
    """Where on Mars the mosaic lies and how it is projected."""

    projection: str = "equirectangular"     # a key of PROJECTIONS
    pixel_size_m: float = 100.0
    centre_lon: float = 20.0
    centre_lat: float = 45.0
    nodata_below_lat: Optional[float] = None


@dataclass(frozen=True)
class GeoMosaic:
    """What was written: the CRS (PROJ string), the affine transform and the craters."""

    crs: str
    transform: object           # affine.Affine
    craters: np.ndarray         # [k, 3] lon (-180..180), lat, diameter_km
    pixels: np.ndarray          # [k, 3] centre x, y (px) and rim radius (px) as placed


def _transformers(crs: str):
    """(map -> lon/lat, lon/lat -> map, the body's Geod) of `crs`; imported lazily to keep pyproj optional."""
    from pyproj import CRS, Transformer

    projected = CRS.from_string(crs)
    return (Transformer.from_crs(projected, projected.geodetic_crs, always_xy=True),
            Transformer.from_crs(projected.geodetic_crs, projected, always_xy=True), projected.get_geod())


def _transform(spec: GeoMosaicSpec, cfg: MosaicConfig, to_map):
    from rasterio.transform import from_origin

    x_c, y_c = to_map.transform(spec.centre_lon, spec.centre_lat)
    size = spec.pixel_size_m
    return from_origin(x_c - cfg.width / 2 * size, y_c + cfg.height / 2 * size, size, size)


def _lonlat_grid(transform, to_lonlat, x0: int, y0: int, w: int, h: int) -> Tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude of the centres of pixels [y0, y0+h) x [x0, x0+w)."""
    cols, rows = np.meshgrid(np.arange(x0, x0 + w) + 0.5, np.arange(y0, y0 + h) + 0.5)
    x_map = transform.a * cols + transform.b * rows + transform.c
    y_map = transform.d * cols + transform.e * rows + transform.f
    lon, lat = to_lonlat.transform(x_map, y_map)
    return np.asarray(lon), np.asarray(lat)


def _crater_table(cfg: MosaicConfig, spec: GeoMosaicSpec, transform, to_lonlat) -> Tuple[np.ndarray, np.ndarray]:
    """([k, 3] lon, lat, diameter_km; [k, 3] placed pixels) of the craters whose rims lie in data."""
    placed = place_mosaic_craters(cfg)
    x_map = transform.a * placed[:, 0] + transform.b * placed[:, 1] + transform.c
    y_map = transform.d * placed[:, 0] + transform.e * placed[:, 1] + transform.f
    lon, lat = (np.asarray(v) for v in to_lonlat.transform(x_map, y_map))
    diameter_m = 2 * placed[:, 2] * spec.pixel_size_m
    keep = np.ones(len(placed), bool)
    if spec.nodata_below_lat is not None:
        keep = lat - np.degrees(diameter_m / 2 / MARS_RADIUS_M) >= spec.nodata_below_lat
    return np.stack([lon, lat, diameter_m / 1000.0], axis=1)[keep], placed[keep]


def _rho(geod, crater: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Geodesic distance of each pixel from the crater's centre, in rim radii."""
    _, _, distance = geod.inv(np.full(lon.size, crater[0]), np.full(lon.size, crater[1]), lon.ravel(), lat.ravel())
    return np.asarray(distance).reshape(lon.shape) / (crater[2] * 500.0)


def _crater_relief(rho: np.ndarray, depth: float, rim: float) -> np.ndarray:
    """Height of a parabolic bowl with a raised rim at rim-radius distance `rho` (the synthetic renderer's
    crater shape, here as a function of the distance measured on the body)."""
    bowl = np.where(rho < 1.0, depth * (rho ** 2 - 1.0), 0.0)
    return bowl + rim * np.exp(-((rho - 1.0) / 0.18) ** 2)


def _render(cfg: MosaicConfig, table: np.ndarray, pixels: np.ndarray, transform, to_lonlat, geod,
            block: Tuple[int, int, int, int]) -> np.ndarray:
    """Float pixels of one block (discs or hill-shaded bowls), before the no-data mask."""
    x0, y0, w, h = block
    pad = 0 if cfg.style == "discs" else 2      # gradient context for the hill-shading
    lon, lat = _lonlat_grid(transform, to_lonlat, x0 - pad, y0 - pad, w + 2 * pad, h + 2 * pad)
    reach = REACH * pixels[:, 2] + 2
    near = ((pixels[:, 0] + reach > x0 - pad) & (pixels[:, 0] - reach < x0 + w + pad)
            & (pixels[:, 1] + reach > y0 - pad) & (pixels[:, 1] - reach < y0 + h + pad))
    params = crater_params(cfg, len(table))
    if cfg.style == "discs":
        image = np.full(lon.shape, DISC_BACKGROUND, np.float32)
    else:
        xs = np.arange(x0 - pad, x0 + w + pad, dtype=np.float64)
        ys = np.arange(y0 - pad, y0 + h + pad, dtype=np.float64)
        terrain_rng = np.random.default_rng([cfg.seed, 3])
        height = cfg.terrain_relief * wave_sum(plane_waves(terrain_rng, 12, (40.0, 400.0)), xs, ys)
        albedo = 120.0 + 2.0 * wave_sum(plane_waves(terrain_rng, 6, (200.0, 2000.0)), xs, ys) / 4.0
    for crater, (cx, cy, r), (depth, rim) in zip(table[near], pixels[near], params[near]):
        cols = slice(max(0, int(cx - REACH * r) - (x0 - pad)), max(0, int(cx + REACH * r) + 2 - (x0 - pad)))
        rows = slice(max(0, int(cy - REACH * r) - (y0 - pad)), max(0, int(cy + REACH * r) + 2 - (y0 - pad)))
        rho = _rho(geod, crater, lon[rows, cols], lat[rows, cols])
        if cfg.style == "discs":
            image[rows, cols][rho <= 1.0] = DISC_VALUE
        else:
            height[rows, cols] += _crater_relief(rho, depth * r, rim * depth * r).astype(np.float32)
    if cfg.style == "discs":
        return image
    azimuth = 2 * np.pi * np.random.default_rng([cfg.seed, 5]).random()
    image = hillshade(height, azimuth, albedo)[pad:pad + h, pad:pad + w]
    return image + np.random.default_rng([cfg.seed, 13, x0, y0]).normal(0.0, cfg.noise_sigma, image.shape)


def write_geo_mosaic(tif_path: str, csv_path: str, cfg: MosaicConfig, spec: GeoMosaicSpec = GeoMosaicSpec(),
                     lon_360: bool = False) -> GeoMosaic:
    """Write the GeoTIFF and its crater list (lon, lat, diameter_km; longitudes 0..360 with `lon_360`)."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.windows import Window

    if spec.projection not in PROJECTIONS:
        raise ValueError(f"projection {spec.projection!r}: use one of {', '.join(PROJECTIONS)}")
    crs = PROJECTIONS[spec.projection]
    to_lonlat, to_map, geod = _transformers(crs)
    transform = _transform(spec, cfg, to_map)
    table, pixels = _crater_table(cfg, spec, transform, to_lonlat)
    profile = dict(driver="GTiff", width=cfg.width, height=cfg.height, count=1, dtype="uint8", nodata=NODATA,
                   tiled=True, blockxsize=256, blockysize=256, compress="deflate", transform=transform,
                   crs=CRS.from_string(crs))
    with rasterio.open(tif_path, "w", **profile) as dst:
        for block in iter_blocks(cfg):
            image = np.clip(_render(cfg, table, pixels, transform, to_lonlat, geod, block), 1, 255).astype(np.uint8)
            if spec.nodata_below_lat is not None:
                _, lat = _lonlat_grid(transform, to_lonlat, *block)
                image[lat < spec.nodata_below_lat] = NODATA
            dst.write(image[None], window=Window(*block))
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["lon", "lat", "diameter_km"])
        lon = table[:, 0] % 360.0 if lon_360 else table[:, 0]
        writer.writerows(zip(lon.tolist(), table[:, 1].tolist(), table[:, 2].tolist()))
    return GeoMosaic(crs=crs, transform=transform, craters=table, pixels=pixels)
