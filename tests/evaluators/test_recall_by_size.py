"""Recall by diameter bin: one-to-one matching by score, the detection cap, the bins."""
import contextlib
import io

import numpy as np
from pycocotools.coco import COCO

from yolox.evaluators.recall_by_size import bin_labels, matched_gts, recall_by_diameter, recall_table


def coco_of(boxes_per_image: dict) -> COCO:
    images, anns = [], []
    for image_id, boxes in boxes_per_image.items():
        images.append({"id": image_id, "width": 200, "height": 200, "file_name": f"{image_id}.png"})
        for box in boxes:
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "bbox": list(box),
                         "area": box[2] * box[3], "iscrowd": 0})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "crater"}]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def test_one_detection_matches_one_gt_and_the_best_scored_wins():
    gts = np.array([[10, 10, 6, 6], [11, 10, 6, 6]], float)
    dets = np.array([[10, 10, 6, 6]], float)
    assert matched_gts(dets, np.array([0.9]), gts, 0.5, 100).tolist() == [True, False]
    two = np.array([[10, 10, 6, 6], [11, 10, 6, 6]], float)
    assert matched_gts(two, np.array([0.9, 0.8]), gts, 0.5, 100).tolist() == [True, True]
    # the cap keeps only the highest score
    assert matched_gts(two, np.array([0.1, 0.8]), gts, 0.5, 1).tolist() == [False, True]


def test_recall_counts_each_diameter_bin():
    gts = {1: [(0, 0, 5, 5), (50, 50, 10, 10), (100, 100, 40, 40), (10, 120, 70, 70)]}
    dets = np.array([[1, 50, 50, 10, 10, 0.9, 1], [1, 10, 120, 70, 70, 0.8, 1], [1, 150, 0, 5, 5, 0.7, 1]], float)
    recalls = recall_by_diameter(coco_of(gts), dets, max_dets=100)
    assert list(recalls) == bin_labels() == ["<8", "8-16", "16-32", "32-64", ">64"]
    assert recalls == {"<8": (0, 1), "8-16": (1, 1), "16-32": (0, 0), "32-64": (0, 1), ">64": (1, 1)}
    table = recall_table(recalls)
    assert "| >64" in table and "1.000" in table and "nan" in table


def test_rows_of_other_images_and_classes_neither_match_nor_count_toward_the_cap():
    gts = {1: [(10, 10, 20, 20)], 2: [(50, 50, 20, 20), (100, 100, 20, 20)]}
    # interleaved: image 2's best row on its second gt, a class-2 row and image 1's row between its rows
    dets = np.array([[2, 100, 100, 20, 20, 0.9, 1], [2, 50, 50, 20, 20, 0.9, 2], [1, 10, 10, 20, 20, 0.5, 1],
                     [2, 50, 50, 20, 20, 0.8, 1]], float)
    assert recall_by_diameter(coco_of(gts), dets, max_dets=1)["16-32"] == (2, 3)
    assert recall_by_diameter(coco_of(gts), dets, max_dets=2)["16-32"] == (3, 3)
    assert recall_by_diameter(coco_of(gts), dets[:0], max_dets=2)["16-32"] == (0, 3)
