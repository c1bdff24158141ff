"""The from-scratch crater recipe: model size, schedule length, warmup and optimizer from the size of the data.

Pure functions of counts, each returning its value and the reason the plan logs. Fine-tuning from
COCO weights keeps the exp's own settings; these apply when there are no weights to start from.
"""
import math
from dataclasses import dataclass
from typing import Tuple

# below this many training images the 25M parameters of yolox-m overfit from scratch; yolox-s (9M) learns
MEDIUM_MODEL_MIN_IMAGES = 2000
# about what 60 epochs of THEMIS (777 images) at batch 16 take: enough to converge from scratch
TARGET_ITERATIONS = 3000
EPOCH_BOUNDS = (60, 300)
# short warmups from random weights blow up the first steps (Ultralytics' floor is 100 iterations too)
MIN_WARMUP_ITERATIONS = 100
# AdamW below this many steps, the exp's optimizer (SGD) above: Ultralytics draws its line there too
ADAMW_MAX_ITERATIONS = 10000
# AdamW's learning rate at batch 16, measured on THEMIS (60 epochs from scratch: AP50 0.734 vs SGD's 0.646)
ADAMW_LR = 0.0025
ADAMW_LR_BATCH = 16


# the stride-4 level from scratch, measured on one H200 with AdamW
P2_HEAD_GAIN = "final AP50 0.712 +- 0.018 with it, 0.639 +- 0.021 without (THEMIS, 60 epochs, 3 seeds)"


@dataclass(frozen=True)
class Choice:
    value: object
    reason: str


def scratch_model_size(train_images: int) -> Choice:
    """"s" or "m" for a dataset of `train_images` images trained from random weights."""
    if train_images < MEDIUM_MODEL_MIN_IMAGES:
        return Choice("s", f"from scratch on {train_images} training images (< {MEDIUM_MODEL_MIN_IMAGES}): "
                           "yolox-s; yolox-m has too many parameters for so little data")
    return Choice("m", f"from scratch on {train_images} training images (>= {MEDIUM_MODEL_MIN_IMAGES}): yolox-m")


def iterations_per_epoch(train_images: int, batch: int) -> int:
    return max(1, math.ceil(train_images / max(batch, 1)))


def scratch_epochs(train_images: int, batch: int, target_iterations: int = TARGET_ITERATIONS,
                   bounds: Tuple[int, int] = EPOCH_BOUNDS) -> Choice:
    """Epochs giving about `target_iterations` optimizer steps, clamped to `bounds`."""
    per_epoch = iterations_per_epoch(train_images, batch)
    wanted = round(target_iterations / per_epoch)
    epochs = min(max(wanted, bounds[0]), bounds[1])
    clamp = "" if epochs == wanted else f", clamped to {bounds[0]}..{bounds[1]}"
    return Choice(epochs, f"from scratch: ~{target_iterations} steps at {per_epoch} steps/epoch "
                          f"({train_images} images / batch {batch}){clamp}")


def scaled_no_aug_epochs(exp_no_aug: int, exp_epochs: int, epochs: int) -> Choice:
    """The exp's no-mosaic share of the schedule, kept for a schedule of `epochs`."""
    if exp_epochs <= 0:
        return Choice(exp_no_aug, "the exp's value")
    value = round(exp_no_aug * epochs / exp_epochs)
    return Choice(value, f"the exp's share of the schedule ({exp_no_aug}/{exp_epochs} epochs) kept over {epochs}")


def scratch_warmup_epochs(exp_warmup: int, train_images: int, batch: int, max_epoch: int,
                          min_iterations: int = MIN_WARMUP_ITERATIONS) -> Choice:
    """The exp's warmup, lengthened to about `min_iterations` steps when its epochs are short
    (at most a fifth of the schedule)."""
    per_epoch = iterations_per_epoch(train_images, batch)
    needed = min(round(min_iterations / per_epoch), max_epoch // 5)
    if needed <= exp_warmup:
        return Choice(exp_warmup, f"the exp's ({exp_warmup} epochs = {exp_warmup * per_epoch} steps)")
    return Choice(needed, f"from scratch: at least ~{min_iterations} warmup steps at {per_epoch} steps/epoch")


def scratch_optimizer(exp_optimizer: str, iterations: int, max_iterations: int = ADAMW_MAX_ITERATIONS) -> Choice:
    """"adamw" for a schedule of fewer than `max_iterations` steps from random weights, else the exp's."""
    if iterations < max_iterations:
        return Choice("adamw", f"from scratch, {iterations} steps (< {max_iterations}): AdamW learns faster "
                               "than SGD in a short schedule")
    return Choice(exp_optimizer, f"the exp's: {iterations} steps (>= {max_iterations}) is a long schedule")


def adamw_lr_per_img(batch: int) -> Choice:
    """Per-image LR giving ADAMW_LR at ADAMW_LR_BATCH, square-root scaled with the batch (Adam's usual rule)."""
    lr = ADAMW_LR * math.sqrt(max(batch, 1) / ADAMW_LR_BATCH)
    return Choice(lr / max(batch, 1), f"AdamW: {ADAMW_LR:g} at batch {ADAMW_LR_BATCH}, square-root scaled "
                                      f"to batch {batch} ({lr:.3e})")


def scratch_p2_head(exp_p2_head: bool) -> Choice:
    """The stride-4 head level for a from-scratch crater run: on, since small craters are most of a crater set."""
    if exp_p2_head:
        return Choice(True, "the exp's")
    return Choice(True, f"from scratch: the stride-4 level finds the small craters, {P2_HEAD_GAIN}; it costs "
                        "step time (p2_head False to drop it)")
