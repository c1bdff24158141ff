"""The generated mosaics the crater-catalogue tests run on."""
from yolox.synthetic.mosaic import DISC_VALUE, MosaicConfig, place_mosaic_craters, \
    render_block, render_mosaic, write_mosaic

__all__ = ["DISC_VALUE", "MosaicConfig", "place_mosaic_craters", "render_block", "render_mosaic", "write_mosaic"]
