"""yolox.crater.exp: AdamW over upstream's param groups, the centre window reaching the head, the loaders."""
import pytest
import torch

from tests.crater.runs import NANO_EXP
from tests.tools.conftest import REPO
from yolox.crater.exp import CraterExp
from yolox.exp import get_exp


def tiny_exp(**overrides):
    exp = get_exp(NANO_EXP, None)
    exp.num_classes_from_data = False
    exp.merge([item for pair in overrides.items() for item in pair])
    return exp


def test_adamw_has_no_decay_on_bn_weights_and_biases():
    exp = tiny_exp(optimizer_type="adamw", weight_decay="0.05")
    optimizer = exp.get_optimizer(8, model=exp.get_model())
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.0, 0.05, 0.0]
    assert optimizer.param_groups[0]["betas"] == (exp.momentum, 0.999)


def test_sgd_stays_the_default_and_an_unknown_optimizer_is_a_clear_error():
    exp = tiny_exp()
    assert isinstance(exp.get_optimizer(8, model=exp.get_model()), torch.optim.SGD)
    wrong = tiny_exp(optimizer_type="lion")
    with pytest.raises(ValueError, match="optimizer_type 'lion'"):
        wrong.get_optimizer(8, model=wrong.get_model())


def test_center_radius_reaches_the_head():
    assert tiny_exp().get_model().head.center_radius == 1.5
    assert tiny_exp(center_radius="2.5").get_model().head.center_radius == 2.5


@pytest.mark.parametrize("no_aug", [False, True])
def test_device_augment_loader_builds_in_both_phases_with_the_crater_flips(tmp_path, no_aug):
    from tests.data.synth import random_coco_set

    root = random_coco_set(tmp_path, num_images=6)
    exp = tiny_exp(device_augment="True", data_dir=str(root), input_size="64,64", data_num_workers="0", num_classes="2")
    loader = exp.get_data_loader(batch_size=4, is_distributed=False, no_aug=no_aug)
    assert loader.batch_transform.config.vflip_prob == exp.vflip_prob
    assert loader.batch_transform.config.transpose_prob == exp.transpose_prob
    images, labels, meta, _ = next(iter(loader))
    assert images.dtype == torch.uint8 and images.shape[0] == 4
    assert bool(meta[:, 0].eq(0).all()) == no_aug


def test_no_aug_scale_with_device_augment_is_a_clear_error():
    exp = tiny_exp(device_augment="True", no_aug_scale="0.5,1.5")
    with pytest.raises(ValueError, match="no_aug_scale works on the per-image pipeline only"):
        exp.get_data_loader(batch_size=4, is_distributed=False, no_aug=True)


@pytest.mark.parametrize("kind", ["cuda", "mps", "cpu"])
def test_device_augment_follows_the_policy_unless_set(kind):
    from yolox.utils.device import build_policy

    policy = build_policy(kind, tensors_on="cpu", amp_probe=lambda dtype: (False, "not probed"))
    assert tiny_exp().resolve_device_augment(policy.batch_augment, policy.reasons["batch_augment"]) == (kind == "cuda")
    assert tiny_exp(device_augment="False").resolve_device_augment(True, "policy") is False
    assert tiny_exp(no_aug_scale="0.5,1.5").resolve_device_augment(True, "policy") is False


@pytest.mark.parametrize("name", ["yolox_m_crater", "yolox_s_crater", "yolox_nano_crater", "yolox_nano_crater_demo"])
def test_every_crater_exp_file_is_a_crater_exp(name):
    exp = get_exp(str(REPO / "exps" / "crater" / f"{name}.py"))
    assert isinstance(exp, CraterExp) and exp.exp_name == name
