"""The trainer owns what it trains and keeps the evaluation results; exps with upstream's signatures still train."""
import torch

from tests.core.conftest import train_args
from yolox.core.trainer import Trainer
from yolox.exp import get_exp
from yolox.utils.device import build_policy


def one_epoch_exp(exp_file):
    exp = get_exp(str(exp_file))
    exp.max_epoch, exp.no_aug_epochs = 1, 0
    return exp


def test_evaluations_come_back_as_trainer_history_not_exp_fields(tiny_exp_file):
    exp = one_epoch_exp(tiny_exp_file)
    trainer = Trainer(exp, train_args(), build_policy("cpu"))
    trainer.train()
    assert [(row["epoch"], row["best"]) for row in trainer.eval_history] == [(1, True)]
    assert {"AP50", "AP50:95", "samples_seen"} <= set(trainer.eval_history[0])
    assert isinstance(trainer.last_eval_outputs, dict)
    assert not {"model", "optimizer", "device_policy", "last_eval", "last_eval_outputs"} & set(vars(exp))
    trained = {id(param) for param in trainer.model.parameters()}
    assert {id(param) for group in trainer.optimizer.param_groups for param in group["params"]} == trained


def upstream_style(exp):
    """Overrides with upstream YOLOX's signatures (no policy, no model argument), caching the model on the exp."""
    base = type(exp)

    def get_model():
        if "model" not in vars(exp):
            exp.model = base.get_model(exp)
        return exp.model

    exp.get_model = get_model
    exp.get_optimizer = lambda batch_size: base.get_optimizer(exp, batch_size)
    exp.get_data_loader = lambda batch_size, is_distributed, no_aug=False, cache_img=None: base.get_data_loader(
        exp, batch_size, is_distributed, no_aug, cache_img)
    exp.get_evaluator = lambda batch_size, is_distributed, testdev=False, legacy=False: base.get_evaluator(
        exp, batch_size, is_distributed, testdev, legacy)
    exp.eval = lambda model, evaluator, is_distributed, half=False, return_outputs=False: base.eval(
        exp, model, evaluator, is_distributed, half, return_outputs)
    return exp


def test_upstream_style_overrides_without_the_new_keywords_still_train(tiny_exp_file):
    exp = upstream_style(one_epoch_exp(tiny_exp_file))
    trainer = Trainer(exp, train_args(), build_policy("cpu"))
    trainer.train()
    assert trainer.model is exp.model and len(trainer.eval_history) == 1
    optimized = {id(param) for group in trainer.optimizer.param_groups for param in group["params"]}
    assert optimized == {id(param) for param in exp.model.parameters()}  # get_optimizer fell back to exp.model
    assert all(torch.isfinite(param).all() for param in trainer.model.parameters())
