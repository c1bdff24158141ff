import pytest
import torch

from yolox.utils.metric import AverageMeter, MeterBuffer, mem_usage


def test_average_meter_window_and_global():
    meter = AverageMeter(window_size=3)
    for value in [1.0, 2.0, 3.0, 10.0]:
        meter.update(value)
    assert meter.latest == 10.0
    assert meter.avg == pytest.approx(5.0)
    assert meter.median == 3.0
    assert meter.global_avg == pytest.approx(4.0)
    assert meter.total == pytest.approx(16.0)
    meter.clear()
    assert meter.avg is None and meter.latest is None
    assert meter.global_avg == pytest.approx(4.0)
    meter.reset()
    assert meter.global_avg is None


def test_tensor_values_are_kept_until_read():
    meter = AverageMeter(window_size=4)
    value = torch.tensor(2.5, requires_grad=True) * 2
    meter.update(value)
    stored = meter._window[-1]
    assert isinstance(stored, torch.Tensor) and not stored.requires_grad
    assert meter.latest == 5.0 and meter.global_avg == 5.0


def test_meter_buffer_filters_and_clears():
    meters = MeterBuffer(window_size=2)
    meters.update({"iter_time": 0.5}, data_time=0.1, total_loss=torch.tensor(3.0), lr=0.01)
    meters.update(iter_time=1.5, data_time=0.3, total_loss=torch.tensor(1.0), lr=0.02)
    assert set(meters.get_filtered_meter("time")) == {"iter_time", "data_time"}
    assert list(meters.get_filtered_meter("loss")) == ["total_loss"]
    assert meters["iter_time"].avg == pytest.approx(1.0)
    meters.clear_meters()
    assert meters["lr"].latest is None and meters["iter_time"].global_avg == pytest.approx(1.0)
    meters.reset()
    assert meters["iter_time"].global_avg is None


def test_mem_usage_is_positive_gib():
    assert 0 < mem_usage() < 1e4
