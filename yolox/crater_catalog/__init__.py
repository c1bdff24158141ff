"""Crater catalogues from whole orbital images: windowed reading, tiled detection, seam-aware merge, writers.

    from yolox.crater_catalog import detect_craters, compare_catalogues
    detect_craters("mosaic.tif", "exps/crater/yolox_nano_crater.py", "best_ckpt.pth", "out/")
"""
from yolox.crater_catalog.compare import compare_catalogues, read_catalogue
from yolox.crater_catalog.pipeline import catalogue_image, detect_craters, merge_parts

__all__ = ["detect_craters", "catalogue_image", "merge_parts", "compare_catalogues", "read_catalogue"]
