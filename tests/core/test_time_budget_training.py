"""`--time` in the trainer: the plan line, a run that ends inside its budget, resume within what is left."""
import os

import torch

from tests.conftest import loguru_messages
from tests.core.conftest import train_args
from yolox.core.trainer import Trainer
from yolox.exp import get_exp
from yolox.utils.device import build_policy


def timed_run(exp_file, **overrides):
    exp = get_exp(str(exp_file))
    exp.print_interval = 1
    trainer = Trainer(exp, train_args(**overrides), policy=build_policy("cpu"))
    with loguru_messages("INFO") as messages:
        trainer.train()
    return trainer, messages


def test_a_timed_run_plans_its_epochs_and_ends_inside_the_budget(tiny_exp_file):
    trainer, messages = timed_run(tiny_exp_file, time="8s")
    plans = [m for m in messages if m.startswith("time: 8 s -> ")]
    assert plans and " epochs at " in plans[0] and " evaluations at " in plans[0]
    assert trainer.max_epoch > 2    # the exp's 2 epochs take well under a second: the plan fills the budget
    spent = trainer.clock.keeper.spent()
    assert 4.0 < spent <= 8.0, spent      # the budget is used, not overrun
    assert trainer.clock.keeper.replans >= 1   # the first evaluation took far less than estimated
    assert any(m.startswith("time: ") and "budget used" in m and "inside it" in m for m in messages)
    ckpt = torch.load(os.path.join(trainer.file_name, "latest_ckpt.pth"), weights_only=True)
    assert ckpt["time_budget"] == 8.0 and 0 < ckpt["time_spent"] <= 8.0
    assert trainer.eval_history and trainer.eval_history[-1]["epoch"] == ckpt["start_epoch"]


def test_max_epoch_given_caps_the_plan(tiny_exp_file):
    trainer, _ = timed_run(tiny_exp_file, time="30s", time_max_epoch=3)
    assert trainer.max_epoch == 3 and trainer.epoch + 1 == 3
    assert trainer.clock.keeper.spent() < 30


def test_resume_continues_within_what_is_left(tiny_exp_file):
    first, _ = timed_run(tiny_exp_file, time="4s")
    resumed, messages = timed_run(tiny_exp_file, resume=True)      # no --time: the checkpoint's budget
    assert resumed.clock.keeper.budget_seconds == 4.0
    assert resumed.clock.keeper.spent_before > 0
    assert resumed.clock.keeper.spent() <= 4.0
    assert any("the budget is already spent" in m for m in messages) or resumed.epoch >= first.epoch
