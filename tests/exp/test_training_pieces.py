"""Optimizer groups, LR schedule, multiscale size draws and batch resize built by the Exp."""
import random

import pytest
import torch

from yolox.exp import get_exp


@pytest.fixture(scope="module")
def yolox_s_optimizer():
    exp = get_exp(None, "yolox-s")
    with torch.device("meta"):  # group membership only: skip the weight init cost
        model = exp.get_model()
    return model, exp.get_optimizer(64, model=model)


def test_optimizer_groups_yolox_s(yolox_s_optimizer):
    model, optimizer = yolox_s_optimizer
    groups = optimizer.param_groups
    assert [len(group["params"]) for group in groups] == [74, 83, 83]
    assert [group["weight_decay"] for group in groups] == [0, 5e-4, 0]
    assert all(group["nesterov"] and group["momentum"] == 0.9 for group in groups)
    assert all(group["lr"] == 0 for group in groups)  # warmup starts from warmup_lr
    ids = [id(p) for group in groups for p in group["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert all(p.dim() == 1 for p in groups[0]["params"] + groups[2]["params"])
    assert all(p.dim() == 4 for p in groups[1]["params"])


def test_each_call_builds_a_new_model_and_optimizer_and_upstream_exps_keep_theirs():
    exp = get_exp(None, "yolox-nano")
    model = exp.get_model()
    assert exp.get_model() is not model and "model" not in vars(exp)
    assert exp.get_optimizer(8, model=model) is not exp.get_optimizer(8, model=model)
    with pytest.raises(TypeError, match="model=model"):
        exp.get_optimizer(8)
    exp.model = model  # an upstream-style exp caches its model in get_model
    assert exp.get_optimizer(8).param_groups[0]["params"][0] is next(iter(exp.get_optimizer(8, model=model)
                                                                        .param_groups[0]["params"]))


@pytest.mark.parametrize("exp_file,optimizer_type", [(None, "sgd"), ("exps/crater/yolox_nano_crater.py", "adamw")])
def test_optimizer_is_fused_when_the_device_policy_says(exp_file, optimizer_type):
    from yolox.utils.device import build_policy

    exp = get_exp(exp_file, "yolox-nano")
    exp.optimizer_type = optimizer_type
    model = exp.get_model()
    optimizer = exp.get_optimizer(8, model=model, policy=build_policy("cpu", fused_optimizer=True))
    assert optimizer.defaults["fused"] and optimizer._step_supports_amp_scaling
    assert type(optimizer).__name__.lower() == optimizer_type
    assert not exp.get_optimizer(8, model=model, policy=build_policy("cpu")).defaults["fused"]


@pytest.mark.parametrize("exp_file,optimizer_type", [(None, "sgd"), ("exps/crater/yolox_nano_crater.py", "adamw")])
def test_fused_optimizer_survives_a_skipped_first_step_and_matches_the_foreach_one(exp_file, optimizer_type):
    from yolox.utils.device import build_policy

    def train(fused: bool) -> torch.Tensor:
        torch.manual_seed(0)
        exp = get_exp(exp_file, "yolox-nano")
        exp.optimizer_type, exp.warmup_epochs = optimizer_type, 0
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
        optimizer = exp.get_optimizer(8, model=model, policy=build_policy("cpu", fused_optimizer=fused))
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
        for step in range(4):
            optimizer.zero_grad()
            loss = model(torch.ones(2, 3, 5, 5)).square().sum() * (1e36 if step == 0 else 1.0)
            scaler.scale(loss).backward()  # the first step overflows: the scaler skips it
            scaler.step(optimizer)
            scaler.update()
        return torch.cat([param.detach().flatten() for param in model.parameters()])

    fused = train(True)
    assert torch.isfinite(fused).all()
    torch.testing.assert_close(fused, train(False))


def test_optimizer_lr_without_warmup():
    exp = get_exp(None, "yolox-nano")
    exp.warmup_epochs = 0
    assert exp.get_optimizer(32, model=exp.get_model()).param_groups[0]["lr"] == pytest.approx(0.01 / 64 * 32)


def test_lr_scheduler_uses_exp_settings():
    exp = get_exp(None, "yolox-s")
    scheduler = exp.get_lr_scheduler(0.01, 100)
    # upstream yoloxwarmcos values at 100 iters/epoch, 300 epochs, computed by hand from its formula.
    assert scheduler.update_lr(1) == pytest.approx(4e-8)
    assert scheduler.update_lr(250) == pytest.approx(0.0025)
    assert scheduler.update_lr(10000) == pytest.approx(0.0075477, abs=1e-7)
    assert scheduler.update_lr(28500) == pytest.approx(0.0005)


def test_random_resize_range_and_default_random_size():
    exp = get_exp(None, "yolox-s")
    exp.input_size = (640, 960)
    random.seed(0)
    sizes = {exp.random_resize(None, 0, 0, False) for _ in range(300)}
    assert exp.random_size is None and exp.multiscale_bounds() == (15, 25)    # drawing sizes changes no field
    assert {h for h, _ in sizes} == {32 * k for k in range(15, 26)}
    assert all(w == 32 * int(h // 32 * 1.5) for h, w in sizes)


def test_random_resize_small_models():
    exp = get_exp(None, "yolox-nano")
    random.seed(1)
    heights = {exp.random_resize(None, 0, 0, False)[0] for _ in range(200)}
    assert min(heights) == 320 and max(heights) == 640


def test_preprocess_rescales_images_and_targets():
    exp = get_exp(None, "yolox-nano")
    inputs = torch.rand(2, 3, 416, 416)
    targets = torch.zeros(2, 4, 5)
    targets[0, 0] = torch.tensor([3.0, 100.0, 200.0, 40.0, 80.0])
    resized, scaled = exp.preprocess(inputs, targets.clone(), (320, 480))
    assert resized.shape == (2, 3, 320, 480)
    expected = torch.tensor([3.0, 100.0 * 480 / 416, 200.0 * 320 / 416, 40.0 * 480 / 416, 80.0 * 320 / 416])
    assert torch.allclose(scaled[0, 0], expected)
    assert torch.count_nonzero(scaled[0, 1:]) == 0 and torch.count_nonzero(scaled[1]) == 0
    same, unchanged = exp.preprocess(inputs, targets.clone(), (416, 416))
    assert same is inputs and torch.equal(unchanged, targets)


class UpstreamStyleEvaluator:
    def evaluate(self, model, distributed=False, half=False, trt_file=None, decoder=None, test_size=None,
                 return_outputs=False):
        return (0.5, 0.7, "summary"), {"distributed": distributed, "half": half}


class PolicyAwareEvaluator:
    def evaluate(self, model, distributed=False, half=False, return_outputs=False, policy=None):
        return (0.1, 0.2, "summary"), {"policy": policy}


def test_eval_passes_the_policy_only_to_evaluators_that_take_it():
    exp = get_exp(None, "yolox-nano")
    result, details = exp.eval(None, UpstreamStyleEvaluator(), True, half=True, return_outputs=True,
                               policy="the policy")
    assert result == (0.5, 0.7, "summary") and details == {"distributed": True, "half": True}
    _, details = exp.eval(None, PolicyAwareEvaluator(), False, return_outputs=True, policy="the policy")
    assert details == {"policy": "the policy"}


@pytest.mark.parametrize("takes_policy", [True, False])
def test_get_evaluator_hands_testdev_and_legacy_on_and_the_policy_where_the_loader_takes_it(takes_policy):
    exp = get_exp(None, "yolox-nano")
    seen = {}

    def upstream_loader(batch_size, is_distributed, **kwargs):
        seen.update(kwargs)
        return "loader"

    def policy_loader(batch_size, is_distributed, policy=None, **kwargs):
        return upstream_loader(batch_size, is_distributed, policy=policy, **kwargs)

    exp.get_eval_loader = policy_loader if takes_policy else upstream_loader
    evaluator = exp.get_evaluator(8, False, testdev=True, legacy=True, policy="the policy")
    assert evaluator.dataloader == "loader" and evaluator.testdev
    assert seen == {"testdev": True, "legacy": True, **({"policy": "the policy"} if takes_policy else {})}
