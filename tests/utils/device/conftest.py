"""Fixtures of the device policy tests: torch.cuda forbidden, warnings seen, fake memory and AMP probes."""
import functools
import inspect

import pytest
import torch

from tests.conftest import loguru_messages
from yolox.utils.device import (
    MemoryBackend,
)


@pytest.fixture
def no_cuda(monkeypatch):
    """Every public torch.cuda function raises: a decision that reaches for CUDA fails loudly."""
    def make_raiser(name, original):
        @functools.wraps(original)  # keeps attributes torch's own introspection reads (e.g. __wrapped__)
        def raiser(*args, **kwargs):
            raise AssertionError(f"torch.cuda.{name} called in a test that simulates a machine without CUDA")
        return raiser

    for name, value in vars(torch.cuda).items():
        if name.startswith("_"):
            continue
        if inspect.isfunction(value) or inspect.isbuiltin(value):
            monkeypatch.setattr(torch.cuda, name, make_raiser(name, value))
    return monkeypatch


@pytest.fixture
def warnings_seen():
    """Messages loguru emits at WARNING and above while the test runs."""
    with loguru_messages("WARNING") as messages:
        yield messages


class FakeMemory(MemoryBackend):
    """Scripted memory figures; records cache releases and synchronisations."""
    name = "fake"

    def __init__(self, allocated=100 * 2 ** 20, peak=300 * 2 ** 20, limit=1000 * 2 ** 20):
        super().__init__()
        self._allocated, self._peak_value, self._limit = allocated, peak, limit
        self.released = self.synced = self.resets = 0

    def allocated(self):
        return self._allocated

    def peak(self):
        return self._peak_value

    def reset_peak(self):
        self.resets += 1

    def limit(self):
        return self._limit

    def release_cache(self):
        self.released += 1

    def synchronize(self):
        self.synced += 1


def passing_probe(dtype):
    return True, f"{dtype} fine"


def failing_probe(dtype):
    return False, "float16 probe on mps was killed by SIGABRT (hard abort): original module failed verification"
