#!/usr/bin/env python3
r"""Detect craters on whole images (any size, GeoTIFF or plain picture) and write a crater catalogue.

    python tools/detect_craters.py mosaic.tif -f exps/crater/yolox_nano_crater.py -c best_ckpt.pth --out out/

writes out/craters.csv, craters.geojson, overview.png, craters.diam (craterstats), craters.scc (CraterTools,
georeferenced images) and run.json.

Resume: finished chunks of tiles are recorded in out/parts/; run the same command again after a stop or
a kill and it continues there (--restart starts over; a different image, model or tiling is refused).

Many processes, GPUs or hosts: give each its share with --shard I/N (I counts from 0) and its own --out,
then join them with --merge:

    # one host, 4 GPUs: one process per GPU
    for i in 0 1 2 3; do CUDA_VISIBLE_DEVICES=$i python tools/detect_craters.py mosaic.tif -f EXP -c CKPT \
        --out shards/$i --shard $i/4 & done; wait
    # a SLURM job array (#SBATCH --array=0-15), one task per shard
    python tools/detect_craters.py mosaic.tif -f EXP -c CKPT --out shards/$SLURM_ARRAY_TASK_ID \
        --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT
    # then, once all are done
    python tools/detect_craters.py --merge shards/* --out catalogue/

    # one GPU host: torchrun gives each process its rank as shard and its local rank's GPU
    torchrun --nproc_per_node 4 tools/detect_craters.py mosaic.tif -f EXP -c CKPT --out catalogue/
    python tools/detect_craters.py --merge catalogue/ --out catalogue/

A shard killed midway resumes like a single run (same command). The shards may also share one --out on
a shared file system; --merge then takes that one folder.
"""
import argparse

from yolox.cli.flags import add_device_args, policy_from_args
from yolox.utils.user_errors import CLIParser, run_cli


def make_parser() -> argparse.ArgumentParser:
    parser = CLIParser("detect_craters", description=__doc__.split("\n\n", 1)[1],
                       formatter_class=HelpFormatter)
    parser.add_argument("source", nargs="?", help="an image (PNG, JPEG, TIFF, GeoTIFF; 8/16 bit; 1 or 3 bands) "
                        "or a folder")
    parser.add_argument("-f", "--exp_file", help="experiment file the model was trained with")
    parser.add_argument("-c", "--ckpt", help="checkpoint (best_ckpt.pth)")
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per image for a folder)")
    parser.add_argument("--tile", type=int, default=None, help="tile side in pixels, a multiple of 32 "
                        "(default: the exp's test size)")
    parser.add_argument("--overlap", type=int, default=None, help="pixels shared by neighbouring tiles "
                        "(default: enough for the largest crater in the exp's training labels)")
    parser.add_argument("--scales", default="1", help="comma-separated scales, e.g. 1,0.5 for craters larger "
                        "than a tile, 2 for a model trained at twice the images' size (small craters)")
    parser.add_argument("-b", "--batch-size", type=int, default=8, help="tiles per forward pass")
    parser.add_argument("--conf", type=float, default=0.3, help="score threshold")
    parser.add_argument("--nms", type=float, default=None, help="NMS IoU threshold (default: the exp's)")
    parser.add_argument("--pixel-size", type=float, default=None,
                        help="metres per pixel for images without georeference (for km in craters.diam)")
    parser.add_argument("--chunk-tiles", type=int, default=64,
                        help="tiles per recorded chunk: the unit of resuming and of sharding")
    parser.add_argument("--restart", action="store_true",
                        help="forget the chunks recorded in --out/parts and start over")
    parser.add_argument("--shard", default=None,
                        help="run only share I of N of the chunks (I from 0), e.g. $SLURM_ARRAY_TASK_ID/"
                        "$SLURM_ARRAY_TASK_COUNT; join the shards with --merge (default: the whole image, or "
                        "under torchrun this process's rank of the world)")
    parser.add_argument("--merge", nargs="+", metavar="DIR", default=None,
                        help="write the catalogue from the chunk records of these shards' --out folders "
                        "(no detection; needs only --out)")
    parser.add_argument("--trust-ckpt", action="store_true",
                        help="allow checkpoints that need full unpickling (only for files you trust)")
    parser.add_argument("opts", nargs="*", help="KEY VALUE pairs to modify the exp")
    add_device_args(parser)
    parser.set_defaults(fp16=False)     # detection stays fp32 unless --fp16 asks
    return parser


def parse_scales(text: str):
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise SystemExit(f"--scales {text!r}: give comma-separated numbers, e.g. 1,0.5 or 2") from None


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown, the description's examples kept as written."""


def main(argv=None) -> int:
    parser = make_parser()
    args = parser.parse_intermixed_args(argv)
    from yolox.crater_catalog import detect_craters, merge_parts
    from yolox.crater_catalog.chunks import shard_for
    from yolox.crater_catalog.pipeline import launcher_local_rank

    try:
        if args.merge:
            merge_parts(args.merge, args.out, pixel_size_m=args.pixel_size)
            return 0
        if not (args.source and args.exp_file and args.ckpt):
            parser.error("give an image, -f EXP and -c CKPT (or --merge DIR... to join shards)")
        detect_craters(args.source, args.exp_file, args.ckpt, args.out, tile=args.tile, overlap=args.overlap,
                       scales=parse_scales(args.scales), batch_size=args.batch_size, conf=args.conf, nms=args.nms,
                       fp16=args.fp16, pixel_size_m=args.pixel_size, trust_ckpt=args.trust_ckpt,
                       exp_opts=args.opts, chunk_tiles=args.chunk_tiles, restart=args.restart,
                       shard=shard_for(args.shard), policy=policy_from_args(args, local_rank=launcher_local_rank()))
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(str(error)) from None
    return 0


def cli() -> None:
    """The `yolox-detect-craters` command: main() with user errors as one line and exit status 2."""
    run_cli(main)


if __name__ == "__main__":
    cli()
