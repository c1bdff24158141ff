#!/usr/bin/env python3
"""Detect craters on whole images (any size, GeoTIFF or plain picture) and write a crater catalogue.

    python tools/detect_craters.py mosaic.tif -f exps/crater/yolox_nano_crater.py -c best_ckpt.pth --out out/

writes out/craters.csv, craters.geojson, overview.png, craters.diam (craterstats) and run.json.
"""
import argparse

from yolox.utils.user_errors import CLIParser, run_cli


def make_parser() -> argparse.ArgumentParser:
    parser = CLIParser("detect_craters", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("source", help="an image (PNG, JPEG, TIFF, GeoTIFF; 8/16 bit; 1 or 3 bands) or a folder")
    parser.add_argument("-f", "--exp_file", required=True, help="experiment file the model was trained with")
    parser.add_argument("-c", "--ckpt", required=True, help="checkpoint (best_ckpt.pth)")
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per image for a folder)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--tile", type=int, default=None, help="tile side in pixels, a multiple of 32 "
                        "(default: the exp's test size)")
    parser.add_argument("--overlap", type=int, default=None, help="pixels shared by neighbouring tiles "
                        "(default: enough for the largest crater in the exp's training labels)")
    parser.add_argument("--scales", default="1", help="comma-separated scales, e.g. 1,0.5 for craters larger "
                        "than a tile, 2 for a model trained at twice the images' size (small craters)")
    parser.add_argument("-b", "--batch-size", type=int, default=8, help="tiles per forward pass")
    parser.add_argument("--conf", type=float, default=0.3, help="score threshold")
    parser.add_argument("--nms", type=float, default=None, help="NMS IoU threshold (default: the exp's)")
    parser.add_argument("--fp16", action="store_true", help="mixed precision where the device policy allows it")
    parser.add_argument("--pixel-size", type=float, default=None,
                        help="metres per pixel for images without georeference (for km in craters.diam)")
    parser.add_argument("--trust-ckpt", action="store_true",
                        help="allow checkpoints that need full unpickling (only for files you trust)")
    parser.add_argument("opts", nargs="*", help="KEY VALUE pairs to modify the exp")
    return parser


def parse_scales(text: str):
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise SystemExit(f"--scales {text!r}: give comma-separated numbers, e.g. 1,0.5 or 2") from None


def main(argv=None) -> int:
    args = make_parser().parse_intermixed_args(argv)
    from yolox.crater_catalog import detect_craters

    try:
        detect_craters(args.source, args.exp_file, args.ckpt, args.out, device=args.device, tile=args.tile,
                       overlap=args.overlap, scales=parse_scales(args.scales), batch_size=args.batch_size,
                       conf=args.conf, nms=args.nms, fp16=args.fp16, pixel_size_m=args.pixel_size,
                       trust_ckpt=args.trust_ckpt, exp_opts=args.opts)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(str(error)) from None
    return 0


def cli() -> None:
    """The `yolox-detect-craters` command: main() with user errors as one line and exit status 2."""
    run_cli(main)


if __name__ == "__main__":
    cli()
