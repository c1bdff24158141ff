"""The trainer shows an epoch bar on a terminal (log lines above it) and only its log lines elsewhere."""
import importlib.util
import os
import sys

import pytest

from tests.conftest import FakeStderr
from tests.core.conftest import train_args
from yolox.core.trainer import Trainer
from yolox.exp import get_exp
from yolox.utils.device import build_policy


def train_with_stderr(exp_file, monkeypatch, terminal: bool):
    stream = FakeStderr(terminal)
    monkeypatch.setattr(sys, "__stderr__", stream)
    trainer = Trainer(get_exp(str(exp_file)), train_args(), policy=build_policy("cpu"))
    trainer.train()
    log = open(os.path.join(trainer.file_name, "train_log.txt")).read()
    return stream.getvalue(), log


@pytest.mark.skipif(importlib.util.find_spec("tqdm") is None, reason="tqdm is not installed")
def test_terminal_gets_epoch_bars_and_the_log_file_none(tiny_exp_file, monkeypatch):
    shown, log = train_with_stderr(tiny_exp_file, monkeypatch, terminal=True)
    assert "epoch 1/2: 100%|" in shown and "epoch 2/2: 100%|" in shown and "3/3" in shown and "it/s" in shown
    assert "epoch: 1/2, iter: 2/3" in shown  # the log lines still show, above the bar
    assert "epoch: 1/2, iter: 2/3" in log and "%|" not in log and "it/s" not in log


def test_other_output_gets_the_log_lines_and_no_bar(tiny_exp_file, monkeypatch):
    shown, log = train_with_stderr(tiny_exp_file, monkeypatch, terminal=False)
    assert "epoch: 1/2, iter: 2/3" in shown and "epoch: 1/2, iter: 2/3" in log
    assert "%|" not in shown and "%|" not in log
