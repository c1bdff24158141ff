"""Training in the time the user has (`--time 45m`): the budget clock of a run.

The budget is the user's clock: it counts from the command's start (imports, dataset check, batch probe and
compilation inside it) and ends when the process can exit. The pace is measured, never guessed: the first
steps (augmentation and data wait included) and each epoch's end give the seconds of a whole epoch; the plan
then fixes the epochs, and with them the learning-rate schedule, so the schedule finishes. Evaluations get a
bounded share of the budget: a timed evaluation changes how often they come, never the epochs. A drifting pace
may change the plan only early in the run, while the schedule is still near its start; later a stop guard
ends the last epoch early rather than overrun.

The trainer talks to `BudgetClock` alone (`after_iter`, `record_epoch`, `record_eval`, `apply`,
`closing_line`); `fit_exp_to_plan` turns a plan into the exp's schedule fields (epochs, evaluation interval,
warmup, the no-augmentation tail and, where the exp asks for it, the EMA), each scaled from the exp's own
values: the documented way --time changes an exp.
"""
import math
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from loguru import logger

from yolox.utils.durations import TimeBudgetError, format_duration, parse_duration
from yolox.utils.ema import ModelEMA

__all__ = ["TimeBudgetError", "parse_duration", "format_duration", "Pace", "TimePlan", "fit_schedule",
           "ScheduleOrigin", "fit_exp_to_plan", "fitted_ema", "BudgetClock"]

# evaluations take at most this share of the budget (the last epoch's is always made)
EVAL_SHARE = 0.1
# evaluations a planned run makes at most: more only cost time; fewer make "best" a coarse choice
TARGET_EVALUATIONS = 10
# after the last checkpoint: the closing report and plots, and the process's exit (an estimate)
TEARDOWN_SECONDS = 3.0
# until a checkpoint has been timed
CHECKPOINT_SECONDS = 1.0
# a pace this far from the planned one may change the plan, but only within this share of the planned epochs
REPLAN_DRIFT = 0.2
REPLAN_WITHIN = 0.25
# a last epoch of which this share fits is planned and cut short by the stop guard: with long epochs (40 s on a
# 2-core CPU) whole epochs alone left up to one epoch of a 5-minute budget unused; the learning rate is then within
# the last few percent of its schedule when the run ends
LAST_EPOCH_SHARE = 0.5
# steps timed before the first plan; the first few (allocator warm-up, loader start, compilation) not counted
PACE_ITERS = 12
PACE_SKIP = 2
# warmup may take at most this share of a fitted run: a long warmup in a short budget only wastes it
MAX_WARMUP_SHARE = 0.2
# EMA averaging window (1 / (1 - decay), in updates) and ramp at most this share of the run's updates
EMA_WINDOW_SHARE = 0.1
# until the first evaluation is timed: one eval batch costs about one training step, plus scoring
EVAL_FIXED_SECONDS = 2.0


@dataclass(frozen=True)
class Pace:
    """Measured seconds of one training step, of an epoch's end (loader restart, checkpoints) and of one
    evaluation."""

    iter_seconds: float
    epoch_overhead: float
    eval_seconds: float
    iters_per_epoch: int

    @property
    def epoch_seconds(self) -> float:
        return self.iter_seconds * self.iters_per_epoch + self.epoch_overhead


@dataclass(frozen=True)
class TimePlan:
    """Epochs (in total, counting those already done) and the evaluation interval that fit the budget."""

    budget_seconds: float
    max_epoch: int
    eval_interval: int
    evaluations: int
    pace: Pace

    @property
    def eval_share(self) -> float:
        return self.evaluations * self.pace.eval_seconds / max(self.budget_seconds, 1e-9)

    def line(self) -> str:
        return (f"time: {format_duration(self.budget_seconds)} -> {self.max_epoch} epochs at "
                f"{_seconds(self.pace.epoch_seconds)} s/epoch, {self.evaluations} evaluations at "
                f"{_seconds(self.pace.eval_seconds)} s each ({self.eval_share:.0%} of the budget)")


def _seconds(value: float) -> str:
    return f"{value:.1f}" if value >= 0.1 else f"{value:.3f}"


def evaluations_for(epochs: int, seconds_left: float, eval_seconds: float) -> int:
    """Evaluations in `epochs` epochs: at most TARGET_EVALUATIONS and EVAL_SHARE of what is left, at least the last."""
    affordable = int(EVAL_SHARE * seconds_left / max(eval_seconds, 1e-9))
    return max(1, min(TARGET_EVALUATIONS, affordable, epochs))


def fit_schedule(budget_seconds: float, seconds_left: float, pace: Pace, epochs_done: int = 0,
                 max_epochs: Optional[int] = None, reserve: float = TEARDOWN_SECONDS + CHECKPOINT_SECONDS
                 ) -> TimePlan:
    """The further epochs whose training and evaluations fit `seconds_left` less `reserve` (the final checkpoint
    and the exit), counting a last epoch of which LAST_EPOCH_SHARE fits: the stop guard ends it where the budget
    does. At least one more epoch is planned."""
    usable = seconds_left - reserve
    evaluations = evaluations_for(TARGET_EVALUATIONS, seconds_left, pace.eval_seconds)
    room = (usable - evaluations * pace.eval_seconds) / max(pace.epoch_seconds, 1e-9)
    epochs = max(1, math.floor(room + 1 - LAST_EPOCH_SHARE))
    if max_epochs is not None:
        epochs = max(1, min(epochs, max_epochs - epochs_done))
    return _with_evaluations(budget_seconds, epochs_done + epochs, epochs, seconds_left, pace)


def _with_evaluations(budget_seconds: float, max_epoch: int, epochs_left: int, seconds_left: float,
                      pace: Pace) -> TimePlan:
    evaluations = evaluations_for(epochs_left, seconds_left, pace.eval_seconds)
    interval = max(1, math.ceil(epochs_left / evaluations))
    return TimePlan(budget_seconds, max_epoch, interval, math.ceil(epochs_left / interval), pace)


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
    """One run's budget, counted on the wall clock from `started_at` (the command's start); `spent_before` is
    what the runs a resume continues already used. `clock` is injectable so tests run on simulated time."""

    def __init__(self, budget_seconds: float, started_at: float, origin: ScheduleOrigin,
                 max_epochs: Optional[int] = None, spent_before: float = 0.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.budget_seconds = float(budget_seconds)
        self.started_at = started_at
        self.origin = origin
        self.max_epochs = max_epochs
        self.spent_before = float(spent_before)
        self.clock = clock
        self.plan: Optional[TimePlan] = None
        self.replans = 0
        self.stopped_early = False
        self.iter_times: List[float] = []
        self.epoch_overheads: List[float] = []
        self.eval_seconds: Optional[float] = None
        self.checkpoint_seconds = CHECKPOINT_SECONDS

    @classmethod
    def start(cls, budget_seconds: float, started_at: float, exp, max_epochs: Optional[int],
              spent_before: float = 0.0) -> "BudgetClock":
        clock = cls(budget_seconds, started_at, ScheduleOrigin.of(exp), max_epochs, spent_before)
        before = f" ({format_duration(spent_before)} of it before this resume)" if spent_before else ""
        logger.info(f"time: budget {format_duration(budget_seconds)} from the command's start{before}, "
                    f"{format_duration(clock.spent())} spent before training; epochs are planned once the step "
                    "is timed")
        if clock.left() <= 0:
            logger.warning("time: the budget is already spent; nothing left to train (give a longer --time)")
        return clock

    @classmethod
    def for_run(cls, options, resumed: Dict[str, float], exp) -> Optional["BudgetClock"]:
        """The clock of a run's `--time` (RunOptions), or of the checkpoint it resumes (`resumed`: its time_budget
        and time_spent, which counts); None without a budget."""
        budget = options.time_budget_s or resumed.get("time_budget")
        if budget is None:
            return None
        return cls.start(budget, options.started_at, exp, options.max_epoch_cap,
                         spent_before=float(resumed.get("time_spent", 0.0)))

    def spent(self) -> float:
        return self.spent_before + self.clock() - self.started_at

    def left(self) -> float:
        return self.budget_seconds - self.spent()

    def record_step(self, seconds: float) -> None:
        self.iter_times.append(seconds)

    def record_epoch(self, overhead_seconds: float) -> None:
        """An epoch's time outside its steps and evaluation (loader restart, checkpoints, logging)."""
        self.epoch_overheads.append(overhead_seconds)

    def record_eval(self, seconds: float) -> None:
        self.eval_seconds = seconds

    def record_checkpoint(self, seconds: float) -> None:
        self.checkpoint_seconds = max(self.checkpoint_seconds * 0.5, seconds)

    def pace(self, iters_per_epoch: int, eval_batches: int) -> Optional[Pace]:
        """The pace measured so far (the first PACE_SKIP steps left out); None before PACE_ITERS steps or an epoch."""
        timed = self.iter_times[PACE_SKIP:]
        if not timed or (len(timed) < PACE_ITERS - PACE_SKIP and not self.epoch_overheads):
            return None
        # means over the whole run so far: multi-scale training draws a new size every 10 steps, so a short window
        # swings with the sizes drawn while the run's total follows the mean
        step = sum(timed) / len(timed)
        ends = self.epoch_overheads[1:] or self.epoch_overheads     # the first epoch's end starts the eval loader
        overhead = sum(ends) / len(ends) if ends else 0.0
        evaluation = self.eval_seconds if self.eval_seconds is not None else eval_estimate(eval_batches, step)
        return Pace(step, overhead, evaluation, iters_per_epoch)

    def _finish_seconds(self, pace: Pace) -> float:
        return pace.eval_seconds + self.checkpoint_seconds + TEARDOWN_SECONDS

    def after_iter(self, epoch: int, iteration: int, iters_per_epoch: int, max_epoch: int,
                   eval_batches: int) -> Tuple[Optional[TimePlan], bool]:
        """(a new plan or None, whether to stop now) after iteration `iteration` (0-based) of epoch `epoch`."""
        pace = self.pace(iters_per_epoch, eval_batches)
        if pace is None:
            return None, False
        plan = self._due_plan(pace, epoch, iteration, iters_per_epoch)
        if plan is not None:
            max_epoch = plan.max_epoch
        last_step = epoch + 1 == max_epoch and iteration + 1 == iters_per_epoch
        stop = self.left() < self._finish_seconds(pace) + pace.iter_seconds
        if stop:
            self.stopped_early = not last_step
            if self.stopped_early:
                logger.warning(f"time: stopping at epoch {epoch + 1} iter {iteration + 1} so that the last "
                               "evaluation and checkpoints fit in the budget")
        return plan, stop

    def _due_plan(self, pace: Pace, epoch: int, iteration: int, iters_per_epoch: int) -> Optional[TimePlan]:
        if self.plan is None:
            return self._new_plan(pace, epoch + (iteration + 1) / iters_per_epoch)
        at_epoch_start = iteration == 0
        early = epoch < REPLAN_WITHIN * self.plan.max_epoch
        if at_epoch_start and early and _drifted(self.plan.pace.epoch_seconds, pace.epoch_seconds):
            self.replans += 1
            return self._new_plan(pace, epoch, again=True)
        if at_epoch_start and _drifted(self.plan.pace.eval_seconds, pace.eval_seconds):
            epochs_left = self.plan.max_epoch - epoch
            self.plan = _with_evaluations(self.budget_seconds, self.plan.max_epoch, epochs_left, self.left(), pace)
            logger.info(f"{self.plan.line()} (evaluations fitted to their measured time)")
            return self.plan
        return None

    def _new_plan(self, pace: Pace, epochs_done: float, again: bool = False) -> TimePlan:
        # the epoch under way is finished first: the plan adds whole epochs after it, in what its remainder leaves
        left = self.left() - (math.ceil(epochs_done) - epochs_done) * pace.epoch_seconds
        self.plan = fit_schedule(self.budget_seconds, left, pace, math.ceil(epochs_done), self.max_epochs,
                                 reserve=self.checkpoint_seconds + TEARDOWN_SECONDS)
        logger.info(self.plan.line() + (" (planned again: the measured pace drifted)" if again else ""))
        return self.plan

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
        return {"time_budget": self.budget_seconds, "time_spent": self.spent()}

    def closing_line(self) -> str:
        spent = self.spent()
        ended = "inside it" if spent <= self.budget_seconds else f"{spent - self.budget_seconds:.0f} s over it"
        if self.stopped_early:
            ended += ", the last epoch cut short to stay inside"
        return (f"time: {format_duration(spent)} of the {format_duration(self.budget_seconds)} budget used by the "
                f"end of training, {ended}")


def _drifted(planned: float, measured: float) -> bool:
    return abs(measured - planned) > REPLAN_DRIFT * max(planned, 1e-9)
