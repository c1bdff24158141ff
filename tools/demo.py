#!/usr/bin/env python3
"""Run a YOLOX model on an image, a folder of images, a video or a webcam and draw the detections."""
import argparse
import os
import time
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from loguru import logger

from yolox.cli.flags import add_device_args, policy_from_args
from yolox.utils.user_errors import CLIParser, run_cli

from yolox.data.data_augment import ValTransform
from yolox.data.datasets import COCO_CLASSES
from yolox.exp import get_exp
from yolox.utils.boxes import postprocess
from yolox.utils.checkpoint import load_run_model
from yolox.utils.model_utils import fuse_model, get_model_info

IMAGE_EXT = (".jpg", ".jpeg", ".webp", ".bmp", ".png")


def make_parser() -> argparse.ArgumentParser:
    parser = CLIParser("YOLOX Demo!")
    parser.add_argument("demo", default="image", help="demo type: image, video or webcam")
    parser.add_argument("-expn", "--experiment-name", type=str, default=None)
    parser.add_argument("-n", "--name", type=str, default=None, help="model name")
    parser.add_argument("--path", default="./assets/dog.jpg", help="path to an image, a folder or a video")
    parser.add_argument("--camid", type=int, default=0, help="webcam demo camera id")
    parser.add_argument("--save_result", action="store_true", help="save the drawn image/video")
    parser.add_argument("-f", "--exp_file", default=None, type=str, help="experiment description file")
    parser.add_argument("-c", "--ckpt", default=None, type=str, help="checkpoint (default: best_ckpt.pth)")
    parser.add_argument("--conf", default=0.3, type=float, help="score threshold (also for drawing)")
    parser.add_argument("--nms", default=0.3, type=float, help="NMS IoU threshold")
    parser.add_argument("--tsize", default=None, type=int, help="square test size")
    parser.add_argument("--legacy", dest="legacy", default=False, action="store_true",
                        help="old (RGB, mean/std) preprocessing")
    parser.add_argument("--fuse", dest="fuse", default=False, action="store_true", help="fuse conv and bn")
    parser.add_argument("--trt", dest="trt", default=False, action="store_true",
                        help="use a TensorRT model (CUDA and torch2trt only)")
    parser.add_argument("--trust-ckpt", dest="trust_ckpt", default=False, action="store_true",
                        help="allow checkpoints that need full unpickling (only for files you trust)")
    add_device_args(parser)
    parser.set_defaults(fp16=False)     # inference stays fp32 unless --fp16 asks (upstream's demo default)
    return parser


def class_palette(count: int) -> np.ndarray:
    """`count` distinct BGR colours spread around the hue circle."""
    hues = (np.arange(count) * 180.0 / max(count, 1) * 7) % 180
    hsv = np.stack([hues, np.full(count, 200), np.full(count, 230)], axis=1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0].astype(int)


def vis(img: np.ndarray, boxes, scores, cls_ids, conf: float = 0.5,
        class_names: Sequence[str] = COCO_CLASSES) -> np.ndarray:
    """Draw boxes with "name:score%" labels (scores below `conf` skipped) on `img` in place."""
    palette = class_palette(len(class_names))
    for box, score, cls_id in zip(boxes, scores, cls_ids):
        if score < conf:
            continue
        cls_id = int(cls_id)
        x0, y0, x1, y1 = (int(v) for v in box)
        color = tuple(int(c) for c in palette[cls_id % len(palette)])
        text = f"{class_names[cls_id]}:{score * 100:.1f}%"
        font = cv2.FONT_HERSHEY_SIMPLEX
        text_w, text_h = cv2.getTextSize(text, font, 0.4, 1)[0]
        cv2.rectangle(img, (x0, y0), (x1, y1), color, 2)
        cv2.rectangle(img, (x0, y0 + 1), (x0 + text_w + 1, y0 + int(1.5 * text_h)), color, -1)
        text_color = (0, 0, 0) if np.mean(color) > 127 else (255, 255, 255)
        cv2.putText(img, text, (x0, y0 + text_h), font, 0.4, text_color, thickness=1)
    return img


def exp_class_names(exp) -> Tuple[str, ...]:
    """Class names of the exp's data when they can be read, else COCO_CLASSES."""
    names = getattr(exp, "class_names", None)
    if names:
        return tuple(names)
    try:
        dataset = exp.get_eval_dataset()
        cats = dataset.coco.loadCats(dataset.class_ids)
        names = tuple(cat["name"] for cat in cats)
        if len(names) == exp.num_classes:
            return names
    except Exception as error:  # noqa: BLE001 - any unreadable dataset falls back to COCO names
        logger.info(f"class names from COCO_CLASSES (the exp's dataset is not readable: {str(error)[:120]})")
    if exp.num_classes <= len(COCO_CLASSES):
        return tuple(COCO_CLASSES[:exp.num_classes])
    return tuple(f"class{i}" for i in range(exp.num_classes))


class Predictor:
    """Letterbox, forward and postprocess one image at a time."""

    def __init__(self, model, exp, cls_names: Sequence[str] = COCO_CLASSES, trt_file: Optional[str] = None,
                 decoder=None, policy=None, fp16: bool = False, legacy: bool = False):
        self.model = model
        self.cls_names = cls_names
        self.decoder = decoder
        self.num_classes = exp.num_classes
        self.confthre = exp.test_conf
        self.nmsthre = exp.nmsthre
        self.test_size = exp.test_size
        self.policy = policy
        self.fp16 = fp16
        self.preproc = ValTransform(legacy=legacy)
        if trt_file is not None:
            from torch2trt import TRTModule  # lazy: torch2trt is optional, needed only for --trt

            trt_model = TRTModule()
            trt_model.load_state_dict(torch.load(trt_file, weights_only=True))
            dummy = policy.to(torch.ones(1, 3, exp.test_size[0], exp.test_size[1]))
            self.model(dummy)
            self.model = trt_model

    def inference(self, img) -> Tuple[List[Optional[torch.Tensor]], Dict]:
        img_info = {"id": 0}
        if isinstance(img, str):
            img_info["file_name"] = os.path.basename(img)
            path = img
            img = cv2.imread(path)
            if img is None:
                raise FileNotFoundError(f"cannot read image {path}: missing file or unsupported format")
        else:
            img_info["file_name"] = None
        height, width = img.shape[:2]
        img_info.update(height=height, width=width, raw_img=img)
        img_info["ratio"] = min(self.test_size[0] / height, self.test_size[1] / width)

        tensor, _ = self.preproc(img, None, self.test_size)
        tensor = torch.from_numpy(tensor).unsqueeze(0).float()
        if self.policy is not None:
            tensor = self.policy.to(tensor)
        start = time.time()
        with torch.no_grad():
            with self.policy.autocast() if self.fp16 and self.policy is not None else nullcontext():
                outputs = self.model(tensor)
            if self.decoder is not None:
                outputs = self.decoder(outputs, dtype=outputs.dtype)
            outputs = postprocess(outputs.float(), self.num_classes, self.confthre, self.nmsthre,
                                  class_agnostic=True)
        logger.info(f"Infer time: {time.time() - start:.4f}s")
        return outputs, img_info

    def detections(self, output: Optional[torch.Tensor], img_info: Dict, cls_conf: float = 0.35) -> List[Dict]:
        """Detections at or above cls_conf in original-image pixels: name, score, box (x1, y1, x2, y2)."""
        if output is None or len(output) == 0:
            return []
        output = output.cpu()
        boxes = (output[:, 0:4] / img_info["ratio"]).tolist()
        scores = (output[:, 4] * output[:, 5]).tolist()
        cls_ids = output[:, 6].long().tolist()
        return [{"name": self.cls_names[c], "score": s, "box": [round(v, 1) for v in b]}
                for b, s, c in zip(boxes, scores, cls_ids) if s >= cls_conf]

    def visual(self, output: Optional[torch.Tensor], img_info: Dict, cls_conf: float = 0.35) -> np.ndarray:
        img = img_info["raw_img"]
        if output is None:
            return img
        output = output.cpu()
        boxes = output[:, 0:4] / img_info["ratio"]
        scores = output[:, 4] * output[:, 5]
        return vis(img, boxes, scores, output[:, 6], cls_conf, self.cls_names)


def get_image_list(path: str) -> List[str]:
    """Image files under `path` (walked recursively), sorted."""
    found = []
    for root, _, files in os.walk(path):
        found.extend(os.path.join(root, name) for name in files if os.path.splitext(name)[1].lower() in IMAGE_EXT)
    return sorted(found)


def image_demo(predictor: Predictor, vis_folder: str, path: str, current_time: time.struct_time,
               save_result: bool) -> List[Dict]:
    """Detect on one image or every image of a folder; returns per-image detections."""
    files = get_image_list(path) if os.path.isdir(path) else [path]
    results = []
    for image_name in files:
        outputs, img_info = predictor.inference(image_name)
        found = predictor.detections(outputs[0], img_info, predictor.confthre)
        for det in found:
            logger.info(f"{image_name}: {det['name']} {det['score']:.3f} {det['box']}")
        result_image = predictor.visual(outputs[0], img_info, predictor.confthre)
        saved = None
        if save_result:
            save_folder = os.path.join(vis_folder, time.strftime("%Y_%m_%d_%H_%M_%S", current_time))
            os.makedirs(save_folder, exist_ok=True)
            saved = os.path.join(save_folder, os.path.basename(image_name))
            logger.info(f"Saving detection result in {saved}")
            cv2.imwrite(saved, result_image)
        results.append({"image": image_name, "detections": found, "saved": saved})
    return results


def imageflow_demo(predictor: Predictor, vis_folder: str, current_time: time.struct_time, args) -> Optional[str]:
    """Video file or webcam; writes an mp4 with --save_result, otherwise shows a window (ESC/q quits)."""
    cap = cv2.VideoCapture(args.path if args.demo == "video" else args.camid)
    if not cap.isOpened():
        source = args.path if args.demo == "video" else f"camera {args.camid}"
        raise SystemExit(f"cannot open {source}: check the path/camera id and that OpenCV can decode it")
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    save_path, writer = None, None
    if args.save_result:
        save_folder = os.path.join(vis_folder, time.strftime("%Y_%m_%d_%H_%M_%S", current_time))
        os.makedirs(save_folder, exist_ok=True)
        name = os.path.basename(args.path) if args.demo == "video" else "camera.mp4"
        save_path = os.path.join(save_folder, name)
        logger.info(f"video save_path is {save_path}")
        writer = cv2.VideoWriter(save_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        outputs, img_info = predictor.inference(frame)
        result_frame = predictor.visual(outputs[0], img_info, predictor.confthre)
        if writer is not None:
            writer.write(result_frame)
            continue
        cv2.namedWindow("yolox", cv2.WINDOW_NORMAL)
        cv2.imshow("yolox", result_frame)
        if cv2.waitKey(1) in (27, ord("q"), ord("Q")):
            break
    cap.release()
    if writer is not None:
        writer.release()
    return save_path


def main(exp, args):
    if not args.experiment_name:
        args.experiment_name = exp.exp_name
    file_name = os.path.join(exp.output_dir, args.experiment_name)
    vis_folder = os.path.join(file_name, "vis_res") if args.save_result else None
    if args.trt:
        args.device = "gpu"
    policy = policy_from_args(args)
    logger.info(f"Args: {args}")
    exp.test_conf = args.conf
    exp.nmsthre = args.nms
    if args.tsize is not None:
        exp.test_size = (args.tsize, args.tsize)

    if args.trt:
        model = exp.get_model()
    else:
        model = load_run_model(exp, args.ckpt, file_name, trust_pickle=args.trust_ckpt)
    logger.info(f"Model Summary: {get_model_info(model, exp.test_size)}")
    model = policy.to(model)
    model.eval()
    if args.fuse:
        logger.info("\tFusing model...")
        model = fuse_model(model)
    trt_file, decoder = None, None
    if args.trt:
        trt_file = os.path.join(file_name, "model_trt.pth")
        if not os.path.exists(trt_file):
            raise SystemExit(f"{trt_file} not found: convert the model with tools/trt.py first")
        model.head.decode_in_inference = False
        decoder = model.head.decode_outputs
    predictor = Predictor(model, exp, exp_class_names(exp), trt_file, decoder, policy,
                          fp16=args.fp16 and policy.amp_dtype is not None, legacy=args.legacy)
    current_time = time.localtime()
    if args.demo == "image":
        return image_demo(predictor, vis_folder, args.path, current_time, args.save_result)
    if args.demo in ("video", "webcam"):
        return imageflow_demo(predictor, vis_folder, current_time, args)
    raise SystemExit(f"unknown demo type {args.demo!r}: use image, video or webcam")


def run(argv=None):
    args = make_parser().parse_args(argv)
    exp = get_exp(args.exp_file, args.name)
    return main(exp, args)


def cli() -> None:
    """The `yolox-demo` command: run() with user errors as one line and exit status 2."""
    run_cli(run)


if __name__ == "__main__":
    cli()
