"""Training in the time the user has (`--time 45m`): fit epochs and evaluations to a wall-clock budget.

The pace is measured, never guessed: the trainer times its first iterations (augmentation and data wait
included) and its evaluations, fits the schedule to what is left of the budget, and plans again when the
measured pace drifts. A guard inside the epoch stops early when the next evaluation would overrun.
"""
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

from yolox.utils.durations import TimeBudgetError, format_duration, parse_duration

__all__ = ["TimeBudgetError", "parse_duration", "format_duration", "Pace", "TimePlan", "fit_schedule",
           "TimeKeeper"]

# share of the budget the plan fills: checkpoint writes, logging and the closing report need the rest
FILL_FRACTION = 0.93
# evaluations a planned run makes (more only cost time; fewer make "best" a coarse choice)
TARGET_EVALUATIONS = 10
# a measured pace this far from the planned one triggers a new plan
DRIFT = 0.2
# iterations timed before the first plan; the first few (allocator warm-up, loader start) are not counted
PACE_ITERS = 12
PACE_SKIP = 2

@dataclass(frozen=True)
class Pace:
    """Measured seconds of one training iteration and of one evaluation."""

    iter_seconds: float
    eval_seconds: float
    iters_per_epoch: int

    @property
    def epoch_seconds(self) -> float:
        return self.iter_seconds * self.iters_per_epoch


@dataclass(frozen=True)
class TimePlan:
    """Epochs (in total, counting those already done) and the evaluation interval that fit the budget."""

    budget_seconds: float
    max_epoch: int
    eval_interval: int
    evaluations: int
    pace: Pace

    def line(self) -> str:
        return (f"time: {format_duration(self.budget_seconds)} -> {self.max_epoch} epochs at "
                f"{_seconds(self.pace.epoch_seconds)} s/epoch, {self.evaluations} evaluations "
                f"at {_seconds(self.pace.eval_seconds)} s each")


def _seconds(value: float) -> str:
    return f"{value:.1f}" if value >= 0.1 else f"{value:.3f}"


def _evaluations(epochs: int, target: int) -> int:
    return min(max(epochs, 0), target)


def fit_schedule(budget_seconds: float, seconds_left: float, pace: Pace, epochs_done: int = 0,
                 target_evaluations: int = TARGET_EVALUATIONS, max_epochs: Optional[int] = None) -> TimePlan:
    """The most further epochs whose training and evaluations fit FILL_FRACTION of `seconds_left`.

    At least one more epoch is always planned (its guard stops it early when even that does not fit).
    """
    usable = seconds_left * FILL_FRACTION
    epochs = max(1, int(usable / max(pace.epoch_seconds, 1e-9)))
    while epochs > 1 and epochs * pace.epoch_seconds + _evaluations(epochs, target_evaluations) * pace.eval_seconds > usable:
        epochs -= 1
    if max_epochs is not None:
        epochs = max(1, min(epochs, max_epochs - epochs_done))
    evaluations = max(1, _evaluations(epochs, target_evaluations))
    interval = max(1, math.ceil(epochs / evaluations))
    return TimePlan(budget_seconds, epochs_done + epochs, interval, math.ceil(epochs / interval), pace)


class TimeKeeper:
    """The budget of one run: measures the pace, plans, replans on drift and says when to stop.

    `clock` is injectable so tests run on simulated time. `spent_before` is what earlier runs of a resumed
    job already used.
    """

    def __init__(self, budget_seconds: float, spent_before: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.budget_seconds = budget_seconds
        self.spent_before = spent_before
        self.clock = clock
        self.started = clock()
        self.plan: Optional[TimePlan] = None
        self.iter_times: list = []
        self.eval_seconds: Optional[float] = None
        self.replans = 0

    def spent(self) -> float:
        return self.spent_before + self.clock() - self.started

    def left(self) -> float:
        return self.budget_seconds - self.spent()

    def record_iter(self, seconds: float) -> None:
        self.iter_times.append(seconds)

    def record_eval(self, seconds: float) -> None:
        self.eval_seconds = seconds

    def measured_pace(self, iters_per_epoch: int, eval_estimate: float) -> Optional[Pace]:
        """The pace from the iterations timed so far (the first PACE_SKIP left out); None before PACE_ITERS."""
        timed = self.iter_times[PACE_SKIP:]
        if len(timed) < min(PACE_ITERS, iters_per_epoch) - PACE_SKIP or not timed:
            return None
        recent = timed[-200:]
        evaluation = self.eval_seconds if self.eval_seconds is not None else eval_estimate
        return Pace(sum(recent) / len(recent), evaluation, iters_per_epoch)

    def replan(self, pace: Pace, epochs_done: int, max_epochs: Optional[int] = None) -> Optional[TimePlan]:
        """A new plan when there is none yet or the pace drifted by more than DRIFT; else None."""
        if self.plan is not None and not _drifted(self.plan.pace, pace):
            return None
        if self.plan is not None:
            self.replans += 1
        self.plan = fit_schedule(self.budget_seconds, self.left(), pace, epochs_done, max_epochs=max_epochs)
        return self.plan

    def must_stop(self, eval_seconds: float) -> bool:
        """True when finishing the current epoch's evaluation would overrun the budget."""
        return self.spent() + eval_seconds > self.budget_seconds * FILL_FRACTION


def _drifted(planned: Pace, measured: Pace) -> bool:
    def off(a: float, b: float) -> bool:
        return abs(a - b) > DRIFT * max(a, 1e-9)

    return off(planned.epoch_seconds, measured.epoch_seconds) or off(planned.eval_seconds, measured.eval_seconds)
