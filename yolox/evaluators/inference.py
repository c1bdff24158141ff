"""The evaluators' shared inference pass: forward, optional decode, postprocess, timing, gathering."""
import contextlib
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from yolox.utils.boxes import postprocess
from yolox.utils.dist import gather, is_main_process, synchronize, time_synchronized
from yolox.utils.progress import Progress

__all__ = ["run_inference", "gather_results", "timing_line"]


def run_inference(model, dataloader, collect: Callable, num_classes: int, confthre: float, nmsthre: float,
                  half: bool = False, trt_file: Optional[str] = None, decoder=None,
                  test_size: Sequence[int] = (640, 640), policy=None, max_dets: Optional[int] = None,
                  amp: bool = False) -> Tuple[float, float, int]:
    """Run `model` over `dataloader`, handing each batch's postprocessed outputs to
    `collect(outputs, info_imgs, ids)`; returns (forward s, NMS s, timed batches).

    Tensors go to policy.device, else to the model's device; float16 when `half`. With `amp` the forward runs
    under policy.autocast(). Postprocess runs in float32 and keeps at most `max_dets` per image and class.
    """
    if amp and policy is None:
        raise ValueError("run_inference(amp=True) needs the run's device policy: pass policy=")
    device = policy.device if policy is not None else _parameter_device(model)
    dtype = torch.float16 if half else torch.float32
    non_blocking = bool(policy is not None and policy.non_blocking)
    # the device check found decoding + NMS disagreeing with the CPU on this device (policy decision)
    postprocess_on_cpu = bool(getattr(policy, "postprocess_on_cpu", False))
    model = model.eval()
    if half:
        model = model.half()
    if trt_file is not None:
        model = _load_trt_module(model, trt_file, test_size, device, dtype)

    inference_time = nms_time = 0.0
    n_batches = len(dataloader)
    # the real stderr: setup_logger routes sys.stderr into loguru, which is no terminal
    progress = Progress(n_batches, desc="evaluating", unit="batch", stream=sys.__stderr__) \
        if is_main_process() else None
    with torch.no_grad(), progress or contextlib.nullcontext():
        for batch_index, (imgs, _, info_imgs, ids) in enumerate(dataloader):
            imgs = imgs.to(device=device, dtype=dtype, non_blocking=non_blocking)
            start = time.time()
            with policy.autocast() if amp else contextlib.nullcontext():
                outputs = model(imgs)
            if decoder is not None:
                outputs = decoder(outputs, dtype=outputs.dtype)
            infer_end = time_synchronized(policy)
            if postprocess_on_cpu:
                outputs = outputs.cpu()
            outputs = postprocess(outputs.float(), num_classes, confthre, nmsthre, max_dets=max_dets)
            nms_end = time_synchronized(policy)
            # The last batch may be short, so it is left out of the per-image timing.
            if batch_index < n_batches - 1:
                inference_time += infer_end - start
                nms_time += nms_end - infer_end
            collect(outputs, info_imgs, ids)
            if progress is not None:
                progress.update()
    return inference_time, nms_time, max(n_batches - 1, 1)


def gather_results(per_image: Sequence[Dict], statistics: Sequence[float]) -> Tuple[List[Dict], List[float]]:
    """Merge every rank's per-image dicts on rank 0 and sum the timing statistics.

    Keying by image means the images DistributedSampler repeats to pad the last rank count once.
    """
    synchronize()
    gathered = gather((tuple(per_image), tuple(statistics)), dst=0)
    merged: List[Dict] = [{} for _ in per_image]
    total = [0.0] * len(statistics)
    for rank_dicts, rank_stats in gathered:
        for target, source in zip(merged, rank_dicts):
            target.update(source)
        total = [acc + float(value) for acc, value in zip(total, rank_stats)]
    return merged, total


def timing_line(statistics: Sequence[float], batch_size: int) -> str:
    """The summary's first line: per-image forward, NMS and total milliseconds."""
    inference_time, nms_time, n_samples = (float(value) for value in statistics)
    per_image_ms = 1000.0 / (n_samples * batch_size)
    a_infer, a_nms = inference_time * per_image_ms, nms_time * per_image_ms
    return (f"Average forward time: {a_infer:.2f} ms, Average NMS time: {a_nms:.2f} ms, "
            f"Average inference time: {a_infer + a_nms:.2f} ms\n")


def _parameter_device(model) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _load_trt_module(model, trt_file: str, test_size: Sequence[int], device: torch.device, dtype: torch.dtype):
    """TensorRT replacement of `model` (CUDA only); the torch model runs once first, as torch2trt expects."""
    from torch2trt import TRTModule  # lazy: torch2trt is optional, needed only for --trt

    model_trt = TRTModule()
    model_trt.load_state_dict(torch.load(trt_file, map_location=device, weights_only=True))
    model(torch.ones(1, 3, test_size[0], test_size[1], device=device, dtype=dtype))
    return model_trt
