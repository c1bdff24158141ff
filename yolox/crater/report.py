"""What a crater run tells its user: the plan before training, the plots and closing lines after it."""
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
from loguru import logger

from yolox.utils.eval_history import best_and_final, read_eval_history
from yolox.utils.optional import MissingExtra
from yolox.utils.plots import history_to_series, save_prediction_grid, save_training_curves

RUN_SUMMARY_FILE = "run_summary.json"
PREDICTION_IMAGES = 12


def batch_line(batch: int, decision, world_size: int, policy) -> str:
    """The plan's batch line; with several processes it says how the total comes from one device's measurement."""
    if world_size == 1:
        return f"batch: {batch}  ({decision.reason})"
    return (f"batch: per device {decision.batch_size} x {world_size} devices = {batch}  (measured once on "
            f"{policy.device} before the processes start, the other GPUs taken to be alike; {decision.reason})")


def log_plan(policy, batch: int, decision, exp, world_size: int, recipe: Sequence[str] = ()) -> None:
    """The decisions a Mac or GPU user asks about first, each with its reason."""
    amp = "off" if policy.amp_dtype is None else str(policy.amp_dtype).replace("torch.", "")
    ddp = f"on ({world_size} processes, {policy.dist_backend})" if world_size > 1 else "off"
    if world_size > 1 or policy.dist_backend is None:
        ddp_reason = policy.reasons["dist_backend"]
    else:
        ddp_reason = "one process: -d not given"
    lines = [
        f"device: {policy.device} (rules: {policy.kind})  ({policy.reasons['device']})",
        f"AMP: {amp}  ({policy.reasons['amp_dtype']})",
        f"DDP: {ddp}  ({ddp_reason})",
        f"pin_memory: {'on' if policy.pin_memory else 'off'}  ({policy.reasons['pin_memory']})",
        f"cache release every: {policy.cache_release_every or 'never'}  ({policy.reasons['cache_release_every']})",
        batch_line(batch, decision, world_size, policy),
        f"learning rate: {exp.basic_lr_per_img * batch:.3e} = {exp.basic_lr_per_img:.3e} per image x {batch}",
        *recipe,
    ]
    for line in lines:
        logger.info(f"crater plan: {line}")


# the evaluation figures the curves show (eval_history rows carry more: counts, flags, the CPU cross-check)
AP_CURVES = ("epoch", "AP50", "AP50:95")


def save_plots(run_dir: str, title: str, loss_history: List[dict], eval_rows: List[dict],
               outputs: Dict[int, dict], dataset) -> List[str]:
    """Loss/AP curves and a grid of the first validation images' predictions in run_dir; the paths written.

    `outputs` maps an image id to its detections ({"bboxes": xyxy rows, "scores"}); `dataset` is the
    COCO-style evaluation dataset they came from.
    """
    written = []
    try:
        written.append(str(save_training_curves(history_to_series(loss_history, "iteration"),
                                                history_to_series([{key: row[key] for key in AP_CURVES}
                                                                   for row in eval_rows], "epoch"),
                                                os.path.join(run_dir, "curves.png"), title)))
    except MissingExtra as missing:
        logger.warning(f"curves.png skipped: {missing}")
    images, predictions, truths = [], [], []
    for index, image_id in enumerate(dataset.ids[:PREDICTION_IMAGES]):
        ann_ids = dataset.coco.getAnnIds(imgIds=[int(image_id)], iscrowd=False)
        xywh = np.array([a["bbox"] for a in dataset.coco.loadAnns(ann_ids)], np.float64).reshape(-1, 4)
        result = outputs.get(int(image_id), {"bboxes": [], "scores": []})
        image = dataset.load_image(index)
        height, width = image.shape[:2]
        # an early model's boxes can reach far outside the image, past what the drawing's int32 holds
        boxes = np.clip(np.asarray(result["bboxes"], np.float64).reshape(-1, 4), 0, [width, height, width, height])
        preds = np.hstack([boxes, np.asarray(result["scores"], np.float64).reshape(-1, 1)])
        images.append(image)
        predictions.append(preds)
        truths.append(np.hstack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]]))
    if images:
        written.append(str(save_prediction_grid(images, predictions, truths, os.path.join(run_dir, "predictions.png"))))
    return written


def crater_figures(run_dir: str, trainer, max_epoch: int, batch: int, wall_seconds: float) -> dict:
    """What a crater run returns: rank 0's figures when it trained in this process (best and final AP, the
    plots), and the run summary when evaluations were recorded."""
    figures: dict = {}
    if trainer is not None and trainer.rank == 0:
        figures = {"best_AP50_95": trainer.best_ap, "best_epoch": trainer.best_epoch,
                   "plots": list(getattr(trainer, "plots", []))}
        if trainer.eval_history:
            figures.update(AP50=trainer.eval_history[-1]["AP50"], AP50_95=trainer.eval_history[-1]["AP50:95"])
    summary = report_run(run_dir, max_epoch, batch, wall_seconds)
    if summary:
        figures["summary"] = summary
    return figures


def report_run(run_dir: str, max_epoch: int, batch: int, wall_seconds: float) -> Optional[dict]:
    """Closing lines (best and final AP, their epochs and checkpoints) and run_summary.json; None without evaluations."""
    rows = read_eval_history(run_dir)
    picked = best_and_final(rows)
    if picked is None:
        logger.warning(f"no evaluation recorded in {run_dir}: no AP to report")
        return None
    final = rows[-1]
    summary = {
        "best": dict(picked["best"], ckpt=os.path.join(run_dir, "best_ckpt.pth")),
        "final": dict(picked["final"], ckpt=os.path.join(run_dir, "last_epoch_ckpt.pth")),
        "max_epoch": max_epoch, "batch": batch,
        "img_per_s": final["samples_seen"] / max(final["train_seconds"], 1e-9),
        "train_seconds": final["train_seconds"], "wall_seconds": round(wall_seconds, 3),
    }
    write_json_atomic(os.path.join(run_dir, RUN_SUMMARY_FILE), summary)
    for name in ("best", "final"):
        row = summary[name]
        line = (f"{name} AP50 {row['AP50']:.3f}, AP50:95 {row['AP50:95']:.3f} at epoch {row['epoch']} "
                f"({row['ckpt']})")
        logger.info(line)
        print(line, flush=True)
    return summary


def write_json_atomic(path: str, data: dict) -> None:
    """Write under a temporary name, flush, rename: a killed run never leaves half a file."""
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        json.dump(data, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
