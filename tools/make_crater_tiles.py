#!/usr/bin/env python3
r"""Cut a georeferenced mosaic into COCO training tiles labelled from a crater database (lon, lat, diameter).

    python tools/make_crater_tiles.py ctx_mosaic.tif robbins_2012.csv --out tiles/
    python tools/train_crater_device_aware.py --data-dir tiles/ -f exps/crater/yolox_nano_crater.py \
        -c weights/yolox_nano.pth

The catalogue's columns may carry the names of Robbins & Hynek 2012 (LAT_CIRC_IMG, LON_CIRC_IMG,
DIAM_CIRC_IMG), Robbins 2019, Head et al. 2010 (Lat, Lon, Diam_km) or plain lon, lat, diameter_km;
longitudes 0..360 or -180..180; or x, y, diameter_m in the raster's CRS. Train and validation tiles
come from separate regions of the mosaic, one overlap apart, so no crater is in both.
"""
import argparse

from yolox.utils.user_errors import CLIParser, run_cli


def make_parser() -> argparse.ArgumentParser:
    parser = CLIParser("make_crater_tiles", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("raster", help="georeferenced mosaic (GeoTIFF or any raster GDAL reads, with its CRS)")
    parser.add_argument("catalogue", help="crater database as CSV or tab-separated text with a header line")
    parser.add_argument("--out", required=True, help="COCO folder to write (annotations/, train2017/, val2017/)")
    parser.add_argument("--tile", type=int, default=512, help="tile side in pixels")
    parser.add_argument("--overlap", type=int, default=64, help="pixels shared by neighbouring tiles of one split, "
                                                               "and the gap between the splits")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of the mosaic for validation (0..0.5)")
    parser.add_argument("--min-diameter-px", type=float, default=4.0,
                        help="craters smaller than this in the raster's pixels get no label")
    parser.add_argument("--max-nodata", type=float, default=0.5,
                        help="tiles with a larger share of no-data pixels are skipped")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    if args.tile < 32 or not 0 <= args.overlap < args.tile:
        make_parser().error(f"--tile {args.tile} --overlap {args.overlap}: use a tile of 32 px or more and an "
                            "overlap smaller than the tile")
    try:
        import pyproj  # noqa: F401 - only whether the geo extra is there
        import rasterio  # noqa: F401
    except ImportError:
        make_parser().error("rasterio and pyproj are needed to place catalogue craters on a raster: "
                            "pip install -e \".[geo]\"")
    from yolox.crater_catalog.catalog_tiles import TileSettings, make_crater_tiles

    settings = TileSettings(tile=args.tile, overlap=args.overlap, val_fraction=args.val_fraction,
                            min_diameter_px=args.min_diameter_px, max_nodata=args.max_nodata)
    make_crater_tiles(args.raster, args.catalogue, args.out, settings)
    return 0


def cli() -> None:
    """The `yolox-make-crater-tiles` command: main() with user errors as one line and exit status 2."""
    run_cli(main)


if __name__ == "__main__":
    cli()
