#!/usr/bin/env python3
"""Write a synthetic crater mosaic (tiled GeoTIFF, Mars equirectangular, 100 m/pixel) and its crater list.

    python tools/make_crater_mosaic.py --size 20000 --out mosaic.tif --truth truth.csv
"""
import argparse
import csv

from yolox.utils.user_errors import CLIParser, run_cli

MARS_EQC = "+proj=eqc +lat_ts=0 +lat_0=0 +lon_0=0 +x_0=0 +y_0=0 +R=3396190 +units=m +no_defs"


def make_parser() -> argparse.ArgumentParser:
    parser = CLIParser("make_crater_mosaic", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--size", type=int, default=4096, help="width and height in pixels")
    parser.add_argument("--out", required=True, help="GeoTIFF to write")
    parser.add_argument("--truth", required=True, help="CSV of the craters (x_px, y_px, diameter_px)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pixel-size", type=float, default=100.0, help="metres per pixel")
    parser.add_argument("--big-craters", type=int, default=0, help="craters of 300-600 px diameter to add")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from yolox.synthetic.mosaic import MosaicConfig, truth_rows, write_mosaic

    cfg = MosaicConfig(width=args.size, height=args.size, seed=args.seed, big_craters=args.big_craters)
    # the mosaic's top-left corner at 10 deg N, 20 deg E on Mars
    transform = from_origin(20 * 3396190 * 3.141592653589793 / 180, 10 * 3396190 * 3.141592653589793 / 180,
                            args.pixel_size, args.pixel_size)
    craters = write_mosaic(args.out, cfg, transform=transform, crs=CRS.from_string(MARS_EQC))
    with open(args.truth, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x_px", "y_px", "diameter_px"])
        writer.writerows(truth_rows(craters))
    print(f"{args.out}: {args.size} x {args.size} px, {len(craters)} craters listed in {args.truth}")
    return 0


def cli() -> None:
    """The `yolox-make-crater-mosaic` command: main() with user errors as one line and exit status 2."""
    run_cli(main)


if __name__ == "__main__":
    cli()
