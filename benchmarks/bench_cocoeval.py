"""Time COCO bbox evaluation, pycocotools vs faster-coco-eval, on a dense and a sparse set; check they agree.

    python benchmarks/bench_cocoeval.py                       # dense 300 images x 320 craters, sparse 500 x 0-8
    python benchmarks/bench_cocoeval.py --dense-images 40     # a quicker look

Each evaluator runs evaluate() + accumulate() with maxDets [1, 10, 1000]; the 12 COCO stats come from the
precision/recall arrays through the project's summarize() (AP read at maxDets[2]). Prints a table of
seconds per evaluator and the largest stat difference from pycocotools.
"""
import contextlib
import io
import time
from typing import Callable, Dict, List, Tuple

import numpy as np
from tabulate import tabulate

from yolox.utils.user_errors import CLIParser, run_cli

MAX_DETS = [1, 10, 1000]
TOLERANCE = 1e-6


def synthetic_set(rng: np.random.Generator, num_images: int, boxes_per_image: Tuple[int, int],
                  num_classes: int, size: int = 1024) -> Tuple[dict, List[dict]]:
    """Ground truth with log-uniform box sizes (small, medium and large) and detections: jittered copies of
    most ground truths plus false positives, with continuous scores."""
    images, annotations, results = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": size, "height": size, "file_name": f"{image_id}.png"})
        count = int(rng.integers(boxes_per_image[0], boxes_per_image[1] + 1))
        sides = np.exp(rng.uniform(np.log(6), np.log(250), size=count))
        corners = rng.uniform(0, size - sides[:, None], size=(count, 2))
        classes = rng.integers(1, num_classes + 1, size=count)
        for (x, y), side, cat in zip(corners, sides, classes):
            w, h = side * rng.uniform(0.8, 1.25), side
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(cat),
                                "bbox": [float(x), float(y), float(w), float(h)], "area": float(w * h),
                                "iscrowd": int(rng.random() < 0.01)})
            if rng.random() < 0.85:
                jitter = rng.normal(0, 0.08 * side, size=4)
                results.append({"image_id": image_id, "category_id": int(cat),
                                "bbox": [float(x + jitter[0]), float(y + jitter[1]),
                                         float(max(w + jitter[2], 1.0)), float(max(h + jitter[3], 1.0))],
                                "score": float(rng.uniform(0.2, 1.0))})
        for _ in range(int(count * 0.3)):
            side = float(np.exp(rng.uniform(np.log(6), np.log(250))))
            x, y = rng.uniform(0, size - side, size=2)
            results.append({"image_id": image_id, "category_id": int(rng.integers(1, num_classes + 1)),
                            "bbox": [float(x), float(y), side, side], "score": float(rng.uniform(0.0, 0.6))})
    categories = [{"id": k, "name": f"class{k}"} for k in range(1, num_classes + 1)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def run_cocoeval(coco_cls, cocoeval_cls, dataset: dict, results: List[dict]):
    """Evaluate and accumulate with one library's COCO and COCOeval classes."""
    coco_gt = coco_cls()
    coco_gt.dataset = dataset
    coco_gt.createIndex()
    coco_eval = cocoeval_cls(coco_gt, coco_gt.loadRes(results), "bbox")
    coco_eval.params.maxDets = MAX_DETS
    coco_eval.evaluate()
    coco_eval.accumulate()
    return coco_eval


def run_pycocotools(dataset: dict, results: List[dict]):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    return run_cocoeval(COCO, COCOeval, dataset, results)


def run_faster_coco_eval(dataset: dict, results: List[dict]):
    from faster_coco_eval import COCO, COCOeval_faster

    return run_cocoeval(COCO, COCOeval_faster, dataset, results)


EVALUATORS: Dict[str, Callable] = {
    "pycocotools COCOeval": run_pycocotools,
    "faster-coco-eval (C++)": run_faster_coco_eval,
}


def measure(name: str, dataset: dict, results: List[dict]) -> Tuple[float, np.ndarray]:
    """Seconds for loadRes + evaluate + accumulate, and the 12 stats."""
    from yolox.evaluators.coco_evaluator import summarize

    # fresh dicts: loadRes and evaluate() write into the annotation dicts they are given
    dataset = {**dataset, "annotations": [dict(a) for a in dataset["annotations"]]}
    results = [dict(r) for r in results]
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = EVALUATORS[name](dataset, results)
    seconds = time.perf_counter() - started
    return seconds, summarize(coco_eval)[0]


def main() -> None:
    parser = CLIParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dense-images", type=int, default=300)
    parser.add_argument("--dense-boxes", type=int, nargs=2, default=(300, 340), metavar=("MIN", "MAX"))
    parser.add_argument("--sparse-images", type=int, default=500)
    parser.add_argument("--skip", nargs="*", default=[], choices=list(EVALUATORS), help="evaluators to leave out")
    args = parser.parse_args()
    sets = {
        "dense": synthetic_set(np.random.default_rng(0), args.dense_images, tuple(args.dense_boxes), 1),
        "sparse": synthetic_set(np.random.default_rng(1), args.sparse_images, (0, 8), 3),
    }
    rows = []
    for set_name, (dataset, results) in sets.items():
        reference = None
        for name in EVALUATORS:
            if name in args.skip:
                continue
            seconds, stats = measure(name, dataset, results)
            reference = stats if reference is None else reference
            difference = float(np.abs(stats - reference).max())
            rows.append([set_name, f"{len(dataset['images'])} img, {len(dataset['annotations'])} gt, "
                         f"{len(results)} dt", name, f"{seconds:.2f}", f"{difference:.1e}",
                         "yes" if difference <= TOLERANCE else "NO", f"{stats[0]:.4f}"])
    print(tabulate(rows, headers=["set", "size", "evaluator", "seconds", "max |stat diff| vs first",
                                  f"identical (<= {TOLERANCE:g})", "AP50:95"], tablefmt="github"))


if __name__ == "__main__":
    run_cli(main)
