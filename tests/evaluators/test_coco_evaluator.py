"""COCOEvaluator on the THEMIS val split: ground truth scores 1.0; perturbed detections match pycocotools."""
import contextlib
import io
import json

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch.utils.data import DataLoader, Dataset

from tests.conftest import shared_path
from yolox.evaluators import COCOEvaluator

TEST_SIZE = (832, 832)  # THEMIS tiles are 416 px: the letterbox scale is exactly 2


@pytest.fixture(scope="module")
def coco_gt() -> COCO:
    path = shared_path("datasets", "themis_mars", "annotations", "instances_val2017.json")
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


class IndexedImages(Dataset):
    """Eval items whose image tensor carries the dataset index, so a fake model knows the image."""

    def __init__(self, coco: COCO) -> None:
        self.coco = coco
        self.class_ids = sorted(coco.getCatIds())
        self.ids = coco.getImgIds()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        info = self.coco.loadImgs(self.ids[index])[0]
        image = torch.full((3, 2, 2), float(index))
        return image, np.zeros((1, 5)), (info["height"], info["width"]), self.ids[index]


class ReplayModel(torch.nn.Module):
    """Returns prepared raw outputs [B, N, 5+C] for the images of the batch."""

    def __init__(self, per_image_rows: list) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        width = max(len(rows) for rows in per_image_rows)
        self.outputs = torch.zeros(len(per_image_rows), max(width, 1), 6)
        for index, rows in enumerate(per_image_rows):
            if rows:
                self.outputs[index, : len(rows)] = torch.tensor(rows)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.outputs[images[:, 0, 0, 0].long()].clone()


def model_rows(detections: list, scale: float) -> list:
    """COCO (x, y, w, h, score) in original pixels -> (cx, cy, w, h, obj, cls) in letterboxed pixels."""
    return [[(x + w / 2) * scale, (y + h / 2) * scale, w * scale, h * scale, score, 1.0]
            for x, y, w, h, score in detections]


def ground_truth_detections(coco: COCO, image_id: int) -> list:
    return [[*ann["bbox"], 1.0] for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))]


def perturbed_detections(coco: COCO, image_id: int, rng: np.random.Generator) -> list:
    """Dropped, shifted and rescaled gt boxes plus false positives, on a 1/16 px grid (exact in float32)."""
    detections = []
    for x, y, w, h, _ in ground_truth_detections(coco, image_id):
        if rng.random() < 0.2:
            continue
        scale = rng.uniform(0.7, 1.3)
        dx, dy = rng.normal(0.0, 0.15, size=2) * (w, h)
        detections.append([x + dx, y + dy, w * scale, h * scale])
    for _ in range(rng.integers(0, 4)):
        detections.append([*rng.uniform(0, 380, size=2), *rng.uniform(4, 30, size=2)])
    grid = [[round(value * 16) / 16 for value in box] for box in detections]
    scores = np.float32(rng.uniform(0.05, 1.0, size=len(grid))).tolist()
    return [[x, y, max(w, 1 / 16), max(h, 1 / 16), score] for (x, y, w, h), score in zip(grid, scores)]


def make_evaluator(coco: COCO, max_dets: int, **kwargs) -> COCOEvaluator:
    loader = DataLoader(IndexedImages(coco), batch_size=16, shuffle=False)
    # nmsthre 1.0 keeps every prepared box, so pycocotools sees exactly the same detections.
    return COCOEvaluator(loader, TEST_SIZE, confthre=0.01, nmsthre=1.0, num_classes=1, max_dets=max_dets,
                         **kwargs)


def evaluate_rows(coco: COCO, detections: list, max_dets: int, **kwargs):
    evaluator = make_evaluator(coco, max_dets, **kwargs)
    model = ReplayModel([model_rows(image_dets, TEST_SIZE[0] / 416) for image_dets in detections])
    return evaluator.evaluate(model, return_outputs=True)


def pycocotools_direct(coco: COCO, detections: list, max_dets: int):
    results = [{"image_id": image_id, "category_id": 1, "bbox": [x, y, w, h], "score": score}
               for image_id, image_dets in zip(coco.getImgIds(), detections)
               for x, y, w, h, score in image_dets]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = COCOeval(coco, coco.loadRes(results), "bbox")
        coco_eval.params.maxDets = [1, 10, max_dets]
        coco_eval.evaluate()
        coco_eval.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        coco_eval.summarize()
    return coco_eval, summary.getvalue()


def test_ground_truth_scores_one(coco_gt):
    detections = [ground_truth_detections(coco_gt, image_id) for image_id in coco_gt.getImgIds()]
    assert max(len(dets) for dets in detections) == 62
    (ap50_95, ap50, summary), outputs = evaluate_rows(coco_gt, detections, max_dets=100)
    assert ap50_95 == pytest.approx(1.0) and ap50 == pytest.approx(1.0)
    assert summary.startswith("Average forward time: ")
    assert "maxDets=100" in summary and "per class AP:" in summary and "per class AR:" in summary
    assert "| crater | 100.000 |" in summary.replace("  ", " ").replace("  ", " ")
    assert "recall by diameter (IoU 0.5, up to 100 detections per image)" in summary
    assert len(outputs) == sum(1 for dets in detections if dets)


def test_perturbed_detections_match_pycocotools(coco_gt, tmp_path):
    rng = np.random.default_rng(7)
    detections = [perturbed_detections(coco_gt, image_id, rng) for image_id in coco_gt.getImgIds()]
    results_file = tmp_path / "results.json"
    (ap50_95, ap50, summary), outputs = evaluate_rows(coco_gt, detections, 100, results_file=str(results_file))
    direct, direct_summary = pycocotools_direct(coco_gt, detections, 100)
    assert 0.05 < ap50_95 < 0.95
    assert (ap50_95, ap50) == (direct.stats[0], direct.stats[1])
    assert direct_summary in summary

    written = json.loads(results_file.read_text())
    assert len(written) == sum(len(dets) for dets in detections)
    first_image = coco_gt.getImgIds()[0]
    expected_first = sorted(detections[0], key=lambda det: -det[4])
    written_first = [rec for rec in written if rec["image_id"] == first_image]
    assert [rec["bbox"] + [rec["score"]] for rec in written_first] == expected_first
    xyxy = outputs[first_image]["bboxes"][0]
    x, y, w, h, _ = expected_first[0]
    assert xyxy == [x, y, x + w, y + h]


def test_capped_ap_is_computed_at_the_cap(coco_gt):
    rng = np.random.default_rng(3)
    detections = [perturbed_detections(coco_gt, image_id, rng) for image_id in coco_gt.getImgIds()]
    (ap50_95, ap50, summary), _ = evaluate_rows(coco_gt, detections, max_dets=10)
    direct, _ = pycocotools_direct(coco_gt, detections, 10)
    # pycocotools' summarize() reads AP@[.5:.95] at 100 detections whatever maxDets says (-1 here);
    # the evaluator averages the same precision array at the cap instead.
    assert direct.stats[0] == -1
    precision = direct.eval["precision"][:, :, :, 0, -1]
    assert ap50_95 == np.mean(precision[precision > -1])
    assert ap50 == direct.stats[1]
    assert "maxDets= 10 ] = -1.000" not in summary


def test_no_detections(coco_gt):
    detections = [[] for _ in coco_gt.getImgIds()]
    (ap50_95, ap50, summary), outputs = evaluate_rows(coco_gt, detections, max_dets=100)
    assert (ap50_95, ap50) == (0, 0) and outputs == {}
    assert summary.startswith("Average forward time")
    # the table is logged every time: a line says why it is all zeros
    assert "no detections above the confidence threshold" in summary
    ap_lines = [line for line in summary.splitlines() if "Average Precision" in line or "Average Recall" in line]
    assert len(ap_lines) == 12 and all(line.endswith("= 0.000") for line in ap_lines)
    assert "IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.000" in ap_lines[0]
    assert "per class AP:" in summary and "per class AR:" in summary


def test_per_class_table_keeps_every_class():
    from yolox.evaluators.coco_evaluator import per_class_table

    table = per_class_table([10.0, 20.0, 30.0, 40.0], ["a", "b", "c", "d"], "AP")
    assert table.splitlines()[0].count("AP") == 3
    assert "| d " in table and "40.000" in table


def test_testdev_writes_the_submission_file(coco_gt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    detections = [ground_truth_detections(coco_gt, image_id)[:1] for image_id in coco_gt.getImgIds()]
    evaluate_rows(coco_gt, detections, max_dets=100, testdev=True)
    written = json.loads((tmp_path / "yolox_testdev_2017.json").read_text())
    assert len(written) == sum(len(dets) for dets in detections)
    assert {"image_id", "category_id", "bbox", "score", "segmentation"} == set(written[0])
