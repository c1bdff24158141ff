#!/usr/bin/env python3
"""Compare a detected crater catalogue with a reference one: P/R/F1 overall and by diameter, diameter error.

    python tools/compare_catalogues.py out/craters.csv truth.csv --json out/comparison.json
    python tools/compare_catalogues.py out/craters.csv robbins_2012.csv --raster mosaic.tif

With --raster (the GeoTIFF the catalogue was detected on) the reference is a crater database in longitude
and latitude (lon, lat, diameter_km, or the column names make_crater_tiles accepts): its craters centred on
the raster are compared with the detected lon, lat and diameter_m on the body, in km.
"""
import argparse
import json

from yolox.utils.user_errors import CLIParser, run_cli


def make_parser() -> argparse.ArgumentParser:
    parser = CLIParser("compare_catalogues", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("detected", help="CSV of detected craters (craters.csv)")
    parser.add_argument("reference", help="CSV of reference craters (same column names)")
    parser.add_argument("--columns", default="x_px,y_px,diameter_px",
                        help="x, y and diameter column names (e.g. x_map,y_map,diameter_m)")
    parser.add_argument("--max-dist-frac", type=float, default=0.5,
                        help="centres closer than this fraction of the reference diameter can match")
    parser.add_argument("--max-diam-ratio", type=float, default=1.5,
                        help="diameters within this ratio (larger / smaller) can match")
    parser.add_argument("--bins", default=None, help="comma-separated diameter bin edges (default: doubling)")
    parser.add_argument("--raster", default=None,
                        help="the georeferenced image the catalogue was detected on: REFERENCE is then a crater "
                             "database in lon/lat, compared on the body in km (--columns is not used)")
    parser.add_argument("--json", default=None, help="also write the report here as JSON")
    return parser


def _read_pair(args: argparse.Namespace):
    """(detected, reference) craters: as given in --columns, or both on the body with --raster."""
    from yolox.crater_catalog.catalogue_reader import describe, read_catalogue
    from yolox.crater_catalog.compare import on_the_body

    if args.raster:
        detected, reference, counts = on_the_body(args.detected, args.reference, args.raster)
        print("compared on the body in km; " + ", ".join(f"{key}: {value}" for key, value in counts.items()))
        return detected, reference
    columns = tuple(part.strip() for part in args.columns.split(","))
    if len(columns) != 3:
        raise SystemExit(f"--columns {args.columns!r}: give three names, x,y,diameter")
    tables = [(path, read_catalogue(path, columns)) for path in (args.detected, args.reference)]
    for path, table in tables:
        if table.rows_skipped:
            print(describe(table, path))
    return tuple(table.craters() for _, table in tables)


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    from yolox.crater_catalog.compare import MatchRule, compare_catalogues, format_report

    detected, reference = _read_pair(args)
    bins = [float(edge) for edge in args.bins.split(",")] if args.bins else None
    report = compare_catalogues(detected, reference, MatchRule(args.max_dist_frac, args.max_diam_ratio), bins)
    report["files"] = {"detected": args.detected, "reference": args.reference, "raster": args.raster}
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)
        print(f"report written to {args.json}")
    return 0


def cli() -> None:
    """The `yolox-compare-catalogues` command: main() with user errors as one line and exit status 2."""
    run_cli(main)


if __name__ == "__main__":
    cli()
