"""The generated mosaics the crater-catalogue tests run on, imported here only (one line to change when the
generator moves)."""
from yolox.data.datasets.synthetic_crater_mosaic import DISC_VALUE, MosaicConfig, place_mosaic_craters, \
    render_block, render_mosaic, write_mosaic

__all__ = ["DISC_VALUE", "MosaicConfig", "place_mosaic_craters", "render_block", "render_mosaic", "write_mosaic"]
