"""The --time budget: durations, the fitted schedule, drift and the stop guard, on simulated time."""
import pytest

from yolox.core.budget import (
    FILL_FRACTION, PACE_ITERS, Pace, TimeBudgetError, TimeKeeper, fit_schedule, format_duration, parse_duration,
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
    pace = Pace(iter_seconds=0.1, eval_seconds=5.0, iters_per_epoch=100)   # 10 s an epoch
    plan = fit_schedule(1000.0, 1000.0, pace)
    used = plan.max_epoch * pace.epoch_seconds + plan.evaluations * pace.eval_seconds
    assert used <= 1000.0 * FILL_FRACTION
    one_more = (plan.max_epoch + 1) * pace.epoch_seconds + min(plan.max_epoch + 1, 10) * pace.eval_seconds
    assert one_more > 1000.0 * FILL_FRACTION
    assert plan.evaluations <= 10 and plan.eval_interval * plan.evaluations >= plan.max_epoch
    assert "epochs at 10.0 s/epoch" in plan.line()


def test_fit_schedule_counts_epochs_done_and_caps():
    pace = Pace(0.1, 1.0, 100)
    resumed = fit_schedule(1000.0, 200.0, pace, epochs_done=50)
    assert 50 < resumed.max_epoch < 50 + 20
    capped = fit_schedule(1000.0, 1000.0, pace, max_epochs=30)
    assert capped.max_epoch == 30


def test_fit_schedule_plans_one_epoch_when_nothing_fits():
    assert fit_schedule(10.0, 10.0, Pace(1.0, 100.0, 100)).max_epoch == 1


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_keeper_measures_plans_and_replans_on_drift():
    clock = FakeClock()
    keeper = TimeKeeper(600.0, clock=clock)
    for _ in range(PACE_ITERS - 1):
        keeper.record_iter(0.5)
    assert keeper.measured_pace(iters_per_epoch=50, eval_estimate=2.0) is None
    keeper.record_iter(0.5)
    pace = keeper.measured_pace(iters_per_epoch=50, eval_estimate=2.0)
    first = keeper.replan(pace, epochs_done=0)
    assert first is not None and keeper.replan(pace, epochs_done=0) is None   # same pace: no new plan
    clock.now = 100.0
    for _ in range(40):
        keeper.record_iter(1.0)        # twice as slow
    slower = keeper.replan(keeper.measured_pace(50, 2.0), epochs_done=3)
    assert slower is not None and slower.max_epoch < first.max_epoch and keeper.replans == 1


def test_keeper_stop_guard_and_resume_spent():
    clock = FakeClock()
    keeper = TimeKeeper(100.0, spent_before=60.0, clock=clock)
    assert keeper.left() == pytest.approx(40.0)
    assert not keeper.must_stop(eval_seconds=10.0)
    clock.now = 25.0
    assert keeper.must_stop(eval_seconds=10.0)
