"""COCO box results as one array: rows (image_id, x, y, w, h, score, category_id), pycocotools' loadRes layout.

The evaluator keeps its detections in this form from the device to COCOeval, so no Python object is made
per detection until COCOeval's own loadRes; JSON is written only when a results file is asked for.
"""
import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = ["ROW_WIDTH", "result_rows", "image_slices", "image_outputs", "join_images", "write_results_json"]

ROW_WIDTH = 7


def result_rows(outputs: Sequence[Optional[torch.Tensor]], heights: Sequence, widths: Sequence, ids: Sequence,
                img_size: Sequence[int], class_ids: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """[n, 7] result rows of a batch's postprocess outputs (boxes in original-image pixels) and the same
    boxes as float32 xyxy [n, 4]; rows keep the outputs' order, so each image's rows are consecutive."""
    present = [(rows, h, w, i) for rows, h, w, i in zip(outputs, heights, widths, ids) if rows is not None]
    if not present:
        return np.zeros((0, ROW_WIDTH)), np.zeros((0, 4), np.float32)
    # one copy to the host for the whole batch
    detections = torch.cat([rows.detach() for rows, *_ in present]).to("cpu", torch.float32)
    counts = [len(rows) for rows, *_ in present]
    scales = torch.tensor([min(img_size[0] / float(h), img_size[1] / float(w)) for _, h, w, _ in present],
                          dtype=torch.float32).repeat_interleave(torch.tensor(counts))
    xyxy = detections[:, :4] / scales[:, None]
    xywh = torch.cat([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], dim=1)
    image_ids = np.repeat([int(image_id) for *_, image_id in present], counts)
    categories = np.asarray(class_ids)[detections[:, 6].long().numpy()]
    scores = (detections[:, 4] * detections[:, 5]).numpy()
    rows = np.column_stack([image_ids, xywh.numpy(), scores, categories]).astype(np.float64)
    return rows, xyxy.numpy()


def image_slices(rows: np.ndarray) -> Dict[int, slice]:
    """{image id: its slice} of rows whose images are consecutive."""
    image_ids = rows[:, 0]
    starts = np.flatnonzero(np.r_[True, image_ids[1:] != image_ids[:-1]]) if len(rows) else np.zeros(0, int)
    ends = np.r_[starts[1:], len(rows)]
    return {int(image_ids[start]): slice(int(start), int(end)) for start, end in zip(starts, ends)}


def image_outputs(rows: np.ndarray, xyxy: np.ndarray) -> Dict[int, dict]:
    """{image id: {"bboxes": xyxy lists, "scores", "categories"}}, the per-image outputs the trainer plots."""
    return {image_id: {"bboxes": xyxy[part].tolist(), "scores": rows[part, 5].tolist(),
                       "categories": rows[part, 6].astype(int).tolist()}
            for image_id, part in image_slices(rows).items()}


def join_images(per_image: Dict[int, np.ndarray]) -> np.ndarray:
    """All images' rows in one array, by image id."""
    if not per_image:
        return np.zeros((0, ROW_WIDTH))
    return np.concatenate([per_image[image_id] for image_id in sorted(per_image)])


def write_results_json(rows: np.ndarray, path: str) -> None:
    """The rows as a COCO results json (upstream YOLOX's records, for test-dev submission or keeping)."""
    records: List[dict] = [{"image_id": int(image_id), "category_id": int(category), "bbox": box,
                            "score": score, "segmentation": []}
                           for image_id, box, score, category in zip(rows[:, 0], rows[:, 1:5].tolist(),
                                                                     rows[:, 5].tolist(), rows[:, 6])]
    with open(path, "w") as results_json:
        json.dump(records, results_json)
