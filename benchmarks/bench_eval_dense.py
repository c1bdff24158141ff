"""Time one COCO evaluation of a dense, untrained-looking model output: every anchor a box with a low random score.

    PYTHONPATH=. python benchmarks/bench_eval_dense.py                   # this tree: 20 images x 30,000 anchors
    PYTHONPATH=. python benchmarks/bench_eval_dense.py --before HEAD~3   # also that commit's yolox, same outputs

The model replays prepared outputs, so the time is the evaluator's own: postprocess (threshold, NMS), the
conversion to COCO results, COCOeval and the recall table. `--before REF` runs the same evaluation in a
subprocess on `git archive REF`'s yolox package. Prints one line per run: seconds, AP50:95, AP50, which yolox.
"""
import contextlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np
import torch
from pycocotools.coco import COCO
from torch.utils.data import DataLoader, Dataset

import yolox
from yolox.evaluators import COCOEvaluator
from yolox.utils.user_errors import CLIParser, run_cli

IMAGE_SIZE = 1024


class ReplayImages(Dataset):
    """Eval items whose 1 px image carries the item index, for the replaying model."""

    def __init__(self, coco: COCO) -> None:
        self.coco, self.ids, self.class_ids = coco, coco.getImgIds(), sorted(coco.getCatIds())

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        return torch.full((3, 1, 1), float(index)), np.zeros((1, 5)), (IMAGE_SIZE, IMAGE_SIZE), self.ids[index]


class Replay(torch.nn.Module):
    def __init__(self, outputs: torch.Tensor) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.outputs = outputs

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.outputs[images[:, 0, 0, 0].long()].clone()


def crater_gt(rng: np.random.Generator, num_images: int) -> COCO:
    """One class, 50-150 boxes of 6-80 px per 1024 px image."""
    images, anns = [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": IMAGE_SIZE, "height": IMAGE_SIZE, "file_name": f"{image_id}.png"})
        for _ in range(rng.integers(50, 151)):
            side = float(np.exp(rng.uniform(np.log(6), np.log(80))))
            x, y = rng.uniform(0, IMAGE_SIZE - side, size=2)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1,
                         "bbox": [float(x), float(y), side, side], "area": side * side, "iscrowd": 0})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "crater"}]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def untrained_outputs(rng: np.random.Generator, coco: COCO, anchors: int) -> torch.Tensor:
    """[images, anchors, 6] (cx, cy, w, h, obj, cls): boxes everywhere, obj x cls mostly just above 0.001;
    one anchor in 20 is a jittered ground-truth box, so AP is small but not zero."""
    num_images = len(coco.getImgIds())
    centres = rng.uniform(0, IMAGE_SIZE, size=(num_images, anchors, 2))
    sides = np.exp(rng.uniform(np.log(4), np.log(64), size=(num_images, anchors, 2)))
    for index, image_id in enumerate(coco.getImgIds()):
        gts = np.array([a["bbox"] for a in coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))])
        near = gts[rng.integers(0, len(gts), size=anchors // 20)]
        sides[index, :len(near)] = near[:, 2:] * rng.uniform(0.8, 1.25, size=(len(near), 2))
        centres[index, :len(near)] = near[:, :2] + near[:, 2:] * rng.uniform(0.35, 0.65, size=(len(near), 2))
    scores = rng.uniform(0.0, 0.05, size=(num_images, anchors, 1))
    cls = rng.uniform(0.2, 1.0, size=(num_images, anchors, 1))
    return torch.tensor(np.concatenate([centres, sides, scores, cls], axis=2), dtype=torch.float32)


def run_once(num_images: int, anchors: int, max_dets: int) -> str:
    """One evaluation with the yolox on sys.path; its result line."""
    rng = np.random.default_rng(0)
    coco = crater_gt(rng, num_images)
    model = Replay(untrained_outputs(rng, coco, anchors))
    loader = DataLoader(ReplayImages(coco), batch_size=8, shuffle=False)
    evaluator = COCOEvaluator(loader, (IMAGE_SIZE, IMAGE_SIZE), confthre=0.001, nmsthre=0.65, num_classes=1,
                              max_dets=max_dets, per_class_AP=False, per_class_AR=False)
    started = time.perf_counter()
    ap50_95, ap50, _ = evaluator.evaluate(model)
    seconds = time.perf_counter() - started
    return (f"{seconds:8.2f} s  AP50:95 {ap50_95:.6f}  AP50 {ap50:.6f}  "
            f"({num_images} images x {anchors} anchors, max_dets {max_dets}; {os.path.dirname(yolox.__file__)})")


def run_before(ref: str, argv: list) -> str:
    """The same evaluation in a subprocess on `ref`'s yolox package."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tree:
        archive = subprocess.run(["git", "-C", repo, "archive", ref, "yolox"], check=True, capture_output=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tree, filter="data")
        env = {**os.environ, "PYTHONPATH": tree}
        done = subprocess.run([sys.executable, os.path.abspath(__file__), *argv], env=env, check=True,
                              capture_output=True, text=True)
    return f"{ref}: " + done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = CLIParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--anchors", type=int, default=30000)
    parser.add_argument("--max-dets", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the shared CPU has 2 cores)")
    parser.add_argument("--before", default=None, metavar="REF", help="also time this git commit's yolox")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    argv = ["--images", str(args.images), "--anchors", str(args.anchors), "--max-dets", str(args.max_dets),
            "--threads", str(args.threads)]
    if args.before:
        print(run_before(args.before, argv), flush=True)
    print(("this tree: " if args.before else "") + run_once(args.images, args.anchors, args.max_dets))


if __name__ == "__main__":
    run_cli(main)
