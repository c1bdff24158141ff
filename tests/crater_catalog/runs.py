"""tools/detect_craters.py on generated disc mosaics with the stand-in model: in this process or as a child."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from tests.crater_catalog.mosaics import MosaicConfig, write_mosaic

REPO = Path(__file__).resolve().parents[2]
FAKE_EXP = str(REPO / "tests" / "crater_catalog" / "fake_exp.py")
R_MARS = 3396190.0


def write_disc_geotiff(path: Path, width: int, height: int, seed: int = 4, pixel_m: float = 100.0):
    """A tiled GeoTIFF of dark discs in Mars equirectangular coordinates; returns its craters [k, 3]."""
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    cfg = MosaicConfig(width=width, height=height, seed=seed, style="discs", min_radius=5, max_radius=25,
                       craters_per_megapixel=300, max_overlap=1.0, min_gap=4, block=256)
    crs = CRS.from_string(f"+proj=eqc +lat_ts=0 +lat_0=0 +lon_0=0 +x_0=0 +y_0=0 +R={R_MARS} +units=m +no_defs")
    return write_mosaic(str(path), cfg, transform=from_origin(0.0, 200_000.0, pixel_m, pixel_m), crs=crs,
                        progress=False)


def fake_ckpt(folder: Path) -> str:
    """A checkpoint for the stand-in (it has no weights)."""
    path = folder / "disc_finder.pth"
    if not path.exists():
        torch.save({"model": {}}, path)
    return str(path)


def detect_args(raster: Path, ckpt: str, out: Path, extra: Sequence[str] = ()) -> List[str]:
    return [str(raster), "-f", FAKE_EXP, "-c", ckpt, "--out", str(out), "--tile", "256", "--overlap", "64",
            "--device", "cpu", "-b", "1", "--chunk-tiles", "1", "--conf", "0.5", *extra]


def start_detection(args: Sequence[str], log: Path, delay_s: float = 0.0,
                    launcher_env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """tools/detect_craters.py as a child process, its output appended to `log`; `launcher_env` adds what a
    launcher such as torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), FAKE_MODEL_DELAY_S=str(delay_s), **(launcher_env or {}))
    with open(log, "a") as handle:
        return subprocess.Popen([sys.executable, str(REPO / "tools" / "detect_craters.py"), *args], cwd=str(REPO),
                                env=env, stdout=handle, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen, log: Path) -> None:
    """Wait for the child, which must succeed."""
    process.wait(timeout=300)
    assert process.returncode == 0, log.read_text()[-3000:]
