"""Image (or folder of images) to crater catalogue files: the function behind tools/detect_craters.py."""
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from loguru import logger

from yolox.crater_catalog.chunks import Chunk, Shard
from yolox.crater_catalog.detect import DetectionSettings, TileDetector, combine_chunks, largest_trained_crater_px, \
    overlap_for, plan_source_chunks, run_chunks
from yolox.crater_catalog.footprint import counting_area
from yolox.crater_catalog.parts import MANIFEST, PARTS_DIR, ChunkResult, PartsStore, RunMismatch, atomic_write, \
    stores_in
from yolox.crater_catalog.sources import PICTURE_EXT, RASTER_EXT, ImageSource, open_source
from yolox.crater_catalog.writers import OVERVIEW_SIDE, Catalogue, write_all
from yolox.utils.user_errors import UserError

if TYPE_CHECKING:
    from yolox.utils.device import DevicePolicy

__all__ = ["detect_craters", "catalogue_image", "merge_parts", "write_catalogue", "list_images", "build_detector",
           "launcher_local_rank", "peak_rss_bytes", "run_manifest"]

DEFAULT_CONF = 0.3
MIB = 1 << 20
MANIFEST_FORMAT = 1


class IncompleteRun(UserError):
    """Chunks of the image are recorded nowhere among the folders given to merge."""


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


def run_manifest(path: str, width: int, height: int, settings: DetectionSettings, model: Dict) -> Dict:
    """What a run's chunk records belong to: a job with any of it different must not continue them."""
    return {"format": MANIFEST_FORMAT, "raster": os.path.abspath(path), "size": [width, height], "model": model,
            "tile": settings.tile, "overlap": settings.overlap, "scales": list(settings.ordered_scales()),
            "chunk_tiles": settings.chunk_tiles, "edge_margin": settings.edge_margin,
            "merge": [settings.merge_dist_frac, settings.merge_max_diam_ratio]}


def settings_from_manifest(manifest: Dict, batch_size: int = 8) -> DetectionSettings:
    return DetectionSettings(tile=manifest["tile"], overlap=manifest["overlap"], scales=tuple(manifest["scales"]),
                             batch_size=batch_size, edge_margin=manifest["edge_margin"],
                             merge_dist_frac=manifest["merge"][0], merge_max_diam_ratio=manifest["merge"][1],
                             chunk_tiles=manifest["chunk_tiles"])


def catalogue_image(path: str, detector: Callable[[np.ndarray], List[np.ndarray]], settings: DetectionSettings,
                    out_dir: str, pixel_size_m: Optional[float] = None, *, model: Optional[Dict] = None,
                    restart: bool = False, shard: Shard = Shard()) -> Dict:
    """Detect on one image, recording each finished chunk in `out_dir`/parts (a rerun continues there), and
    write its catalogue files once every chunk is recorded; returns the run's figures."""
    started = time.perf_counter()
    with open_source(path) as source:
        chunks = plan_source_chunks(source, settings)
        store = PartsStore.open(out_dir, run_manifest(path, source.width, source.height, settings, model or {}),
                                restart)
        done = store.done()
        todo = [c for c in chunks if shard.owns(c) and c.index not in done]
        mine = sum(shard.owns(c) for c in chunks)
        if mine > len(todo):
            logger.info(f"{path}: resuming from {store.folder}: {mine - len(todo)} of {mine} chunks already done")
        run_chunks(source, detector, settings, todo, store.finish, store.fail, progress_desc=os.path.basename(path))
        detect_s = time.perf_counter() - started
        missing = _missing(chunks, [store])
        if missing:
            logger.info(f"{path}: shard {shard} done; {len(missing)} of {len(chunks)} chunks are other shards'. "
                        f"Once all shards are done: python tools/detect_craters.py --merge <their --out folders> "
                        f"--out <catalogue folder>")
            return {"image": path, "complete": False, "shard": str(shard), "chunks": len(chunks),
                    "chunks_missing": len(missing), "detect_s": round(detect_s, 2)}
        return write_catalogue(source, [store], chunks, settings, out_dir, pixel_size_m,
                               {"detect_s": round(detect_s, 2), "started": started})


def _missing(chunks: Sequence[Chunk], stores: Sequence[PartsStore]) -> List[int]:
    """Chunks with neither a crater record nor a failure record in any of the stores."""
    recorded = set()
    for store in stores:
        recorded |= store.done() | set(store.failures())
    return [c.index for c in chunks if c.index not in recorded]


def _collect(chunks: Sequence[Chunk], stores: Sequence[PartsStore]) -> Tuple[List[ChunkResult], List[Dict]]:
    """Every chunk's record in chunk order, and the failure records of the chunks that have none."""
    owner = {index: store for store in stores for index in store.done()}
    failures = {index: record for store in stores for index, record in store.failures().items()}
    results = [owner[c.index].load(c.index) for c in chunks if c.index in owner]
    failed = [failures[c.index] for c in chunks if c.index not in owner]
    return results, failed


def write_catalogue(source: ImageSource, stores: Sequence[PartsStore], chunks: Sequence[Chunk],
                    settings: DetectionSettings, out_dir: str, pixel_size_m: Optional[float], timing: Dict) -> Dict:
    """The catalogue files of `source` from the chunk records in `stores`; returns the run's figures."""
    missing = _missing(chunks, stores)
    if missing:
        raise IncompleteRun(f"{len(missing)} of {len(chunks)} chunks of {source.path} are in none of "
                            f"{', '.join(s.folder for s in stores)} (first: {missing[:5]}): run the shards that "
                            "hold them to the end, then merge again")
    results, failed = _collect(chunks, stores)
    craters = combine_chunks(results, settings)
    geo_scale = source.geo.metres_per_pixel() if source.geo is not None else None
    excluded = [tuple(f["window"][k] for k in ("x0", "y0", "width", "height")) for f in failed]
    area = counting_area(source, geo_scale or pixel_size_m, excluded)
    overview, factor = source.overview(OVERVIEW_SIDE)
    catalogue = Catalogue(craters=craters, width=source.width, height=source.height, area=area, geo=source.geo,
                          metres_per_pixel=geo_scale or pixel_size_m)
    files = write_all(catalogue, overview, factor, out_dir, os.path.basename(source.path))
    detect_s = timing["detect_s"]
    tiles = sum(len(c.tiles) for c in chunks)
    figures = {
        "image": source.path, "complete": True, "width": source.width, "height": source.height,
        "georeferenced": source.geo is not None, "craters": len(craters),
        "counting_area": area.area, "area_unit": f"{area.unit}^2", "valid_share": round(area.valid_share, 6),
        "tiles": tiles, "tiles_run": sum(r.tiles_run for r in results),
        "tiles_nodata": sum(r.tiles_nodata for r in results), "chunks": len(chunks),
        "chunks_failed": len(failed), "failed_chunks": failed,
        "tile": settings.tile, "overlap": settings.overlap, "scales": list(settings.scales),
        "batch_size": settings.batch_size, "chunk_tiles": settings.chunk_tiles,
        "detect_s": detect_s, "total_s": round(time.perf_counter() - timing["started"], 2),
        "peak_rss_mib": round(peak_rss_bytes() / MIB, 1), "files": files,
    }
    atomic_write(os.path.join(out_dir, "run.json"), lambda handle: json.dump(figures, handle, indent=1))
    skipped = f"; {len(failed)} chunks skipped for read errors (see run.json)" if failed else ""
    logger.info(f"{source.path}: {len(craters)} craters, {tiles} tiles ({figures['tiles_nodata']} no-data) "
                f"in {detect_s:.1f}s, counting area {area.area:.6g} {area.unit}^2, peak resident memory "
                f"{figures['peak_rss_mib']} MiB{skipped}; wrote {', '.join(files.values())}")
    return figures


def merge_parts(folders: Sequence[str], out_dir: str, pixel_size_m: Optional[float] = None) -> List[Dict]:
    """One catalogue per image from the chunk records of shards (their --out folders); each image's raster
    is read again (georeference, counting area, overview) from the path its records name."""
    started = time.perf_counter()
    stores = stores_in(list(folders))
    if not stores:
        raise IncompleteRun(f"no chunk records ({PARTS_DIR}/{MANIFEST}) in {', '.join(folders)}: give the --out "
                            "folders of the shards")
    groups: Dict[str, List[PartsStore]] = {}
    for store in stores:
        groups.setdefault(json.dumps(store.manifest(), sort_keys=True), []).append(store)
    figures = []
    for key, group in groups.items():
        manifest = json.loads(key)
        raster = manifest["raster"]
        image_dir = _image_out_dir(out_dir, raster, len(groups) > 1)
        settings = settings_from_manifest(manifest)
        with open_source(raster) as source:
            if [source.width, source.height] != manifest["size"]:
                raise RunMismatch(f"{raster} is {source.width} x {source.height} now, its chunk records in "
                                  f"{group[0].folder} were made on {manifest['size']}: run the detection again")
            chunks = plan_source_chunks(source, settings)
            figures.append(write_catalogue(source, group, chunks, settings, image_dir, pixel_size_m,
                                           {"detect_s": 0.0, "started": started}))
    return figures


def launcher_local_rank() -> int:
    """This process's local rank under torchrun (LOCAL_RANK), else 0: each process takes the GPU of its own."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def build_detector(exp, ckpt: str, policy: "DevicePolicy", conf: float = DEFAULT_CONF, nms: Optional[float] = None,
                   fp16: bool = False, trust_ckpt: bool = False) -> TileDetector:
    """The exp's model with the checkpoint's weights (strict), on the policy's device."""
    from yolox.utils.checkpoint import load_exp_model

    model = load_exp_model(exp, ckpt, trust_pickle=trust_ckpt)
    logger.info(f"model {exp.exp_name} from {ckpt} on {policy.device}")
    return TileDetector(model, policy, exp.num_classes, conf, exp.nmsthre if nms is None else nms, fp16=fp16)


def _image_out_dir(out_dir: str, path: str, several: bool) -> str:
    return os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0]) if several else out_dir


def model_identity(exp, ckpt: str, conf: float, nms: float) -> Dict:
    """What names the model in a run's manifest: the exp, the checkpoint file (path and size), the thresholds."""
    return {"exp": exp.exp_name, "ckpt": os.path.abspath(ckpt), "ckpt_bytes": os.path.getsize(ckpt),
            "conf": conf, "nms": nms}


def detect_craters(source: str, exp: Union[str, object], ckpt: str, out_dir: str, *, device: str = "auto",
                   tile: Optional[int] = None, overlap: Optional[int] = None, scales: Sequence[float] = (1.0,),
                   batch_size: int = 8, conf: float = DEFAULT_CONF, nms: Optional[float] = None,
                   fp16: bool = False, pixel_size_m: Optional[float] = None, trust_ckpt: bool = False,
                   exp_opts: Sequence[str] = (), chunk_tiles: int = 64, restart: bool = False,
                   shard: Shard = Shard(), policy: Optional["DevicePolicy"] = None) -> List[Dict]:
    """Crater catalogues of an image or a folder of images (one sub-folder each); returns each run's figures.

    `exp` is an exp file or an Exp; tile defaults to its test size, overlap to what its largest training
    crater needs; `pixel_size_m` gives plain pictures a scale for craters.diam. Finished chunks are
    recorded in each output folder's parts/ (the same call again continues there; `restart` starts over);
    `shard` runs only its share of the chunks (join the shards with `merge_parts`). `policy` is the device
    policy the caller built (a command's device flags); without it one is built from `device` and `fp16`.
    """
    from yolox.exp import get_exp
    from yolox.utils.device import build_policy

    if isinstance(exp, str):
        exp = get_exp(exp, None)
    exp.merge(list(exp_opts))
    images = list_images(source)
    tile = tile or int(exp.test_size[0])
    if overlap is None:
        overlap = overlap_for(largest_trained_crater_px(exp), tile)
    settings = DetectionSettings(tile=tile, overlap=overlap, scales=tuple(scales), batch_size=batch_size,
                                 chunk_tiles=chunk_tiles)
    logger.info(f"tiles of {tile} px, overlap {overlap} px, scales {list(settings.scales)}, batch {batch_size}, "
                f"{chunk_tiles} tiles a chunk" + (f", shard {shard}" if shard.count > 1 else ""))
    nms = exp.nmsthre if nms is None else nms
    policy = policy or build_policy(device, fp16=fp16, local_rank=launcher_local_rank())
    detector = build_detector(exp, ckpt, policy, conf, nms, fp16, trust_ckpt)
    model = model_identity(exp, ckpt, conf, nms)
    return [catalogue_image(path, detector, settings, _image_out_dir(out_dir, path, len(images) > 1), pixel_size_m,
                            model=model, restart=restart, shard=shard)
            for path in images]
