"""yolox.crater.recipe: model size, epochs, warmup and optimizer of a from-scratch crater run, applied to an exp."""
import pytest

from tests.crater.runs import S_EXP
from yolox.crater.recipe import (
    ADAMW_LR, ADAMW_MAX_ITERATIONS, adamw_lr_per_img, apply_scratch_model, apply_scratch_schedule, recipe_lines,
    scaled_no_aug_epochs, scratch_epochs, scratch_model_size, scratch_optimizer, scratch_warmup_epochs,
)
from yolox.exp import get_exp


def test_small_data_gets_yolox_s_and_large_data_yolox_m():
    assert scratch_model_size(100).value == "s" and "100 training images" in scratch_model_size(100).reason
    assert scratch_model_size(777).value == "s"
    assert scratch_model_size(5000).value == "m"


def test_epochs_target_a_number_of_steps_within_bounds():
    assert scratch_epochs(777, 16).value == 61            # 49 steps/epoch: ~3000 steps
    small = scratch_epochs(100, 8)                         # 13 steps/epoch would need 231 epochs
    assert small.value == 231 and "clamped" not in small.reason
    tiny = scratch_epochs(16, 16)
    assert tiny.value == 300 and "clamped" in tiny.reason
    assert scratch_epochs(100000, 64).value == 60


def test_no_aug_share_and_warmup_floor():
    assert scaled_no_aug_epochs(8, 60, 240).value == 32
    assert scratch_warmup_epochs(2, 777, 16, 60).value == 2        # 98 steps already
    assert scratch_warmup_epochs(2, 100, 8, 231).value == 8        # 13 steps/epoch: 100 steps
    assert scratch_warmup_epochs(2, 16, 2, 10).value == 2          # never more than a fifth of the schedule


def test_short_scratch_schedules_get_adamw_and_long_ones_keep_the_exps_optimizer():
    short = scratch_optimizer("sgd", 61 * 49)
    assert short.value == "adamw" and "2989 steps" in short.reason
    assert scratch_optimizer("sgd", ADAMW_MAX_ITERATIONS).value == "sgd"


def test_adamw_lr_is_the_measured_value_at_batch_16_and_square_root_scaled():
    assert adamw_lr_per_img(16).value * 16 == pytest.approx(ADAMW_LR)
    assert adamw_lr_per_img(64).value * 64 == pytest.approx(2 * ADAMW_LR)
    assert adamw_lr_per_img(4).value * 4 == pytest.approx(ADAMW_LR / 2)


def test_scratch_plan_picks_adamw_and_its_lr_unless_the_command_line_sets_them():
    exp = get_exp(S_EXP)
    reasons = apply_scratch_schedule(exp, batch=16, train_images=777, overridden=set())
    assert exp.optimizer_type == "adamw" and "AdamW" in reasons["optimizer_type"]
    assert exp.basic_lr_per_img * 16 == pytest.approx(0.0025)
    assert "basic_lr_per_img" in reasons

    exp = get_exp(S_EXP)
    exp.basic_lr_per_img = 0.02 / 64
    reasons = apply_scratch_schedule(exp, batch=16, train_images=777, overridden={"basic_lr_per_img"})
    assert exp.optimizer_type == "adamw" and exp.basic_lr_per_img == 0.02 / 64
    assert "basic_lr_per_img" not in reasons

    exp = get_exp(S_EXP)
    reasons = apply_scratch_schedule(exp, batch=16, train_images=777, overridden={"optimizer_type"})
    assert exp.optimizer_type == "sgd" and "optimizer_type" not in reasons


def test_scratch_model_gets_the_stride_4_level_unless_the_command_line_says_otherwise():
    exp = get_exp(S_EXP)
    reasons = apply_scratch_model(exp, overridden=set())
    assert exp.p2_head and "0.712" in reasons["p2_head"]

    exp = get_exp(S_EXP)
    assert apply_scratch_model(exp, overridden={"p2_head"}) == {} and not exp.p2_head


def test_recipe_lines_say_where_each_value_came_from():
    exp = get_exp(S_EXP)
    exp.merge(["seed", "3"])
    lines = recipe_lines(exp, overridden={"seed"}, reasons={"max_epoch": "from scratch: why"})
    assert "max_epoch: 60  (from scratch: why)" in lines
    assert "seed: 3  (set on the command line)" in lines
    assert "center_radius: 1.5  (the exp's)" in lines


def test_a_short_budget_goes_without_the_stride_4_level_and_says_why():
    from yolox.crater.recipe import P2_MIN_BUDGET_EPOCHS, p2_under_budget

    keep = p2_under_budget(P2_MIN_BUDGET_EPOCHS + 5, 2 * P2_MIN_BUDGET_EPOCHS, 0.2, 0.1)
    assert keep.value is True and "0.200 s with it, 0.100 s without" in keep.reason
    drop = p2_under_budget(P2_MIN_BUDGET_EPOCHS - 5, 2 * P2_MIN_BUDGET_EPOCHS, 0.2, 0.1)
    assert drop.value is False and "--time" in drop.reason and "measured at 60 epochs" in drop.reason
