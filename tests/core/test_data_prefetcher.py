"""DataPrefetcher: synchronous moves by the policy, and the side-stream hand-over when the device layer
offers a copy stream."""
from contextlib import contextmanager

import torch

from yolox.data.data_prefetcher import DataPrefetcher
from yolox.utils.device import build_policy


def batches(count):
    return [(torch.full((2, 3, 4, 4), float(i)), torch.full((2, 5, 5), float(i)), ["info"], [i]) for i in range(count)]


def test_sync_path_moves_each_batch_and_ends_with_none():
    policy = build_policy("cpu")
    prefetcher = DataPrefetcher(batches(2), policy)
    assert prefetcher.stream is None
    first, second, end = prefetcher.next(), prefetcher.next(), prefetcher.next()
    assert first[0][0, 0, 0, 0] == 0 and second[1][0, 0, 0] == 1
    assert len(first) == 2 and end == (None, None)


def test_next_batch_is_loaded_one_step_ahead():
    consumed = []

    def loader():
        for batch in batches(3):
            consumed.append(int(batch[3][0]))
            yield batch

    prefetcher = DataPrefetcher(loader(), build_policy("cpu"))
    assert consumed == [0]
    prefetcher.next()
    assert consumed == [0, 1]


class RecordingStream:
    def __init__(self):
        self.events = []

    @contextmanager
    def context(self):
        self.events.append("copy")
        yield

    def hand_over(self, *tensors):
        self.events.append(("hand_over", len(tensors)))


def test_stream_path_uses_the_device_layer_copy_stream(monkeypatch):
    from dataclasses import replace

    import yolox.utils.device as device

    stream = RecordingStream()
    monkeypatch.setattr(device, "make_copy_stream", lambda policy: stream)
    policy = replace(build_policy("cpu"), prefetch_stream=True)
    prefetcher = DataPrefetcher(batches(2), policy)
    images, _ = prefetcher.next()
    assert images is not None and stream.events == ["copy", ("hand_over", 2), "copy"]


def test_label_padding_is_trimmed_without_changing_the_loss():
    from yolox.data.data_prefetcher import trim_label_padding
    from yolox.models.build import build_yolox, init_yolox

    torch.manual_seed(0)
    model = init_yolox(build_yolox(0.33, 0.25, num_classes=2, depthwise=True)).train()
    images = torch.rand(2, 3, 64, 64) * 255
    padded = torch.zeros(2, 120, 5)
    padded[0, :3] = torch.tensor([[0, 20, 20, 16, 12], [1, 40, 30, 10, 20], [0, 50, 50, 8, 8]])
    padded[1, :1] = torch.tensor([[1, 32, 32, 30, 24]])
    trimmed = trim_label_padding(padded)
    assert trimmed.shape == (2, 3, 5) and torch.equal(trimmed, padded[:, :3])
    assert trim_label_padding(torch.zeros(2, 120, 5)).shape == (2, 1, 5)
    with_padding, without = model(images, padded), model(images, trimmed)
    for name, value in with_padding.items():
        torch.testing.assert_close(without[name], value, rtol=1e-6, atol=1e-7, msg=name)
