"""Generated crater data with known craters, so nothing needs a download (numpy and OpenCV; rasterio to write GeoTIFFs).

Modules: craters (hill-shaded crater fields as a COCO-layout training set), mosaic (large mosaics rendered block by
block, with their crater list, for whole-image detection).
"""
