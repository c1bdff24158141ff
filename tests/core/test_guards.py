"""The non-finite guard: skipped steps, restores at a lower learning rate, refused checkpoints; in the trainer."""
import json
import os

import pytest
import torch
from torch import nn

from tests.core.conftest import train_args
from yolox.core.guards import NonFiniteGuard
from yolox.core.step import TrainStep
from yolox.core.trainer import Trainer, TrainingDiverged
from yolox.exp import get_exp
from yolox.utils.device import build_policy


def tiny_state():
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, optimizer


def backward(model, value):
    model.zero_grad()
    loss = model(torch.ones(1, 3)).sum() * value
    loss.backward()
    return loss


def test_nonfinite_steps_are_counted_and_three_in_a_row_ask_for_a_restore():
    model, _ = tiny_state()
    guard = NonFiniteGuard(patience=3)
    assert guard.step_is_finite(backward(model, 1.0), model)
    for expected in (False, False, False):
        assert guard.step_is_finite(backward(model, float("nan")), model) is expected
    assert guard.counts.skipped_steps == 3 and guard.needs_restore()


def test_a_nonfinite_gradient_alone_is_caught_unless_a_scaler_owns_the_gradients():
    model, _ = tiny_state()
    loss = backward(model, 1.0)
    model.weight.grad[0, 0] = float("inf")
    assert not NonFiniteGuard().step_is_finite(loss, model)
    assert NonFiniteGuard().step_is_finite(loss, model, check_grads=False)


def test_restore_returns_to_the_last_good_weights_and_halves_the_learning_rate():
    model, optimizer = tiny_state()
    guard = NonFiniteGuard(patience=1)
    guard.after_good_step(model, optimizer, None)
    good = {name: value.clone() for name, value in model.state_dict().items()}
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    guard.step_is_finite(backward(model, 1.0), model)
    guard.restore(model, optimizer, None, where="epoch 1 iter 5")
    assert all(torch.equal(model.state_dict()[name], value) for name, value in good.items())
    assert guard.lr_scale == 0.5 and guard.counts.restores == 1


def test_a_state_that_is_already_nonfinite_is_never_kept_as_the_one_to_return_to():
    model, optimizer = tiny_state()
    guard = NonFiniteGuard(snapshot_every=1)
    guard.after_good_step(model, optimizer, None)
    good = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    guard.after_good_step(model, optimizer, None)   # the NaN state must not replace the good copy
    guard.restore(model, optimizer, None, where="here")
    assert torch.equal(model.weight.detach(), good)


def test_the_run_stops_after_the_last_allowed_restore():
    model, optimizer = tiny_state()
    guard = NonFiniteGuard(patience=1, max_restores=2)
    guard.after_good_step(model, optimizer, None)
    for _ in range(2):
        guard.restore(model, optimizer, None, where="x")
    with pytest.raises(TrainingDiverged, match="training diverged at epoch 3 iter 1: .* basic_lr_per_img"):
        guard.restore(model, optimizer, None, where="epoch 3 iter 1")


def test_a_checkpoint_with_nonfinite_weights_is_refused_and_counted():
    guard = NonFiniteGuard()
    assert guard.checkpoint_is_finite({"w": torch.ones(2), "steps": 3}, "latest_ckpt.pth")
    assert not guard.checkpoint_is_finite({"w": torch.tensor([1.0, float("inf")])}, "latest_ckpt.pth")
    assert guard.counts.refused_checkpoints == 1


def nan_weights_after_step(iteration: int):
    """An optimizer step hook that turns every weight NaN after step `iteration` (1-based), once."""
    steps = {"done": 0}

    def hook(optimizer, args, kwargs):
        steps["done"] += 1
        if steps["done"] == iteration:
            with torch.no_grad():
                for group in optimizer.param_groups:
                    for param in group["params"]:
                        param.fill_(float("nan"))
    return hook


def test_a_run_whose_weights_turn_nan_mid_run_ends_with_finite_checkpoints(tiny_exp_file, monkeypatch):
    exp = get_exp(str(tiny_exp_file))
    exp.max_epoch, exp.print_interval = 6, 1
    real_get_optimizer = exp.get_optimizer

    def hooked_optimizer(batch_size, model=None, policy=None):
        optimizer = real_get_optimizer(batch_size, model=model, policy=policy)
        optimizer.register_step_post_hook(nan_weights_after_step(5))
        return optimizer

    monkeypatch.setattr(exp, "get_optimizer", hooked_optimizer)
    trainer = Trainer(exp, train_args(), policy=build_policy("cpu"))
    trainer.train()
    counts = trainer.guard.counts
    assert counts.skipped_steps >= 3 and counts.restores >= 1
    for name in ("latest_ckpt.pth", "best_ckpt.pth", "last_epoch_ckpt.pth"):
        ckpt = torch.load(os.path.join(trainer.file_name, name), weights_only=True)
        for key in ("model", "train_model"):
            assert all(torch.isfinite(value).all() for value in ckpt[key].values() if value.is_floating_point())
    assert ckpt["start_epoch"] == 6
    log = open(os.path.join(trainer.file_name, "train_log.txt")).read()
    assert f"guard: non-finite steps skipped: {counts.skipped_steps}, restores: {counts.restores}" in log
    assert "restored the last good weights" in log


def test_a_loss_that_stays_nan_stops_the_run_with_a_clear_message(tiny_exp_file, monkeypatch):
    exp = get_exp(str(tiny_exp_file))
    exp.max_epoch = 12
    real_forward_backward = TrainStep.forward_backward
    steps = {"n": 0}

    def nan_from_iteration_4(self, inps, targets):
        outputs = real_forward_backward(self, inps, targets)
        steps["n"] += 1
        if steps["n"] >= 4:
            outputs["total_loss"] = outputs["total_loss"] * float("nan")
        return outputs

    monkeypatch.setattr(TrainStep, "forward_backward", nan_from_iteration_4)
    trainer = Trainer(exp, train_args(), policy=build_policy("cpu"))
    with pytest.raises(TrainingDiverged, match="non-finite steps in a row after 5 restores"):
        trainer.train()
    assert trainer.guard.counts.restores == 5 and trainer.guard.lr_scale == pytest.approx(0.5 ** 5)


def test_the_cross_check_runs_once_per_run_and_a_fault_is_warned_and_recorded(tiny_exp_file):
    exp = get_exp(str(tiny_exp_file))
    exp.max_epoch = 3
    policy = build_policy("mps", tensors_on="cpu")
    trainer = Trainer(exp, train_args(), policy=policy)
    calls = {"trained": False, "evals": 0}

    def shift_the_device_pass(module, inputs, output):
        if module.training:
            calls["trained"] = True
            return output
        if not calls["trained"]:
            return output       # the model summary's forward, before training
        calls["evals"] += 1     # the first eval-mode forward after training is the cross-check's device pass
        return output + 20.0 if calls["evals"] == 1 else output

    real_build = trainer.build_model
    trainer.build_model = lambda: _hooked(real_build(), shift_the_device_pass)
    trainer.train()
    rows = [json.loads(line) for line in open(os.path.join(trainer.file_name, "eval_history.jsonl"))]
    assert len(rows) == 3 and ["cpu_cross_check" in row for row in rows] == [True, False, False]
    check = rows[0]["cpu_cross_check"]
    assert check["agree"] is False and check["box_tolerance"] == pytest.approx(0.1)
    log = open(os.path.join(trainer.file_name, "train_log.txt")).read()
    assert "disagrees with the CPU on the first batch (both in fp32)" in log and "yolox-check-device --device mps" in log


def test_a_skipped_step_makes_the_next_evaluation_check_again(tiny_exp_file):
    exp = get_exp(str(tiny_exp_file))
    exp.max_epoch = 2
    trainer = Trainer(exp, train_args(), policy=build_policy("mps", tensors_on="cpu"))
    trainer.before_train()
    evaluation, model = trainer.evaluation, trainer.ema_model.ema
    assert evaluation.cross_check(model, skipped_steps=0) is not None     # the run's first evaluation
    assert evaluation.cross_check(model, skipped_steps=0) is None         # nothing new since
    assert evaluation.cross_check(model, skipped_steps=2) is not None     # the guard skipped steps since


def test_a_cpu_run_makes_no_cross_check(tiny_exp_file):
    trainer = Trainer(get_exp(str(tiny_exp_file)), train_args(), policy=build_policy("cpu"))
    trainer.train()
    assert all("cpu_cross_check" not in row for row in trainer.eval_history)


def _hooked(model, hook):
    model.register_forward_hook(hook)
    return model
