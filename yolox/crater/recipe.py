"""The from-scratch crater recipe: model size, schedule length, warmup and optimizer from the size of the data.

The plan is pure functions of counts, each returning its value and the reason the plan logs; the
`apply_scratch_*` functions set the chosen values on an exp, keeping what the command line set.
Fine-tuning from COCO weights keeps the exp's own settings; these apply when there are no weights
to start from.
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Set, Tuple

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
# that gain was measured at 60 epochs; a --time budget that affords fewer than half of them with the level goes
# without it, since its slower step then costs epochs an unconverged model needs more (a rule, not a measurement)
P2_MIN_BUDGET_EPOCHS = 30


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


def p2_under_budget(epochs_with: float, epochs_without: float, seconds_with: float, seconds_without: float
                    ) -> Choice:
    """Keep the stride-4 level when the --time budget affords P2_MIN_BUDGET_EPOCHS epochs with it."""
    cost = (f"a step takes {seconds_with:.3f} s with it, {seconds_without:.3f} s without: {epochs_with:.0f} "
            f"against {epochs_without:.0f} epochs in the budget")
    if epochs_with >= P2_MIN_BUDGET_EPOCHS:
        return Choice(True, f"from scratch: the stride-4 level finds the small craters ({P2_HEAD_GAIN}); {cost}")
    return Choice(False, f"--time: {cost}, fewer than {P2_MIN_BUDGET_EPOCHS} with the stride-4 level, whose gain was "
                         "measured at 60 epochs: trained without it")


def apply_scratch_model(exp, overridden: Set[str]) -> Dict[str, str]:
    """The model choices of a from-scratch run, made before anything builds the model; {field: reason}."""
    if "p2_head" in overridden:
        return {}
    choice = scratch_p2_head(bool(exp.p2_head))
    exp.p2_head = choice.value
    return {"p2_head": choice.reason}


def apply_scratch_schedule(exp, batch: int, train_images: int, overridden: Set[str]) -> Dict[str, str]:
    """Epochs, no-mosaic epochs, warmup and optimizer for a from-scratch run; {field: reason} of what it set.

    Fields set on the command line are kept as given.
    """
    reasons = {}
    exp_epochs = exp.max_epoch
    if "max_epoch" not in overridden:
        choice = scratch_epochs(train_images, batch)
        exp.max_epoch, reasons["max_epoch"] = choice.value, choice.reason
        if "no_aug_epochs" not in overridden:
            choice = scaled_no_aug_epochs(exp.no_aug_epochs, exp_epochs, exp.max_epoch)
            exp.no_aug_epochs, reasons["no_aug_epochs"] = choice.value, choice.reason
    if "warmup_epochs" not in overridden:
        choice = scratch_warmup_epochs(exp.warmup_epochs, train_images, batch, exp.max_epoch)
        exp.warmup_epochs, reasons["warmup_epochs"] = choice.value, choice.reason
    if "optimizer_type" not in overridden and hasattr(exp, "optimizer_type"):
        choice = scratch_optimizer(exp.optimizer_type, exp.max_epoch * iterations_per_epoch(train_images, batch))
        exp.optimizer_type, reasons["optimizer_type"] = choice.value, choice.reason
        if exp.optimizer_type == "adamw" and "basic_lr_per_img" not in overridden:
            choice = adamw_lr_per_img(batch)
            exp.basic_lr_per_img, reasons["basic_lr_per_img"] = choice.value, choice.reason
    return reasons


RECIPE_FIELDS = ("p2_head", "max_epoch", "warmup_epochs", "no_aug_epochs", "no_aug_scale", "l1_in_no_aug",
                 "optimizer_type", "basic_lr_per_img", "weight_decay", "momentum", "ema_decay", "ema_ramp_updates",
                 "mosaic_prob", "mosaic_scale", "mixup_prob", "enable_mixup", "multiscale_range", "random_size",
                 "center_radius", "input_size", "seed")


def recipe_lines(exp, overridden: Set[str], reasons: Dict[str, str]) -> List[str]:
    """One line per recipe field the exp has: its value and where it came from."""
    lines = []
    for field in RECIPE_FIELDS:
        if not hasattr(exp, field):
            continue
        source = reasons.get(field) or ("set on the command line" if field in overridden else "the exp's")
        lines.append(f"{field}: {getattr(exp, field)!r}  ({source})")
    return lines
