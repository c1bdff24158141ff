"""Which COCOeval runs the bbox evaluation: faster-coco-eval's C++ one when installed, else pycocotools'.

Both give the same 12 stats (benchmarks/bench_cocoeval.py checks it); the C++ one is many times faster than
pycocotools on dense crater images, which is why the `eval` extra brings it
(docs/benchmarks.md#coco-evaluation-pycocotools-against-faster-coco-eval).
"""
from functools import lru_cache
from typing import Type

from loguru import logger
from pycocotools.cocoeval import COCOeval

from yolox.utils.optional import MissingExtra, require

__all__ = ["cocoeval_class"]


@lru_cache(maxsize=None)
def cocoeval_class() -> Type:
    """COCOeval_faster when faster-coco-eval imports, else pycocotools' COCOeval (hint logged once)."""
    try:
        return require("faster_coco_eval", "eval", "fast COCO evaluation", package="faster-coco-eval").COCOeval_faster
    except MissingExtra as missing:
        logger.info(f"COCO evaluation through pycocotools, slow on dense images: {missing}")
    return COCOeval
