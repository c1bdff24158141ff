"""VOC mAP of a detector over a VOCDetection eval loader: the mean over IoU 0.50:0.05:0.95, and at 0.5."""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from tabulate import tabulate

from yolox.evaluators.inference import gather_results, run_inference, timing_line
from yolox.evaluators.voc_eval import parse_voc_objects, voc_eval
from yolox.utils.dist import is_main_process, synchronize

__all__ = ["VOCEvaluator"]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


class VOCEvaluator:
    """mAP@[.5:.95] and mAP@.5 with the VOC devkit matcher (11-point AP for years before 2010).

    The loader's dataset is a VOCDetection: items carry the integer index as image id, and
    `annotation_path(index)` gives the xml holding the difficult flags.
    """

    def __init__(self, dataloader, img_size: Sequence[int], confthre: float, nmsthre: float,
                 num_classes: int) -> None:
        self.dataloader = dataloader
        self.img_size = img_size
        self.confthre = confthre
        self.nmsthre = nmsthre
        self.num_classes = num_classes

    def evaluate(self, model, distributed: bool = False, half: bool = False, trt_file: Optional[str] = None,
                 decoder=None, test_size: Optional[Sequence[int]] = None, return_outputs: bool = False,
                 policy=None):
        """(map50_95, map50, summary), plus {index: (boxes, classes, scores)} when return_outputs."""
        data_dict: Dict[int, tuple] = {}

        def collect(outputs, info_imgs, ids) -> None:
            data_dict.update(self.convert_to_voc_format(outputs, info_imgs, ids))

        statistics = run_inference(model, self.dataloader, collect, self.num_classes, self.confthre,
                                   self.nmsthre, half=half, trt_file=trt_file, decoder=decoder,
                                   test_size=test_size or self.img_size, policy=policy)
        if distributed:
            (data_dict,), statistics = gather_results((data_dict,), statistics)
        eval_results = self.evaluate_prediction(data_dict, statistics)
        synchronize()
        if return_outputs:
            return eval_results, data_dict
        return eval_results

    def convert_to_voc_format(self, outputs, info_imgs, ids) -> Dict[int, tuple]:
        """Per image index: (xyxy boxes in original pixels, class indices, scores), or three Nones."""
        predictions = {}
        for output, img_h, img_w, img_id in zip(outputs, info_imgs[0], info_imgs[1], ids):
            if output is None:
                predictions[int(img_id)] = (None, None, None)
                continue
            output = output.detach().to("cpu").float().numpy()
            scale = min(self.img_size[0] / float(img_h), self.img_size[1] / float(img_w))
            predictions[int(img_id)] = (output[:, :4] / scale, output[:, 6], output[:, 4] * output[:, 5])
        return predictions

    def evaluate_prediction(self, data_dict: Dict[int, tuple], statistics: Sequence[float]) -> Tuple[float, float, Optional[str]]:
        if not is_main_process():
            return 0, 0, None
        info = timing_line(statistics, self.dataloader.batch_size)
        dataset = self.dataloader.dataset
        objects = {index: parse_voc_objects(dataset.annotation_path(index)) for index in range(len(dataset))}
        use_07_metric = int(dataset.image_set[0][0]) < 2010
        class_names = list(dataset._classes)[: self.num_classes]
        detections = _detections_by_class(data_dict, len(class_names))
        aps = np.array([[voc_eval(detections[k], objects, name, float(thresh), use_07_metric)[2]
                         for k, name in enumerate(class_names)] for thresh in IOU_THRESHOLDS])
        rows = [(name, ap * 100) for name, ap in zip(class_names, aps[0])]
        info += f"VOC{'07 11-point' if use_07_metric else ''} AP@0.5 per class:\n"
        info += tabulate(rows, headers=["class", "AP50"], tablefmt="pipe", floatfmt=".3f", numalign="left") + "\n"
        map_per_threshold = np.nanmean(aps, axis=1)
        info += f"mAP@[.5:.95] = {np.mean(map_per_threshold):.4f}, mAP@.5 = {map_per_threshold[0]:.4f}\n"
        return float(np.mean(map_per_threshold)), float(map_per_threshold[0]), info


def _detections_by_class(data_dict: Dict[int, tuple], num_classes: int) -> List[list]:
    """Per class: (image index, score, 1-based box) rounded like the devkit's result files."""
    per_class: List[list] = [[] for _ in range(num_classes)]
    for index, (boxes, classes, scores) in data_dict.items():
        if boxes is None:
            continue
        for box, cls, score in zip(boxes, classes, scores):
            rounded_box = [float(f"{value + 1:.1f}") for value in box]
            per_class[int(cls)].append((index, float(f"{score:.3f}"), rounded_box))
    return per_class
