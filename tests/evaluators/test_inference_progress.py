"""run_inference shows a tqdm bar on a terminal and log lines elsewhere, never both."""
import importlib.util
import sys

import pytest
import torch
from torch import nn

from tests.conftest import FakeStderr, loguru_messages
from yolox.evaluators.inference import run_inference


class NoDetections(nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.zeros(images.shape[0], 4, 6)  # objectness 0: nothing passes the threshold


def evaluate_with_stderr(monkeypatch, terminal: bool):
    stream = FakeStderr(terminal)
    monkeypatch.setattr(sys, "__stderr__", stream)
    batches = [(torch.zeros(2, 3, 8, 8), None, None, [i]) for i in range(3)]
    with loguru_messages("INFO") as messages:
        run_inference(NoDetections(), batches, lambda *unused: None, num_classes=1, confthre=0.5, nmsthre=0.5)
    return stream.getvalue(), messages


@pytest.mark.skipif(importlib.util.find_spec("tqdm") is None, reason="tqdm is not installed")
def test_terminal_gets_a_bar_and_no_log_line(monkeypatch):
    shown, messages = evaluate_with_stderr(monkeypatch, terminal=True)
    assert "evaluating" in shown and "3/3" in shown and "batch/s" in shown
    assert not [m for m in messages if "evaluating" in m]


def test_other_output_gets_log_lines_and_no_bar(monkeypatch):
    shown, messages = evaluate_with_stderr(monkeypatch, terminal=False)
    assert shown == ""
    assert [m for m in messages if m.startswith("evaluating: done 3 batch in ")]
