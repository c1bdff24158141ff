import math

import pytest
import torch
from torch import nn

from yolox.utils.ema import ModelEMA, is_parallel, unwrap_model


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


@pytest.mark.parametrize("updates,expected", [(1, 0.0005), (2000, 0.632), (10000, 0.99306), (20000, 0.99975)])
def test_decay_ramp_checked_values(updates, expected):
    ema = ModelEMA(small_model(), 0.9998)
    assert ema.decay_at(updates) == pytest.approx(expected, rel=2e-3)


def test_a_shorter_ramp_reaches_the_decay_sooner():
    upstream, short = ModelEMA(small_model(), 0.9998), ModelEMA(small_model(), 0.99, ramp_updates=100)
    assert upstream.decay_at(2914) == pytest.approx(0.767, abs=1e-3)     # 60 epochs of 49 steps
    assert short.decay_at(2914) == pytest.approx(0.99, abs=1e-6)
    assert short.decay_at(100) == pytest.approx(0.99 * (1 - math.exp(-1)))
    with pytest.raises(ValueError, match="ema_ramp_updates"):
        ModelEMA(small_model(), 0.99, ramp_updates=0)


def test_update_averages_params_and_bn_buffers_but_not_int_buffers():
    model = small_model()
    ema = ModelEMA(model, 0.9998)
    assert not any(p.requires_grad for p in ema.ema.parameters())
    assert not ema.ema.training
    before = {k: v.clone() for k, v in ema.ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model[1].running_mean.add_(2.0)
        model[1].num_batches_tracked.add_(5)
    ema.update(model)
    d = 0.9998 * (1 - math.exp(-1 / 2000))
    after = ema.ema.state_dict()
    assert torch.allclose(after["0.weight"], d * before["0.weight"] + (1 - d) * (before["0.weight"] + 1))
    assert torch.allclose(after["1.running_mean"], d * before["1.running_mean"] + (1 - d) * (before["1.running_mean"] + 2))
    assert after["1.num_batches_tracked"].item() == 0
    assert ema.updates == 1


def test_state_round_trip_continues_identically():
    model = small_model()
    first = ModelEMA(model, 0.9998, updates=100)
    first.update(model)
    second = ModelEMA(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), 0.9998)
    second.load_state_dict(first.state_dict())
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)
    first.update(model)
    second.update(model)
    assert second.updates == 102
    for a, b in zip(first.ema.state_dict().values(), second.ema.state_dict().values()):
        assert torch.equal(a, b)


def test_unwrap_parallel():
    model = small_model()
    wrapped = nn.DataParallel(model)
    assert is_parallel(wrapped) and not is_parallel(model)
    assert unwrap_model(wrapped) is model


def test_update_follows_the_model_after_its_tensors_are_swapped():
    # the EMA keeps its pairs of tensors between steps; a move that swaps .data (channels_last, a device move)
    # or a load_state_dict must not leave it averaging stale copies
    model = small_model()
    ema = ModelEMA(model, 0.5, ramp_updates=1e-9)
    ema.update(model)
    model = model.to(memory_format=torch.channels_last)
    model.load_state_dict({k: v + 3.0 if v.is_floating_point() else v for k, v in model.state_dict().items()})
    expected = {k: (e + m) / 2 for (k, e), m in zip(ema.ema.state_dict().items(), model.state_dict().values())
                if e.is_floating_point()}
    ema.update(model)
    for name, value in expected.items():
        torch.testing.assert_close(ema.ema.state_dict()[name], value)
