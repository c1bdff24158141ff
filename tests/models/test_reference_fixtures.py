"""yolox-nano / yolox-tiny against upstream's reference outputs (random weights, 2 noise images at 416).

Runs on the CPU and on every accelerator present (TF32 off: the tolerances were measured in fp32).
"""
import itertools

import pytest
import torch

from tests.conftest import shared_path
from yolox.models import yolox_loss
from yolox.models.build import build_yolox, init_yolox
from yolox.utils.boxes import postprocess
from yolox.utils.device import device_count

MODELS = ("nano", "tiny")
DEVICES = ["cpu"] + [kind for kind in ("cuda", "mps") if device_count(kind)]
HEAD_UNIT_TOL = 2e-3  # fixture README: about 4-10x the worst float64 gap
BOX_TOL_PX = 0.05
SCORE_REL_TOL = 2e-3


def head_units(out: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Decoded [B, N, 5+C] -> xy/stride, log wh, logit of obj/cls (float64); the fixture README's recipe."""
    h, w = cfg["input_size"]
    strides = torch.cat(
        [torch.full(((h // s) * (w // s),), float(s), dtype=torch.float64) for s in cfg["strides"]]
    )[None, :, None]
    out = out.double()
    probs = out[..., 4:].clamp(1e-12, 1 - 1e-12)
    return torch.cat([out[..., :2] / strides, out[..., 2:4].log(), probs.log() - (-probs).log1p()], -1)


def model_from_config(cfg: dict) -> torch.nn.Module:
    return init_yolox(build_yolox(cfg["depth"], cfg["width"], cfg["num_classes"], cfg["act"], cfg["depthwise"]))


@pytest.fixture(scope="module")
def no_tf32():
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = previous


@pytest.fixture(scope="module", params=list(itertools.product(MODELS, DEVICES)), ids="-".join)
def reference(request, no_tf32):
    name, device = request.param
    ref = torch.load(shared_path("fixtures", f"ref_yolox-{name}.pt"), weights_only=True, map_location=device)
    ref["device"] = device
    model = model_from_config(ref["config"]).to(device)
    model.load_state_dict(ref["state_dict"], strict=True)
    model.eval()
    with torch.no_grad():
        ref["our_eval_output"] = model(ref["images"])
    return ref


def fresh_train_model(reference) -> torch.nn.Module:
    """Every train-mode check starts from the stored weights: a train forward changes BN statistics."""
    model = model_from_config(reference["config"]).to(reference["device"])
    model.load_state_dict(reference["state_dict"], strict=True)
    return model.train()


def test_eval_output_matches_in_head_units(reference):
    cfg = reference["config"]
    ours, theirs = reference["our_eval_output"], reference["eval_output"]
    assert ours.shape == theirs.shape == (2, 3549, 85)
    err = (head_units(ours, cfg) - head_units(theirs, cfg)).abs().max().item()
    assert err <= HEAD_UNIT_TOL, f"{cfg['name']}: max head-unit error {err:.2e}"


def assert_rows_match(ours: torch.Tensor, theirs: torch.Tensor, label: str) -> None:
    """Same count and class ids; each reference row matched to a distinct nearest row of ours."""
    assert ours.shape == theirs.shape, label
    assert sorted(ours[:, 6].tolist()) == sorted(theirs[:, 6].tolist()), label
    nearest = (theirs[:, None, :] - ours[None, :, :]).abs().amax(dim=2).argmin(dim=1)
    assert nearest.unique().numel() == theirs.shape[0], f"{label}: reference rows share a match"
    matched = ours[nearest]
    assert torch.equal(matched[:, 6], theirs[:, 6]), label
    assert (matched[:, :4] - theirs[:, :4]).abs().max() <= BOX_TOL_PX, label
    score_rel = ((matched[:, 4:6] - theirs[:, 4:6]).abs() / theirs[:, 4:6]).max()
    assert score_rel <= SCORE_REL_TOL, f"{label}: score rel error {score_rel:.2e}"


def test_postprocess_variants_match(reference):
    assert len(reference["postprocess_variants"]) == 4
    for variant in reference["postprocess_variants"]:
        outputs = postprocess(
            reference["our_eval_output"].clone(),
            reference["config"]["num_classes"],
            variant["conf_thre"],
            variant["nms_thre"],
            variant["class_agnostic"],
        )
        for image_idx, (ours, theirs) in enumerate(zip(outputs, variant["output"])):
            ours = ours if ours is not None else torch.zeros((0, 7), device=theirs.device)
            label = f"{reference['config']['name']} {variant['nms_thre']}/{variant['class_agnostic']} image {image_idx}"
            assert_rows_match(ours, theirs, label)


def _without_loss_module(monkeypatch) -> None:
    """Stand-in compute_losses returning zeros: the BN check needs the forward, not the losses."""

    def zero_losses(outputs, *args, **kwargs):
        zero = outputs.sum() * 0
        return (zero,) * 6

    monkeypatch.setattr(yolox_loss, "compute_losses", zero_losses)


def test_train_forward_bn_statistics(reference, monkeypatch):
    """One train-mode forward updates BN running stats with momentum 0.03 and unbiased variance."""
    _without_loss_module(monkeypatch)
    model = fresh_train_model(reference)
    with torch.no_grad():  # BN running stats update in train mode regardless of autograd
        model(reference["images"], reference["targets"])
    for name, expected in reference["bn_after_train"].items():
        bn = model.get_submodule(name)
        torch.testing.assert_close(bn.running_mean, expected["running_mean"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bn.running_var, expected["running_var"], rtol=1e-5, atol=1e-6)
        assert int(bn.num_batches_tracked) == int(expected["num_batches_tracked"])


def test_train_losses_match_when_loss_module_present(reference):
    pytest.importorskip("yolox.models.yolox_loss", reason="LOSS module yolox_loss not written yet")
    for suffix, use_l1 in (("", False), ("_l1", True)):
        model = fresh_train_model(reference)
        model.head.use_l1 = use_l1
        with torch.no_grad():
            losses = model(reference["images"], reference["targets"])
        expected = reference[f"train_losses{suffix}"]
        assert list(losses) == ["total_loss", "iou_loss", "l1_loss", "conf_loss", "cls_loss", "num_fg"]
        for key, value in expected.items():
            ours = float(losses[key])
            if key == "num_fg":
                assert ours == pytest.approx(value, abs=1e-6), key
            else:
                assert ours == pytest.approx(value, rel=1e-4, abs=1e-7), f"{key}{suffix}"
