"""Image (or folder of images) to crater catalogue files: the function behind tools/detect_craters.py."""
import json
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
from loguru import logger

from yolox.crater_catalog.detect import DetectionSettings, TileDetector, detect_source, largest_trained_crater_px, \
    overlap_for
from yolox.crater_catalog.sources import PICTURE_EXT, RASTER_EXT, open_source
from yolox.crater_catalog.writers import Catalogue, write_all

__all__ = ["detect_craters", "catalogue_image", "list_images", "build_detector", "peak_rss_bytes"]

DEFAULT_CONF = 0.3
MIB = 1 << 20


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (0 where the OS does not say)."""
    try:
        import resource
    except ImportError:          # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)   # macOS reports bytes, Linux KiB


def list_images(source: str) -> List[str]:
    """`source` itself, or the images in the folder `source` (sorted, not recursive)."""
    if os.path.isdir(source):
        found = sorted(os.path.join(source, name) for name in os.listdir(source)
                       if os.path.splitext(name)[1].lower() in PICTURE_EXT + RASTER_EXT)
        if not found:
            raise FileNotFoundError(f"no images in {source}: expected {', '.join(PICTURE_EXT + RASTER_EXT)} files")
        return found
    if not os.path.exists(source):
        raise FileNotFoundError(f"image {source} not found: check the path")
    return [source]


def catalogue_image(path: str, detector: Callable[[np.ndarray], List[np.ndarray]], settings: DetectionSettings,
                    out_dir: str, pixel_size_m: Optional[float] = None) -> Dict:
    """Detect on one image and write its catalogue files into `out_dir`; returns the run's figures."""
    started = time.perf_counter()
    with open_source(path) as source:
        geo_scale = source.geo.metres_per_pixel() if source.geo is not None else None
        craters, tiles = detect_source(source, detector, settings, progress_desc=os.path.basename(path))
        detect_s = time.perf_counter() - started
        overview, factor = source.overview(2048)
        catalogue = Catalogue(craters=craters, width=source.width, height=source.height, geo=source.geo,
                              metres_per_pixel=geo_scale or pixel_size_m, valid_fraction=source.valid_fraction)
        files = write_all(catalogue, overview, factor, out_dir, os.path.basename(path))
    megapixels = source.width * source.height / 1e6 * sum(s * s for s in settings.scales)
    figures = {
        "image": path, "width": source.width, "height": source.height, "georeferenced": source.geo is not None,
        "craters": len(craters), "tiles": tiles, "tile": settings.tile, "overlap": settings.overlap,
        "scales": list(settings.scales), "batch_size": settings.batch_size,
        "detect_s": round(detect_s, 2), "total_s": round(time.perf_counter() - started, 2),
        "tiles_per_s": round(tiles / detect_s, 2), "megapixels_per_s": round(megapixels / detect_s, 3),
        "peak_rss_mib": round(peak_rss_bytes() / MIB, 1), "files": files,
    }
    with open(os.path.join(out_dir, "run.json"), "w") as handle:
        json.dump(figures, handle, indent=1)
    logger.info(f"{path}: {figures['craters']} craters, {tiles} tiles in {detect_s:.1f}s "
                f"({figures['tiles_per_s']} tiles/s, {figures['megapixels_per_s']} Mpx/s), "
                f"peak resident memory {figures['peak_rss_mib']} MiB; wrote {', '.join(files.values())}")
    return figures


def build_detector(exp, ckpt: str, device: str = "auto", conf: float = DEFAULT_CONF, nms: Optional[float] = None,
                   fp16: bool = False, trust_ckpt: bool = False) -> TileDetector:
    """The exp's model with the checkpoint's weights (strict), on the device the device layer picks."""
    from yolox.utils.checkpoint import load_exp_model
    from yolox.utils.device import build_policy

    policy = build_policy(device, fp16=fp16)
    model = load_exp_model(exp, ckpt, trust_pickle=trust_ckpt)
    logger.info(f"model {exp.exp_name} from {ckpt} on {policy.device}")
    return TileDetector(model, policy, exp.num_classes, conf, exp.nmsthre if nms is None else nms, fp16=fp16)


def _image_out_dir(out_dir: str, path: str, several: bool) -> str:
    return os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0]) if several else out_dir


def detect_craters(source: str, exp: Union[str, object], ckpt: str, out_dir: str, *, device: str = "auto",
                   tile: Optional[int] = None, overlap: Optional[int] = None, scales: Sequence[float] = (1.0,),
                   batch_size: int = 8, conf: float = DEFAULT_CONF, nms: Optional[float] = None,
                   fp16: bool = False, pixel_size_m: Optional[float] = None, trust_ckpt: bool = False,
                   exp_opts: Sequence[str] = ()) -> List[Dict]:
    """Crater catalogues of an image or a folder of images (one sub-folder each); returns each run's figures.

    `exp` is an exp file or an Exp; tile defaults to its test size, overlap to what its largest training
    crater needs; `pixel_size_m` gives plain pictures a scale for craters.diam.
    """
    from yolox.exp import get_exp

    if isinstance(exp, str):
        exp = get_exp(exp, None)
    exp.merge(list(exp_opts))
    images = list_images(source)
    tile = tile or int(exp.test_size[0])
    if overlap is None:
        overlap = overlap_for(largest_trained_crater_px(exp), tile)
    settings = DetectionSettings(tile=tile, overlap=overlap, scales=tuple(scales), batch_size=batch_size)
    logger.info(f"tiles of {tile} px, overlap {overlap} px, scales {list(settings.scales)}, batch {batch_size}")
    detector = build_detector(exp, ckpt, device, conf, nms, fp16, trust_ckpt)
    return [catalogue_image(path, detector, settings, _image_out_dir(out_dir, path, len(images) > 1), pixel_size_m)
            for path in images]
