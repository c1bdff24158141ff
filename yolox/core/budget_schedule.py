"""A training run fitted to a wall-clock budget (`--time`): the trainer's side of yolox/core/time_budget.py.

`BudgetRun` measures the pace through the trainer's hooks and hands back a new plan when one is due;
`fit_exp_to_plan` turns a plan into the exp's schedule fields (epochs, evaluation interval, warmup, the
no-augmentation tail and, when the exp asks for it, the EMA), each scaled from the exp's own values.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from loguru import logger

from yolox.core.time_budget import PACE_SKIP, Pace, TimeKeeper, TimePlan, format_duration

__all__ = ["ScheduleOrigin", "BudgetRun", "fit_exp_to_plan", "fitted_ema", "eval_estimate"]

# warmup may take at most this share of a fitted run: a long warmup in a short budget only wastes it
MAX_WARMUP_SHARE = 0.2
# EMA averaging window (1 / (1 - decay), in updates) and ramp at most this share of the run's updates
EMA_WINDOW_SHARE = 0.1
# until the first evaluation is timed: one eval batch costs about one training step (twice the images,
# forward only), plus a fixed cost for the COCO evaluation itself
EVAL_FIXED_SECONDS = 2.0


@dataclass(frozen=True)
class ScheduleOrigin:
    """The exp's schedule as written, before any plan changed it; every plan scales from these."""

    max_epoch: int
    warmup_epochs: float
    no_aug_epochs: int
    ema_decay: Optional[float]
    ema_ramp_updates: Optional[float]

    @classmethod
    def of(cls, exp) -> "ScheduleOrigin":
        return cls(int(exp.max_epoch), float(exp.warmup_epochs), int(exp.no_aug_epochs),
                   getattr(exp, "ema_decay", None), getattr(exp, "ema_ramp_updates", None))


def fit_exp_to_plan(exp, plan: TimePlan, origin: ScheduleOrigin, iters_per_epoch: int) -> Dict[str, object]:
    """Set the exp's schedule fields for `plan`; returns {field: new value} of what changed."""
    epochs = plan.max_epoch
    fields: Dict[str, object] = {
        "max_epoch": epochs,
        "eval_interval": plan.eval_interval,
        "warmup_epochs": round(min(origin.warmup_epochs, MAX_WARMUP_SHARE * epochs), 3),
        "no_aug_epochs": min(round(origin.no_aug_epochs * epochs / max(origin.max_epoch, 1)), epochs - 1),
    }
    if getattr(exp, "ema_fit_to_schedule", False) and origin.ema_decay is not None:
        fields["ema_decay"], fields["ema_ramp_updates"] = fitted_ema(
            origin.ema_decay, origin.ema_ramp_updates, epochs * iters_per_epoch)
    changed = {name: value for name, value in fields.items() if getattr(exp, name, None) != value}
    for name, value in changed.items():
        setattr(exp, name, value)
    return changed


def fitted_ema(decay: float, ramp_updates: Optional[float], total_updates: int) -> Tuple[float, float]:
    """(decay, ramp) whose averaging window and ramp are at most EMA_WINDOW_SHARE of the run's updates, so the
    EMA of a short run averages its own late weights rather than its start."""
    window = max(1.0, EMA_WINDOW_SHARE * total_updates)
    return round(min(decay, 1.0 - 1.0 / window), 6), round(min(ramp_updates or window, window), 1)


def eval_estimate(eval_batches: int, iter_seconds: float) -> float:
    """Seconds of one evaluation before one has been timed."""
    return eval_batches * iter_seconds + EVAL_FIXED_SECONDS


class BudgetRun:
    """One run's budget: the keeper, the exp's original schedule and the cap on epochs (None: what fits)."""

    def __init__(self, keeper: TimeKeeper, origin: ScheduleOrigin, max_epochs: Optional[int]) -> None:
        self.keeper = keeper
        self.origin = origin
        self.max_epochs = max_epochs
        self.stopped_early = False

    def due_plan(self, epochs_done: int, iters_per_epoch: int, eval_batches: int) -> Optional[TimePlan]:
        """A new plan when the pace is first known or has drifted; None otherwise."""
        timed = self.keeper.measured_pace(iters_per_epoch, 0.0)
        if timed is None:
            return None
        evaluation = self.keeper.eval_seconds
        if evaluation is None:
            evaluation = eval_estimate(eval_batches, timed.iter_seconds)
        pace = Pace(timed.iter_seconds, evaluation, iters_per_epoch)
        replans = self.keeper.replans
        plan = self.keeper.replan(pace, epochs_done, max_epochs=self.max_epochs)
        if plan is not None:
            again = " (planned again: the measured pace drifted)" if self.keeper.replans > replans else ""
            logger.info(f"{plan.line()}{again}")
        return plan

    def next_eval_seconds(self, eval_batches: int) -> Optional[float]:
        """What the coming evaluation should take: the last one timed, else the estimate from the median step
        (the first steps, which build kernels and start the loader, left out); None before any such step."""
        if self.keeper.eval_seconds is not None:
            return self.keeper.eval_seconds
        timed = sorted(self.keeper.iter_times[PACE_SKIP:][-50:])
        return eval_estimate(eval_batches, timed[len(timed) // 2]) if timed else None

    def closing_line(self) -> str:
        spent, budget = self.keeper.spent(), self.keeper.budget_seconds
        ended = "inside it" if spent <= budget else f"{spent - budget:.0f} s over it"
        if self.stopped_early:
            ended += ", the last epoch cut short to stay inside"
        return f"time: {format_duration(spent)} of the {format_duration(budget)} budget used, {ended}"
