"""Synthetic crater fields in COCO layout: a data set that needs no download.

Each image is a hill-shaded height map: smooth multi-scale terrain plus bowl-shaped craters
(some with raised rims), lit from one side so the sun-facing inner wall is bright and the far
wall is in shadow, like daytime orbital imagery. The label of a crater is the box of its rim
crest, the convention of crater catalogues.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Sequence, Tuple

import cv2
import numpy as np

CRATER_CATEGORY = {"id": 1, "name": "crater", "supercategory": "crater"}
# A dense field, as on high-resolution images of old surfaces: 1,000 to 3,000 craters per 800 px image,
# diameters from about 3 px (a power law, median 8 to 10 px) up to 128 px: generate_synthetic_craters(**DENSE_FIELD).
DENSE_FIELD = dict(img_size=800, min_radius=1.5, max_radius_fraction=0.08, craters_per_image=(1000, 3000),
                   size_slope=1.2)
SPLITS = (("train2017", "instances_train2017.json"), ("val2017", "instances_val2017.json"))


@dataclass(frozen=True)
class CraterFieldConfig:
    """What one synthetic image may contain."""

    img_size: int = 256
    min_radius: float = 4.0
    max_radius_fraction: float = 0.18     # largest rim radius as a fraction of img_size
    craters_per_image: Tuple[int, int] = (6, 30)
    max_overlap: float = 0.5              # centre distance must exceed this x (r1 + r2)
    noise_sigma: float = 4.0              # sensor noise, grey levels
    terrain_relief: float = 1.0           # height scale of the background terrain (0 = flat plain)
    size_slope: float = 0.0               # 0: log-uniform radii; b > 0: power law N(>r) ~ r^-b


def _terrain_height(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth multi-scale noise: octaves of random grids upsampled with bicubic interpolation."""
    height = np.zeros((size, size), np.float32)
    cells, amplitude = 4, 4.0
    while cells <= size // 4:
        grid = rng.standard_normal((cells, cells)).astype(np.float32)
        height += amplitude * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        cells, amplitude = cells * 2, amplitude * 0.5
    return height


def _draw_radii(rng: np.random.Generator, cfg: CraterFieldConfig, count: int, max_radius: float) -> np.ndarray:
    """Rim radii: log-uniform (size_slope 0), else a power law N(>r) ~ r^-size_slope, as crater counts follow."""
    low, high = np.log(cfg.min_radius), np.log(max_radius)
    if cfg.size_slope == 0:
        return np.exp(rng.uniform(low, high, size=count))
    # inverse CDF of the power law truncated to [min_radius, max_radius]
    slope = cfg.size_slope
    tail = 1.0 - np.exp(-slope * (high - low))
    return cfg.min_radius * (1.0 - rng.uniform(0.0, 1.0, size=count) * tail) ** (-1.0 / slope)


def _place_craters(rng: np.random.Generator, cfg: CraterFieldConfig) -> np.ndarray:
    """Centres and rim radii [k, 3] (cx, cy, r); small craters dominate (see size_slope)."""
    max_radius = max(cfg.min_radius + 1.0, cfg.max_radius_fraction * cfg.img_size)
    wanted = int(rng.integers(cfg.craters_per_image[0], cfg.craters_per_image[1] + 1))
    radii = _draw_radii(rng, cfg, wanted * 3, max_radius)
    centres = rng.uniform(0, cfg.img_size, size=(wanted * 3, 2))
    kept = np.empty((wanted, 3))
    count = 0
    # Largest first so that small craters land on and around big ones, as on real surfaces.
    for idx in np.argsort(-radii):
        placed = kept[:count]
        dist = np.hypot(placed[:, 0] - centres[idx, 0], placed[:, 1] - centres[idx, 1])
        if np.any(dist < cfg.max_overlap * (placed[:, 2] + radii[idx])):
            continue
        kept[count] = (centres[idx, 0], centres[idx, 1], radii[idx])
        count += 1
        if count == wanted:
            break
    return kept[:count]


def add_crater(height: np.ndarray, cx: float, cy: float, radius: float, rim: float, depth: float) -> None:
    """Carve a parabolic bowl of rim radius `radius` with an optional raised rim, in place."""
    size = height.shape[0]
    reach = radius * 1.6
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 1, size)
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 1, size)
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    rho = np.hypot(xs - cx, ys - cy) / radius
    bowl = np.where(rho < 1.0, depth * (rho ** 2 - 1.0), 0.0)
    rim_ring = rim * np.exp(-((rho - 1.0) / 0.18) ** 2)
    height[y0:y1, x0:x1] += (bowl + rim_ring).astype(np.float32)


def hillshade(height: np.ndarray, azimuth: float, albedo: np.ndarray) -> np.ndarray:
    """Grey levels of a height map lit from `azimuth` at a low sun (strong shadows)."""
    grad_y, grad_x = np.gradient(height)
    slope_towards_sun = grad_x * np.cos(azimuth) + grad_y * np.sin(azimuth)
    shade = 0.55 + 0.9 * slope_towards_sun / np.sqrt(1.0 + grad_x ** 2 + grad_y ** 2)
    return albedo * np.clip(shade, 0.08, 1.4)


def render_crater_field(rng: np.random.Generator, cfg: CraterFieldConfig) -> Tuple[np.ndarray, np.ndarray]:
    """One grey uint8 image [H, W] and its crater boxes [k, 4] (x, y, w, h) clipped to the image."""
    size = cfg.img_size
    height = cfg.terrain_relief * _terrain_height(rng, size)
    craters = _place_craters(rng, cfg)
    for cx, cy, radius in craters:
        depth = radius * rng.uniform(0.25, 0.45)
        rim = depth * rng.uniform(0.0, 0.5) if rng.random() < 0.6 else 0.0
        add_crater(height, cx, cy, radius, rim, depth)
    albedo = 120.0 + 12.0 * _terrain_height(rng, size) / 6.0
    image = hillshade(height, rng.uniform(0, 2 * np.pi), albedo)
    image += rng.normal(0.0, cfg.noise_sigma, size=image.shape)
    boxes = np.stack(
        [craters[:, 0] - craters[:, 2], craters[:, 1] - craters[:, 2],
         craters[:, 0] + craters[:, 2], craters[:, 1] + craters[:, 2]], axis=1) if len(craters) else np.zeros((0, 4))
    boxes = np.clip(boxes, 0, size)
    boxes[:, 2:] -= boxes[:, :2]
    visible = (boxes[:, 2] >= 2) & (boxes[:, 3] >= 2)
    return np.clip(image, 0, 255).astype(np.uint8), boxes[visible]


def _write_split(out_dir: Path, folder: str, ann_file: str, num_images: int, split_seed: Sequence[int],
                 cfg: CraterFieldConfig) -> Dict:
    image_dir = out_dir / folder
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        rng = np.random.default_rng([*split_seed, image_id])
        image, boxes = render_crater_field(rng, cfg)
        file_name = f"crater_{image_id:05d}.png"
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise RuntimeError(f"could not encode {image_dir / file_name} as PNG")
        (image_dir / file_name).write_bytes(png.tobytes())
        images.append({"id": image_id, "file_name": file_name, "width": cfg.img_size, "height": cfg.img_size})
        for x, y, w, h in np.round(boxes, 2).tolist():
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                "bbox": [x, y, w, h], "area": round(w * h, 2), "iscrowd": 0})
    coco = {"info": {"description": "synthetic crater fields (yolox.synthetic.craters)",
                     "seed": list(split_seed)},
            "images": images, "annotations": annotations, "categories": [CRATER_CATEGORY]}
    (out_dir / "annotations" / ann_file).write_text(json.dumps(coco))
    return coco


def generate_synthetic_craters(out_dir, num_train: int = 160, num_val: int = 40, img_size: int = 256,
                               seed: int = 0, min_radius: float = 4.0, max_radius_fraction: float = 0.18,
                               craters_per_image: Tuple[int, int] = (6, 30),
                               terrain_relief: float = 1.0, size_slope: float = 0.0) -> Dict[str, int]:
    """Write a COCO-layout crater set under `out_dir`; the same arguments give identical bytes.

    Returns the number of images and boxes written per split.
    """
    if img_size < 32:
        raise ValueError(f"img_size {img_size} is too small for crater fields: use 32 or more")
    cfg = CraterFieldConfig(img_size=img_size, min_radius=min_radius, max_radius_fraction=max_radius_fraction,
                            craters_per_image=tuple(craters_per_image), terrain_relief=terrain_relief,
                            size_slope=size_slope)
    out_dir = Path(out_dir)
    (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
    counts = {}
    for split_index, ((folder, ann_file), num_images) in enumerate(zip(SPLITS, (num_train, num_val))):
        coco = _write_split(out_dir, folder, ann_file, num_images, (seed, split_index), cfg)
        counts[f"{folder}_images"] = len(coco["images"])
        counts[f"{folder}_boxes"] = len(coco["annotations"])
    return counts
