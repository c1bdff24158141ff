"""The --time budget: durations, the fitted schedule, drift and the stop guard, on simulated time."""
import pytest

from yolox.core.budget import (
    CHECKPOINT_SECONDS, EVAL_SHARE, PACE_ITERS, TEARDOWN_SECONDS, BudgetClock, Pace, ScheduleOrigin, TimeBudgetError,
    fit_schedule, format_duration, parse_duration,
)


@pytest.mark.parametrize("text, seconds", [("45m", 2700), ("2h", 7200), ("1h30m", 5400), ("90s", 90),
                                           ("600", 600), (" 1.5h ", 5400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["45x", "m45", "", "0m", "-5m", "1h 30"])
def test_parse_duration_rejects_with_one_line(text):
    with pytest.raises(TimeBudgetError) as error:
        parse_duration(text)
    assert "\n" not in str(error.value) and "--time" in str(error.value)


def test_format_duration():
    assert format_duration(40) == "40 s"
    assert format_duration(45 * 60) == "45 min"
    assert format_duration(125 * 60) == "2 h 5 min"


def test_fit_schedule_fills_the_budget_and_no_more():
    pace = Pace(iter_seconds=0.1, epoch_overhead=0.5, eval_seconds=5.0, iters_per_epoch=100)   # 10.5 s an epoch
    plan = fit_schedule(1000.0, 1000.0, pace, reserve=4.0)
    used = plan.max_epoch * pace.epoch_seconds + plan.evaluations * pace.eval_seconds + 4.0
    # the last epoch is planned when half of it fits (the stop guard ends it at the budget)
    assert used - 0.5 * pace.epoch_seconds <= 1000.0 < used + 0.5 * pace.epoch_seconds
    assert plan.evaluations == 10 and plan.eval_interval * plan.evaluations >= plan.max_epoch
    assert "epochs at 10.5 s/epoch" in plan.line() and "(5% of the budget)" in plan.line()


def test_evaluations_take_a_bounded_share_of_the_budget():
    slow_eval = Pace(iter_seconds=0.1, epoch_overhead=0.0, eval_seconds=20.0, iters_per_epoch=10)
    plan = fit_schedule(150.0, 150.0, slow_eval)
    assert plan.evaluations == 1 and plan.eval_share <= EVAL_SHARE + 0.05     # the last epoch's only
    assert plan.max_epoch >= 100       # training keeps the rest: (150 - 4 - 20) / 1 s


def test_fit_schedule_counts_epochs_done_and_caps():
    pace = Pace(0.1, 0.0, 1.0, 100)
    resumed = fit_schedule(1000.0, 200.0, pace, epochs_done=50)
    assert 50 < resumed.max_epoch < 50 + 20
    capped = fit_schedule(1000.0, 1000.0, pace, max_epochs=30)
    assert capped.max_epoch == 30


def test_fit_schedule_plans_one_epoch_when_nothing_fits():
    assert fit_schedule(10.0, 10.0, Pace(1.0, 0.0, 100.0, 100)).max_epoch == 1


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def origin():
    return ScheduleOrigin(max_epoch=100, warmup_epochs=5, no_aug_epochs=0, ema_decay=None, ema_ramp_updates=None)


def run_steps(budget, clock, epoch, steps, seconds, iters_per_epoch=50):
    """Record `steps` steps of `seconds` from iteration 0 of `epoch`; the plans returned and the last stop flag."""
    plans, stop = [], False
    for iteration in range(steps):
        clock.now += seconds
        budget.record_step(seconds)
        plan, stop = budget.after_iter(epoch, iteration, iters_per_epoch, 100, eval_batches=2)
        plans += [plan] if plan is not None else []
    return plans, stop


def test_the_clock_counts_from_the_commands_start():
    clock = FakeClock()
    budget = BudgetClock(600.0, started_at=clock.now - 40.0, origin=origin(), clock=clock)
    assert budget.spent() == pytest.approx(40.0) and budget.left() == pytest.approx(560.0)
    resumed = BudgetClock(100.0, started_at=clock.now, origin=origin(), spent_before=60.0, clock=clock)
    assert resumed.left() == pytest.approx(40.0)


def test_one_plan_once_the_step_is_timed_then_only_early_drift_replans():
    clock = FakeClock()
    budget = BudgetClock(600.0, started_at=clock.now, origin=origin(), clock=clock)
    plans, _ = run_steps(budget, clock, epoch=0, steps=PACE_ITERS - 1, seconds=0.5)
    assert plans == []
    plans, _ = run_steps(budget, clock, epoch=0, steps=1, seconds=0.5)
    first = plans[0]
    assert first.max_epoch > 1 and budget.replans == 0
    plans, _ = run_steps(budget, clock, epoch=1, steps=50, seconds=0.5)
    assert plans == []                                   # the same pace: the plan (and LR schedule) stays
    run_steps(budget, clock, epoch=2, steps=50, seconds=1.0)
    plans, _ = run_steps(budget, clock, epoch=3, steps=1, seconds=1.0)    # checked where an epoch starts
    assert plans[0].max_epoch < first.max_epoch and budget.replans == 1      # twice as slow, early in the run
    late = budget.plan.max_epoch - 2
    plans, _ = run_steps(budget, clock, epoch=late, steps=1, seconds=0.25)
    assert plans == []                                   # late in the run a drift changes nothing


def test_a_timed_evaluation_changes_how_often_it_comes_not_the_epochs():
    clock = FakeClock()
    budget = BudgetClock(600.0, started_at=clock.now, origin=origin(), clock=clock)
    first = run_steps(budget, clock, epoch=0, steps=PACE_ITERS, seconds=0.2)[0][0]
    budget.record_eval(30.0)
    refit = run_steps(budget, clock, epoch=1, steps=1, seconds=0.2)[0][0]
    assert refit.max_epoch == first.max_epoch and refit.evaluations < first.evaluations


def test_the_stop_guard_leaves_the_last_evaluation_and_checkpoint_inside_the_budget():
    clock = FakeClock()
    budget = BudgetClock(60.0, started_at=clock.now, origin=origin(), clock=clock)
    _, stop = run_steps(budget, clock, epoch=0, steps=40, seconds=0.5)
    assert not stop
    budget.record_eval(5.0)
    clock.now += 60.0 - budget.spent() - (5.0 + CHECKPOINT_SECONDS + TEARDOWN_SECONDS)
    _, stop = run_steps(budget, clock, epoch=5, steps=1, seconds=0.0)
    assert stop and budget.stopped_early
