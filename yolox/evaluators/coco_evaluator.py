"""COCO box evaluation of a detector over an eval loader, with upstream YOLOX's result format and summary."""
import contextlib
import io
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from pycocotools.cocoeval import Params
from tabulate import tabulate

from yolox.evaluators.coco_results import image_outputs, image_slices, join_images, result_rows, write_results_json
from yolox.evaluators.cocoeval_backend import cocoeval_class
from yolox.evaluators.inference import gather_results, run_inference, timing_line
from yolox.evaluators.recall_by_size import recall_by_diameter, recall_table
from yolox.utils.dist import is_main_process, synchronize

__all__ = ["COCOEvaluator", "per_class_table"]

TESTDEV_RESULTS = "./yolox_testdev_2017.json"


class COCOEvaluator:
    """AP@[.5:.95] and AP@.5 of a model on `dataloader`'s COCO-format dataset.

    Args:
        dataloader: yields (images, targets, (heights, widths), image ids); its dataset has a
            pycocotools `coco` and sorted `class_ids`.
        img_size: (height, width) the images were letterboxed to.
        confthre, nmsthre: postprocess score and NMS IoU thresholds.
        num_classes: classes of the model output.
        testdev: write the results to ./yolox_testdev_2017.json (for submission).
        per_class_AP, per_class_AR: append per-class tables to the summary.
        max_dets: per-image detection cap of the reported AP (COCO maxDets = [1, 10, max_dets]); postprocess
            keeps no more per image and class, the most COCOeval scores, so the figures are those of all.
        results_file: also keep the COCO results json (the capped detections) at this path.
    """

    def __init__(self, dataloader, img_size: Sequence[int], confthre: float, nmsthre: float, num_classes: int,
                 testdev: bool = False, per_class_AP: bool = True, per_class_AR: bool = True,
                 max_dets: int = 100, results_file: Optional[str] = None) -> None:
        self.dataloader = dataloader
        self.img_size = img_size
        self.confthre = confthre
        self.nmsthre = nmsthre
        self.num_classes = num_classes
        self.testdev = testdev
        self.per_class_AP = per_class_AP
        self.per_class_AR = per_class_AR
        self.max_dets = max_dets
        self.results_file = results_file

    def evaluate(self, model, distributed: bool = False, half: bool = False, trt_file: Optional[str] = None,
                 decoder=None, test_size: Optional[Sequence[int]] = None, return_outputs: bool = False,
                 policy=None, amp: bool = False):
        """(ap50_95, ap50, summary), plus {image id: detections} when return_outputs.

        amp: the forward under policy.autocast() (the precision the run trains in); postprocess stays fp32.
        """
        per_image: Dict[int, np.ndarray] = {}
        output_data: Dict[int, dict] = {}

        def collect(outputs, info_imgs, ids) -> None:
            converted = self.convert_to_coco_format(outputs, info_imgs, ids, return_outputs=return_outputs)
            rows, image_wise = converted if return_outputs else (converted, {})
            per_image.update({image_id: rows[part] for image_id, part in image_slices(rows).items()})
            output_data.update(image_wise)

        statistics = run_inference(model, self.dataloader, collect, self.num_classes, self.confthre,
                                   self.nmsthre, half=half, trt_file=trt_file, decoder=decoder,
                                   test_size=test_size or self.img_size, policy=policy, max_dets=self.max_dets,
                                   amp=amp)
        if distributed:
            (per_image, output_data), statistics = gather_results((per_image, output_data), statistics)
        eval_results = self.evaluate_prediction(join_images(per_image), statistics)
        synchronize()
        if return_outputs:
            return eval_results, output_data
        return eval_results

    def convert_to_coco_format(self, outputs, info_imgs, ids, return_outputs: bool = False):
        """[n, 7] COCO result rows (image_id, x, y, w, h, score, category_id; boxes in original-image pixels);
        with return_outputs also the per-image {"bboxes" (xyxy), "scores", "categories"}."""
        rows, xyxy = result_rows(outputs, info_imgs[0], info_imgs[1], ids, self.img_size,
                                 self.dataloader.dataset.class_ids)
        if return_outputs:
            return rows, image_outputs(rows, xyxy)
        return rows

    def evaluate_prediction(self, detections: np.ndarray, statistics: Sequence[float]) -> Tuple[float, float, Optional[str]]:
        """COCO bbox evaluation of [n, 7] result rows; statistics = (inference s, NMS s, timed batches)."""
        if not is_main_process():
            return 0, 0, None
        info = timing_line(statistics, self.dataloader.batch_size)
        coco_gt = self.dataloader.dataset.coco
        class_names = [coco_gt.cats[cat_id]["name"] for cat_id in sorted(coco_gt.cats)]
        if len(detections) == 0:
            # the user sees the same table every time; without detections every figure is 0
            info += "no detections above the confidence threshold: every AP and AR below is 0\n"
            stats = np.zeros(len(_SUMMARY_LINES))
            info += summary_text(stats, Params(iouType="bbox").iouThrs, [1, 10, self.max_dets])
            per_class_ap = per_class_ar = [0.0] * len(class_names)
        else:
            coco_eval = self._run_cocoeval(coco_gt, detections)
            coco_eval.stats, summary = summarize(coco_eval)
            stats = coco_eval.stats
            info += summary
            info += (f"recall by diameter (IoU 0.5, up to {self.max_dets} detections per image):\n"
                     + recall_table(recall_by_diameter(coco_gt, detections, self.max_dets)) + "\n")
            per_class_ap = _per_class_mean(coco_eval.eval["precision"], axis=2)
            per_class_ar = _per_class_mean(coco_eval.eval["recall"], axis=1)
        if self.per_class_AP:
            info += "per class AP:\n" + per_class_table(per_class_ap, class_names, "AP") + "\n"
        if self.per_class_AR:
            info += "per class AR:\n" + per_class_table(per_class_ar, class_names, "AR") + "\n"
        return float(stats[0]), float(stats[1]), info

    def _run_cocoeval(self, coco_gt, detections: np.ndarray):
        path = TESTDEV_RESULTS if self.testdev else self.results_file
        if path is not None:
            write_results_json(detections, path)
        with contextlib.redirect_stdout(io.StringIO()):
            coco_eval = cocoeval_class()(coco_gt, coco_gt.loadRes(detections), "bbox")
            coco_eval.params.maxDets = [1, 10, self.max_dets]
            coco_eval.evaluate()
            coco_eval.accumulate()
        return coco_eval


# (metric, IoU threshold, area range, index into params.maxDets) of the 12 standard COCO lines
_SUMMARY_LINES = [("AP", None, "all", 2), ("AP", 0.5, "all", 2), ("AP", 0.75, "all", 2),
                  ("AP", None, "small", 2), ("AP", None, "medium", 2), ("AP", None, "large", 2),
                  ("AR", None, "all", 0), ("AR", None, "all", 1), ("AR", None, "all", 2),
                  ("AR", None, "small", 2), ("AR", None, "medium", 2), ("AR", None, "large", 2)]


def summarize(coco_eval) -> Tuple[np.ndarray, str]:
    """The 12 COCO stats and their text, every AP line at maxDets[2].

    pycocotools' own summarize() reads AP@[.5:.95] at a hard-coded 100 detections, which is
    -1 for any other cap; here the configured cap is used throughout (identical at 100).
    """
    params = coco_eval.params
    stats = np.zeros(len(_SUMMARY_LINES))
    for i, (metric, iou, area, det_index) in enumerate(_SUMMARY_LINES):
        values = coco_eval.eval["precision" if metric == "AP" else "recall"]
        area_index = params.areaRngLbl.index(area)
        if metric == "AP":
            values = values[:, :, :, area_index, det_index]
        else:
            values = values[:, :, area_index, det_index]
        if iou is not None:
            values = values[np.where(np.isclose(params.iouThrs, iou))[0]]
        valid = values[values > -1]
        stats[i] = float(np.mean(valid)) if valid.size else -1.0
    return stats, summary_text(stats, params.iouThrs, params.maxDets)


def summary_text(stats: Sequence[float], iou_thresholds: Sequence[float], max_dets: Sequence[int]) -> str:
    """The 12 standard COCO summary lines for `stats`."""
    lines = []
    for value, (metric, iou, area, det_index) in zip(stats, _SUMMARY_LINES):
        title = "Average Precision" if metric == "AP" else "Average Recall"
        iou_text = f"{iou_thresholds[0]:0.2f}:{iou_thresholds[-1]:0.2f}" if iou is None else f"{iou:0.2f}"
        lines.append(f" {title:<18} ({metric}) @[ IoU={iou_text:<9} | area={area:>6s} | "
                     f"maxDets={max_dets[det_index]:>3d} ] = {value:0.3f}")
    return "\n".join(lines) + "\n"


def per_class_table(values: Sequence[float], class_names: Sequence[str], metric: str, columns: int = 6) -> str:
    """(class, value) pairs laid out `columns // 2` per row as a pipe table; values are in percent."""
    pairs = [item for name, value in zip(class_names, values) for item in (name, value)]
    num_cols = min(columns, len(pairs))
    pairs += [""] * (-len(pairs) % num_cols)
    rows = [pairs[start:start + num_cols] for start in range(0, len(pairs), num_cols)]
    headers = ["class", metric] * (num_cols // 2)
    return tabulate(rows, headers=headers, tablefmt="pipe", floatfmt=".3f", numalign="left")


def _per_class_mean(values: np.ndarray, axis: int) -> List[float]:
    """Mean (x100) of the valid entries of each class at area 'all' and the largest maxDets."""
    means = []
    for k in range(values.shape[axis]):
        per_class = np.take(values, k, axis=axis)[..., 0, -1]
        valid = per_class[per_class > -1]
        means.append(float(np.mean(valid)) * 100 if valid.size else float("nan"))
    return means
