"""yolox.crater.recipe: model size, epochs, warmup and optimizer of a from-scratch crater run."""
import pytest

from yolox.crater.recipe import (
    ADAMW_LR, ADAMW_MAX_ITERATIONS, adamw_lr_per_img, scaled_no_aug_epochs, scratch_epochs, scratch_model_size,
    scratch_optimizer, scratch_warmup_epochs,
)


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
