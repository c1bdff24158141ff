import math

import pytest

from yolox.utils.lr_scheduler import LRScheduler


def yolox_default(lr=0.01, iters_per_epoch=100):
    return LRScheduler("yoloxwarmcos", lr, iters_per_epoch, 300, warmup_epochs=5, warmup_lr_start=0,
                       no_aug_epochs=15, min_lr_ratio=0.05)


@pytest.mark.parametrize("iters,expected", [(1, 4e-8), (250, 0.0025), (500, 0.01), (10000, 0.0075477),
                                            (28500, 0.0005), (29999, 0.0005), (30000, 0.0005)])
def test_yoloxwarmcos_checked_values(iters, expected):
    assert yolox_default().update_lr(iters) == pytest.approx(expected, rel=1e-4)


def test_yoloxwarmcos_is_monotone_after_warmup_and_continuous_at_tail():
    sched = yolox_default()
    values = [sched.update_lr(i) for i in range(500, 28501, 50)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert sched.update_lr(28499) == pytest.approx(0.0005, rel=1e-3)


def test_yoloxwarmcos_kwarg_defaults():
    sched = LRScheduler("yoloxwarmcos", 0.01, 10, 10, warmup_epochs=1, no_aug_epochs=1)
    assert sched.update_lr(0) == 0.0
    assert sched.update_lr(100) == pytest.approx(0.002)


def test_cos_and_warmcos():
    cos = LRScheduler("cos", 0.1, 10, 10)
    assert cos.update_lr(0) == pytest.approx(0.1)
    assert cos.update_lr(50) == pytest.approx(0.05)
    assert cos.update_lr(100) == pytest.approx(0.0, abs=1e-12)
    warm = LRScheduler("warmcos", 0.1, 10, 10, warmup_epochs=2)
    assert warm.update_lr(0) == pytest.approx(1e-6)
    assert warm.update_lr(10) == pytest.approx((0.1 - 1e-6) / 2 + 1e-6)
    assert warm.update_lr(20) == pytest.approx(0.1)
    assert warm.update_lr(60) == pytest.approx(0.05)


def test_multistep():
    sched = LRScheduler("multistep", 0.1, 10, 30, milestones=[10, 20])
    assert sched.update_lr(99) == pytest.approx(0.1)
    assert sched.update_lr(100) == pytest.approx(0.01)
    assert sched.update_lr(250) == pytest.approx(0.001)
    assert LRScheduler("multistep", 1.0, 1, 3, milestones=[1], gamma=0.5).update_lr(2) == 0.5
    with pytest.raises(ValueError, match="milestones"):
        LRScheduler("multistep", 0.1, 10, 30)


def test_semi_schedule_matches_yolox_before_semi_phase_and_stretches_after():
    common = dict(warmup_epochs=1, no_aug_epochs=2, min_lr_ratio=0.05)
    semi = LRScheduler("yoloxsemiwarmcos", 0.01, 10, 20, semi_epoch=5, iters_per_epoch_semi=20, **common)
    plain = LRScheduler("yoloxwarmcos", 0.01, 10, 20, **common)
    for i in (1, 10, 30, 50):
        assert semi.update_lr(i) == pytest.approx(plain.update_lr(i))
    # one semi epoch (20 iters) advances the cosine as far as one supervised epoch (10 iters)
    assert semi.update_lr(70) == pytest.approx(plain.update_lr(60))
    # the flat tail starts after 5 normal + 13 semi epochs
    assert semi.update_lr(50 + 13 * 20) == pytest.approx(0.0005)
    with pytest.raises(ValueError, match="semi_epoch"):
        LRScheduler("yoloxsemiwarmcos", 0.01, 10, 20, **common)


def test_unknown_name_raises():
    with pytest.raises(ValueError, match="not supported"):
        LRScheduler("linear", 0.1, 10, 10)


def test_linear_scaling_rule():
    lr = 0.01 / 64.0 * 16
    assert yolox_default(lr=lr).update_lr(500) == pytest.approx(0.0025)
    assert math.isclose(yolox_default(lr=lr).update_lr(28500), 0.0025 * 0.05)
