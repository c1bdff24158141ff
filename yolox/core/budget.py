"""Training in the time the user has (`--time 45m`): the budget clock of a run.

The pace is measured, never guessed: the trainer times its first iterations (augmentation and data wait
included) and its evaluations, fits the schedule to what is left of the budget, and plans again when the
measured pace drifts. A guard inside the epoch stops early when the next evaluation would overrun.
The trainer talks to `BudgetClock` alone: `after_iter` (a plan to apply, or a stop), `record_eval`,
`closing_line`; `fit_exp_to_plan` turns a plan into the exp's schedule fields (epochs, evaluation interval,
warmup, the no-augmentation tail and, where the exp asks for it, the EMA), each scaled from the exp's own
values (the documented way --time changes an exp).
"""
import math
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from loguru import logger

from yolox.utils.durations import TimeBudgetError, format_duration, parse_duration
from yolox.utils.ema import ModelEMA

__all__ = ["TimeBudgetError", "parse_duration", "format_duration", "Pace", "TimePlan", "fit_schedule",
           "TimeKeeper", "ScheduleOrigin", "fit_exp_to_plan", "fitted_ema", "BudgetClock"]

# share of the budget the plan fills: checkpoint writes, logging and the closing report need the rest
FILL_FRACTION = 0.93
# evaluations a planned run makes (more only cost time; fewer make "best" a coarse choice)
TARGET_EVALUATIONS = 10
# a measured pace this far from the planned one triggers a new plan
DRIFT = 0.2
# iterations timed before the first plan; the first few (allocator warm-up, loader start) are not counted
PACE_ITERS = 12
PACE_SKIP = 2

# warmup may take at most this share of a fitted run: a long warmup in a short budget only wastes it
MAX_WARMUP_SHARE = 0.2
# EMA averaging window (1 / (1 - decay), in updates) and ramp at most this share of the run's updates
EMA_WINDOW_SHARE = 0.1
# until the first evaluation is timed: one eval batch costs about one training step (twice the images,
# forward only), plus a fixed cost for the COCO evaluation itself
EVAL_FIXED_SECONDS = 2.0


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
        return cls(int(exp.max_epoch), float(exp.warmup_epochs), int(exp.no_aug_epochs), exp.ema_decay,
                   exp.ema_ramp_updates)


def fit_exp_to_plan(exp, plan: TimePlan, origin: ScheduleOrigin, iters_per_epoch: int) -> Dict[str, object]:
    """Set the exp's schedule fields for `plan`; returns {field: new value} of what changed."""
    epochs = plan.max_epoch
    fields: Dict[str, object] = {
        "max_epoch": epochs,
        "eval_interval": plan.eval_interval,
        "warmup_epochs": round(min(origin.warmup_epochs, MAX_WARMUP_SHARE * epochs), 3),
        "no_aug_epochs": min(round(origin.no_aug_epochs * epochs / max(origin.max_epoch, 1)), epochs - 1),
    }
    if exp.ema_fit_to_schedule and origin.ema_decay is not None:
        fields["ema_decay"], fields["ema_ramp_updates"] = fitted_ema(
            origin.ema_decay, origin.ema_ramp_updates, epochs * iters_per_epoch)
    changed = {name: value for name, value in fields.items() if getattr(exp, name) != value}
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


class BudgetClock:
    """One run's budget: the keeper, the exp's original schedule and the cap on epochs (None: what fits).

    The trainer calls `after_iter` after every step and applies what it returns; nothing else of --time
    reaches the trainer.
    """

    # iterations between checks of the measured pace once a plan exists (each check is a mean over recent steps)
    REPLAN_EVERY = 10

    def __init__(self, keeper: TimeKeeper, origin: ScheduleOrigin, max_epochs: Optional[int]) -> None:
        self.keeper = keeper
        self.origin = origin
        self.max_epochs = max_epochs
        self.stopped_early = False

    @classmethod
    def start(cls, budget_seconds: float, spent_before: float, exp, max_epochs: Optional[int]) -> "BudgetClock":
        """The clock of a run with `budget_seconds` in all, `spent_before` of them used by the runs it resumes."""
        clock = cls(TimeKeeper(float(budget_seconds), spent_before=float(spent_before)), ScheduleOrigin.of(exp),
                    max_epochs)
        before = f", {format_duration(spent_before)} of it spent before this resume" if spent_before else ""
        logger.info(f"time: budget {format_duration(budget_seconds)}{before}; epochs are planned once the step is "
                    "timed")
        if clock.keeper.left() <= 0:
            logger.warning("time: the budget is already spent; nothing left to train (give a longer --time)")
        return clock

    def spent(self) -> float:
        return self.keeper.spent()

    def record_step(self, seconds: float) -> None:
        self.keeper.record_iter(seconds)

    def record_eval(self, seconds: float) -> None:
        self.keeper.record_eval(seconds)

    def after_iter(self, epoch: int, iteration: int, iters_per_epoch: int, global_iter: int, max_epoch: int,
                   eval_batches: int) -> Tuple[Optional[TimePlan], bool]:
        """(a new plan or None, whether to stop now) after iteration `iteration` (0-based) of epoch `epoch`."""
        plan = None
        # an evaluation ends each epoch: its measured time may change the plan at the next epoch's first step
        if self.keeper.plan is None or iteration == 0 or (global_iter + 1) % self.REPLAN_EVERY == 0:
            plan = self.due_plan(epoch, iters_per_epoch, eval_batches)
            if plan is not None:
                max_epoch = plan.max_epoch
        eval_seconds = self.next_eval_seconds(eval_batches)
        stop = eval_seconds is not None and self.keeper.must_stop(eval_seconds)
        if stop:
            self.stopped_early = not (epoch + 1 == max_epoch and iteration + 1 == iters_per_epoch)
            if self.stopped_early:
                logger.warning(f"time: stopping at epoch {epoch + 1} iter {iteration + 1} so that the last "
                               "evaluation and checkpoints fit in the budget")
        return plan, stop

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

    def apply(self, plan: TimePlan, exp, iters_per_epoch: int, ema: Optional[ModelEMA]) -> None:
        """The exp's schedule fields (and the EMA, when the exp fits it to the run) follow `plan`; logged."""
        changed = fit_exp_to_plan(exp, plan, self.origin, iters_per_epoch)
        if ema is not None and "ema_decay" in changed:
            ema.decay = float(exp.ema_decay)
            ema.ramp_updates = float(exp.ema_ramp_updates)
        if changed:
            logger.info("time plan: " + ", ".join(f"{name} {value}" for name, value in changed.items()))

    def checkpoint_fields(self) -> Dict[str, float]:
        """What a checkpoint keeps so that a resumed run goes on within what is left."""
        return {"time_budget": self.keeper.budget_seconds, "time_spent": self.keeper.spent()}

    def closing_line(self) -> str:
        spent, budget = self.keeper.spent(), self.keeper.budget_seconds
        ended = "inside it" if spent <= budget else f"{spent - budget:.0f} s over it"
        if self.stopped_early:
            ended += ", the last epoch cut short to stay inside"
        return f"time: {format_duration(spent)} of the {format_duration(budget)} budget used, {ended}"
