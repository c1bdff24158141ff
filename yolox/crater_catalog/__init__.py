"""Crater catalogues and geometry: a crater database -> training tiles, whole orbital images -> a catalogue
(windowed reading, tiled detection, seam-aware merge, writers), and catalogues compared.

    from yolox.crater_catalog import detect_craters, compare_catalogues
    detect_craters("mosaic.tif", "exps/crater/yolox_nano_crater.py", "best_ckpt.pth", "out/")

Modules, each one concept:
- catalogue_reader: read_catalogue, the one reader of crater catalogues (databases by their own column names,
  or any CSV by named columns) into a CraterTable
- geo: GeoReference, the raster's projection both ways (pixels, map, lon/lat), projected rims, a local plane
- catalog_tiles, tile_split, tile_labels: a database and a georeferenced mosaic -> COCO training tiles
- sources, picture_size, tiling, chunks, parts, detect, merge, footprint, writers, pipeline: whole-image detection
- compare: matching a detected catalogue with a reference, in pixels or on the body
"""
from yolox.crater_catalog.catalogue_reader import read_catalogue
from yolox.crater_catalog.compare import compare_catalogues
from yolox.crater_catalog.pipeline import catalogue_image, detect_craters, merge_parts

__all__ = ["detect_craters", "catalogue_image", "merge_parts", "compare_catalogues", "read_catalogue"]
