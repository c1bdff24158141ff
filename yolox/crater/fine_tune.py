"""The fine-tuning plan: what changes when a crater run starts from pretrained (COCO) weights.

Pretrained weights already detect edges and blobs; what a short fine-tuning run needs is to keep them and to
spend its steps on craters. Each choice returns its reason for the logged plan; fields set on the command
line are kept as given. With `--time` the trainer fits the epochs (and, through `ema_fit_to_schedule`,
the EMA) to the budget once the step is timed.
"""
from typing import Dict, Set

from yolox.core.budget import fitted_ema
from yolox.crater.recipe import iterations_per_epoch

__all__ = ["FINE_TUNE_WARMUP_EPOCHS", "apply_fine_tune_model", "apply_fine_tune_schedule"]

# one epoch of warmup: the first large steps would disturb trained weights, a longer ramp only spends budget
FINE_TUNE_WARMUP_EPOCHS = 1.0


def apply_fine_tune_model(exp, overridden: Set[str]) -> Dict[str, str]:
    """Model choices before the model is built: every head level keeps its COCO weights; {field: reason}."""
    if "p2_head" in overridden or not exp.p2_head:
        return {}
    exp.p2_head = False
    return {"p2_head": "fine-tuning: COCO weights cover the stride 8-32 levels; a stride-4 level would start "
                       "from random weights"}


def apply_fine_tune_schedule(exp, batch: int, train_images: int, overridden: Set[str]) -> Dict[str, str]:
    """Warmup and EMA of a fine-tuning run; {field: reason} of what it set."""
    reasons = {}
    if "warmup_epochs" not in overridden and exp.warmup_epochs > FINE_TUNE_WARMUP_EPOCHS:
        exp.warmup_epochs = FINE_TUNE_WARMUP_EPOCHS
        reasons["warmup_epochs"] = ("fine-tuning: one epoch protects the trained weights from the first large "
                                    "steps; a longer warmup only spends the schedule")
    if getattr(exp, "ema", False) and not {"ema_decay", "ema_ramp_updates"} & overridden:
        exp.ema_fit_to_schedule = True
        updates = exp.max_epoch * iterations_per_epoch(train_images, batch)
        exp.ema_decay, exp.ema_ramp_updates = fitted_ema(exp.ema_decay, exp.ema_ramp_updates, updates)
        reason = ("fine-tuning: the EMA averages at most a tenth of the run's steps, so a short run's EMA holds "
                  "its own late weights (refitted when --time plans the epochs)")
        reasons.update(ema_decay=reason, ema_ramp_updates=reason)
    return reasons
