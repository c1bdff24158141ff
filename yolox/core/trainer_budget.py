"""The Trainer's side of `--time`: start the clock, plan once the step is timed, stop before the budget ends."""
from loguru import logger

from yolox.core.budget_schedule import BudgetRun, ScheduleOrigin, fit_exp_to_plan
from yolox.core.time_budget import TimeKeeper, TimePlan, format_duration, parse_duration

__all__ = ["BudgetSteps"]

# iterations between checks of the measured pace once a plan exists (each check is a mean over recent steps)
REPLAN_EVERY = 10


class BudgetSteps:
    """Trainer methods for a run with a wall-clock budget (`args.time`); nothing happens without one."""

    def _start_budget(self) -> None:
        """The budget of `--time`, or of the checkpoint this run resumes; what that run spent counts."""
        text = getattr(self.args, "time", None)
        budget = parse_duration(text) if text else self.resumed_budget.get("time_budget")
        if budget is None:
            return
        spent = float(self.resumed_budget.get("time_spent", 0.0))
        self.budget = BudgetRun(TimeKeeper(float(budget), spent_before=spent), ScheduleOrigin.of(self.exp),
                                getattr(self.args, "time_max_epoch", None))
        before = f", {format_duration(spent)} of it spent before this resume" if spent else ""
        logger.info(f"time: budget {format_duration(budget)}{before}; epochs are planned once the step is timed")
        if self.budget.keeper.left() <= 0:
            logger.warning("time: the budget is already spent; nothing left to train (give a longer --time)")
            self.stop_requested = True

    def _budget_after_iter(self) -> None:
        if self.budget is None:
            return
        eval_batches = len(self.evaluator.dataloader)
        # an evaluation ends each epoch: its measured time may change the plan at the next epoch's first step
        if self.budget.keeper.plan is None or self.iter == 0 or (self.progress_in_iter + 1) % REPLAN_EVERY == 0:
            plan = self.budget.due_plan(self.epoch, self.max_iter, eval_batches)
            if plan is not None:
                self._apply_time_plan(plan)
        eval_seconds = self.budget.next_eval_seconds(eval_batches)
        if not self.stop_requested and eval_seconds is not None and self.budget.keeper.must_stop(eval_seconds):
            self.stop_requested = True
            self.budget.stopped_early = not (self.epoch + 1 == self.max_epoch and self.iter + 1 == self.max_iter)
            if self.budget.stopped_early:
                logger.warning(f"time: stopping at epoch {self.epoch + 1} iter {self.iter + 1} so that the last "
                               "evaluation and checkpoints fit in the budget")

    def _apply_time_plan(self, plan: TimePlan) -> None:
        """The exp's schedule fields and the LR schedule (and the EMA, when fitted) follow the plan."""
        changed = fit_exp_to_plan(self.exp, plan, self.budget.origin, self.max_iter)
        self.max_epoch = self.exp.max_epoch
        self.lr_scheduler = self.exp.get_lr_scheduler(self.exp.basic_lr_per_img * self.batch_size, self.max_iter)
        if self.use_model_ema and "ema_decay" in changed:
            self.ema_model.decay = float(self.exp.ema_decay)
            self.ema_model.ramp_updates = float(self.exp.ema_ramp_updates)
        if changed:
            logger.info("time plan: " + ", ".join(f"{name} {value}" for name, value in changed.items()))

    def _budget_closing_line(self) -> None:
        if self.budget is not None:
            logger.info(self.budget.closing_line())
