"""The training log's lines: the run's setup at its start, and the progress line (position, memory, times, losses,
learning rate, throughput and ETA)."""
import datetime
from typing import Dict, Tuple

from loguru import logger

from yolox.core.guards import NonFiniteGuard
from yolox.core.options import RunOptions
from yolox.utils.device import DevicePolicy
from yolox.utils.metric import MeterBuffer

__all__ = ["progress_line", "log_run_setup"]


def progress_line(meter: MeterBuffer, epoch: int, max_epoch: int, iteration: int, max_iter: int, left_iters: int,
                  batch_size: int, input_size: int, memory: str, skipped_images: int, guard: NonFiniteGuard
                  ) -> Tuple[str, Dict[str, float], float]:
    """(the line, the losses it shows, the learning rate) from the meters of the last print interval."""
    eta = datetime.timedelta(seconds=int(meter["iter_time"].global_avg * left_iters))
    times = ", ".join(f"{name}: {value.avg:.3f}s" for name, value in meter.get_filtered_meter("time").items())
    losses = {name: value.latest for name, value in meter.get_filtered_meter("loss").items()}
    loss_text = ", ".join(f"{name}: {value:.1f}" for name, value in losses.items())
    lr = meter["lr"].latest
    img_per_s = batch_size / max(meter["iter_time"].avg, 1e-9)
    extra = f", skipped images: {skipped_images}" if skipped_images else ""
    if guard.counts.skipped_steps:
        extra += f", {guard.counts.line()}"
    line = (f"epoch: {epoch + 1}/{max_epoch}, iter: {iteration + 1}/{max_iter}, {memory}, {times}, {loss_text}, "
            f"lr: {lr:.3e}, size: {input_size:d}, {img_per_s:.1f} img/s{extra}, ETA: {eta}")
    return line, losses, lr


def log_run_setup(options: RunOptions, exp, policy: DevicePolicy) -> None:
    """The run's options, the exp's table and every device decision with its reason, at the start of the log."""
    logger.info(f"options: {options}")
    logger.info(f"exp value:\n{exp}")
    for line in policy.describe():
        logger.info(f"device policy: {line}")
