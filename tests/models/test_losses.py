"""IOUloss, compute_losses against a per-image reference, and the upstream nano/tiny fixtures."""
import json
import math
import subprocess
import sys
from functools import lru_cache

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import REPO_ROOT, shared_path
from tests.models.test_assignment import reference_assign, synthetic_batch
from yolox.models.losses import IOUloss
from yolox.models.yolox_loss import compute_losses


# ---------------------------------------------------------------- IOUloss


def test_iou_loss_is_one_minus_iou_squared():
    pred = torch.tensor([[10.0, 10, 4, 4], [0, 0, 2, 2], [5, 5, 3, 3]])
    target = torch.tensor([[11.0, 10, 4, 4], [10, 10, 2, 2], [5, 5, 3, 3]])
    # overlaps: 3x4 of a 20 px union -> IoU 0.6; disjoint; identical
    torch.testing.assert_close(IOUloss()(pred, target), torch.tensor([1 - 0.6**2, 1.0, 0.0]))
    torch.testing.assert_close(IOUloss(reduction="sum")(pred, target), torch.tensor(0.64 + 1.0))
    torch.testing.assert_close(IOUloss(reduction="mean")(pred, target), torch.tensor(1.64 / 3))


def test_giou_loss_penalises_the_enclosing_box():
    pred = torch.tensor([[0.0, 0, 2, 2], [10, 10, 4, 4]])
    target = torch.tensor([[10.0, 10, 2, 2], [11, 10, 4, 4]])
    # disjoint: enclosing box 12x12, union 8 -> GIoU = -(144 - 8) / 144; second: enclosing 5x4 = union
    expected = torch.tensor([1 + 136 / 144, 1 - 0.6])
    torch.testing.assert_close(IOUloss(loss_type="giou")(pred, target), expected)


def test_iou_loss_rejects_bad_arguments():
    with pytest.raises(ValueError, match="reduction"):
        IOUloss(reduction="avg")
    with pytest.raises(ValueError, match="loss_type"):
        IOUloss(loss_type="diou")
    with pytest.raises(ValueError, match="as many"):
        IOUloss()(torch.zeros(2, 4), torch.zeros(3, 4))


# ---------------------------------------------------------------- compute_losses vs reference


def reference_losses(outputs, labels, grid, origin_preds, use_l1):
    """Upstream YOLOX's losses computed image by image, with boolean indexing and the per-image reference assignment."""
    x_shifts, y_shifts, strides = (part[0] for part in grid)
    num_classes = outputs.shape[2] - 5
    iou_loss = IOUloss()
    loss_iou = loss_cls = loss_l1 = 0.0
    obj_targets, num_fg, num_gts = [], 0, 0
    for image, ref in enumerate(reference_assign(outputs.detach(), labels, grid)):
        fg, matched = ref["fg"], ref["matched"]
        num_gts += len(ref["ks"])
        num_fg += int(fg.sum())
        obj_targets.append(fg.float())
        if not fg.any():
            continue
        gt = labels[image, matched, 1:5]
        cls_target = F.one_hot(labels[image, matched, 0].long(), num_classes) * ref["ious"][:, None]
        loss_iou = loss_iou + iou_loss(outputs[image, fg, :4], gt).sum()
        loss_cls = loss_cls + F.binary_cross_entropy_with_logits(outputs[image, fg, 5:], cls_target, reduction="sum")
        if use_l1:
            stride = strides[fg][:, None]
            l1_target = torch.cat(
                [gt[:, 0:1] / stride - x_shifts[fg][:, None], gt[:, 1:2] / stride - y_shifts[fg][:, None],
                 torch.log(gt[:, 2:] / stride + 1e-8)], dim=1)
            loss_l1 = loss_l1 + (origin_preds[image, fg] - l1_target).abs().sum()
    normalizer = max(num_fg, 1)
    loss_obj = F.binary_cross_entropy_with_logits(outputs[..., 4], torch.stack(obj_targets), reduction="sum")
    terms = [5.0 * loss_iou / normalizer, loss_obj / normalizer, loss_cls / normalizer, loss_l1 / normalizer]
    return [sum(terms)] + terms + [num_fg / max(num_gts, 1)]


@pytest.mark.parametrize("use_l1", [False, True])
def test_compute_losses_equals_per_image_reference(use_l1):
    outputs, labels, grid = synthetic_batch([30, 0, 12], size=96, num_classes=5, seed=21)
    outputs.requires_grad_(True)
    origin_preds = torch.randn(outputs.shape[0], outputs.shape[1], 4, requires_grad=True)
    ours = compute_losses(outputs, labels, *grid, origin_preds, num_classes=5, use_l1=use_l1, iou_loss=IOUloss())
    expected = reference_losses(outputs, labels, grid, origin_preds, use_l1)
    for mine, ref in zip(ours, expected):
        assert float(mine.detach()) == pytest.approx(float(torch.as_tensor(ref).detach()), rel=1e-5, abs=1e-7)
    assert ours[4].dim() == 0 and ours[5].dim() == 0
    assert float(ours[5]) > 0

    grad_ours = torch.autograd.grad(ours[0], [outputs, origin_preds] if use_l1 else [outputs])
    grad_ref = torch.autograd.grad(expected[0], [outputs, origin_preds] if use_l1 else [outputs])
    for mine, ref in zip(grad_ours, grad_ref):
        torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-6)


def test_compute_losses_with_no_ground_truth_anywhere():
    outputs, labels, grid = synthetic_batch([0, 0], size=64, num_classes=3, seed=1, max_labels=4)
    outputs[0, 0, 2:4] = float("inf")  # an overflowed box must not leak into the masked terms
    losses = compute_losses(outputs, labels, *grid, None, num_classes=3, use_l1=False, iou_loss=IOUloss())
    total, iou, obj, cls, l1, fg_per_gt = (float(v) for v in losses)
    assert iou == 0.0 and cls == 0.0 and l1 == 0.0 and fg_per_gt == 0.0
    assert obj == pytest.approx(float(F.binary_cross_entropy_with_logits(outputs[..., 4], torch.zeros(2, 84), reduction="sum")))
    assert math.isfinite(total) and total == pytest.approx(obj)


def test_compute_losses_needs_origin_preds_for_l1():
    outputs, labels, grid = synthetic_batch([3], size=64, num_classes=3, seed=1)
    with pytest.raises(ValueError, match="origin_preds"):
        compute_losses(outputs, labels, *grid, None, num_classes=3, use_l1=True, iou_loss=IOUloss())


def test_compute_losses_runs_on_meta_without_host_reads():
    """Meta tensors have no values: any .item(), nonzero or boolean indexing would raise."""
    outputs, labels, grid = synthetic_batch([9, 4], size=64, num_classes=3, seed=8)
    meta = [t.to("meta") for t in (outputs, labels, *grid, outputs[..., :4])]
    losses = compute_losses(*meta, num_classes=3, use_l1=True, iou_loss=IOUloss())
    assert all(loss.device.type == "meta" and loss.dim() == 0 for loss in losses)


# ---------------------------------------------------------------- upstream fixtures


@lru_cache(maxsize=None)
def fixture_run(name: str, use_l1: bool, cpu_policy: bool = False) -> dict:
    """One train-mode forward + backward of a freshly loaded fixture model, with the head's loss inputs.

    cpu_policy=True trains as the CPU device policy sets the model up: channels_last and the fused
    BatchNorm+SiLU kernel.
    """
    from yolox.models import fused_bn_silu
    from yolox.models.build import build_yolox, init_yolox
    from yolox.models.network_blocks import use_fused_bn_act
    import yolox.models.yolox_loss as yolox_loss

    ref = torch.load(shared_path("fixtures", f"ref_{name}.pt"), weights_only=True)
    cfg = ref["config"]
    model = init_yolox(build_yolox(cfg["depth"], cfg["width"], cfg["num_classes"], cfg["act"], cfg["depthwise"]))
    model.load_state_dict(ref["state_dict"], strict=True)
    model.train()
    model.head.use_l1 = use_l1
    images = ref["images"]
    if cpu_policy:
        model = model.to(memory_format=torch.channels_last)
        assert use_fused_bn_act(model, True) > 0 and fused_bn_silu.kernel() is not None
        images = images.contiguous(memory_format=torch.channels_last)

    head_inputs = {}
    real_compute_losses = yolox_loss.compute_losses

    def recording_compute_losses(*args, **kwargs):
        head_inputs["args"] = [arg.detach() if torch.is_tensor(arg) else arg for arg in args[:5]]
        return real_compute_losses(*args, **kwargs)

    yolox_loss.compute_losses = recording_compute_losses
    try:
        losses = model(images, ref["targets"])
    finally:
        yolox_loss.compute_losses = real_compute_losses
    losses["total_loss"].backward()
    params = dict(model.named_parameters())
    modules = dict(model.named_modules())
    return dict(
        ref=ref,
        cfg=cfg,
        losses={key: float(value.detach()) for key, value in losses.items()},
        grads={key: params[key].grad.detach().clone() for key in params if params[key].grad is not None},
        bn={key: modules[key] for key in ref["bn_after_train"]},
        head_inputs=head_inputs["args"],
    )


# tiny's CPU step takes several seconds: CI runs nano, `-m slow` adds tiny
FIXTURES = ["yolox-nano", pytest.param("yolox-tiny", marks=pytest.mark.slow)]
# the plain modules, and the CPU policy's channels_last layout with the fused BatchNorm+SiLU kernel
CPU_POLICY = pytest.mark.parametrize("cpu_policy", [False, True], ids=["plain", "cpu_policy"])


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("use_l1", [False, True])
@CPU_POLICY
def test_fixture_losses(name, use_l1, cpu_policy):
    run = fixture_run(name, use_l1, cpu_policy)
    expected = run["ref"]["train_losses_l1" if use_l1 else "train_losses"]
    assert list(run["losses"]) == list(expected)
    for key, value in expected.items():
        if key == "num_fg":
            num_gts = int((run["ref"]["targets"].sum(2) > 0).sum())
            assert round(run["losses"][key] * num_gts) == round(value * num_gts)
        else:
            assert run["losses"][key] == pytest.approx(value, rel=1e-4, abs=1e-12), key


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("use_l1", [False, True])
@CPU_POLICY
def test_fixture_gradients(name, use_l1, cpu_policy):
    run = fixture_run(name, use_l1, cpu_policy)
    suffix = "_l1" if use_l1 else ""
    norms = run["ref"]["grad_norms_all" + suffix]
    assert set(norms) <= set(run["grads"]) | {key for key, value in norms.items() if value == 0}
    for key, ref_norm in norms.items():
        norm = float(run["grads"][key].double().norm()) if key in run["grads"] else 0.0
        assert abs(norm - ref_norm) <= 1e-3 * abs(ref_norm) + 1e-12, key
    for key, ref_grad in run["ref"]["grads" + suffix].items():
        assert (run["grads"][key] - ref_grad).abs().max() <= 1e-3 * ref_grad.abs().max(), key


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("use_l1", [False, True])
@CPU_POLICY
def test_fixture_batchnorm_after_one_step(name, use_l1, cpu_policy):
    run = fixture_run(name, use_l1, cpu_policy)
    for key, stats in run["ref"]["bn_after_train_l1" if use_l1 else "bn_after_train"].items():
        bn = run["bn"][key]
        torch.testing.assert_close(bn.running_mean, stats["running_mean"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bn.running_var, stats["running_var"], rtol=1e-5, atol=1e-6)
        assert int(bn.num_batches_tracked) == stats["num_batches_tracked"]


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_simota_assignment(name):
    from yolox.models.assignment import simota_assign

    run = fixture_run(name, False)
    result = simota_assign(*run["head_inputs"])
    for ref in run["ref"]["assignment"]:
        image = ref["batch_idx"]
        fg = result.fg_mask[image]
        assert torch.equal(fg.nonzero()[:, 0], ref["fg_anchor_indices"])
        assert torch.equal(result.matched_gt_inds[image][fg], ref["matched_gt_inds"])
        assert torch.equal(result.matched_classes[image][fg], ref["gt_matched_classes"].long())
        assert int(fg.sum()) == ref["num_fg"]
        assert (result.matched_ious[image][fg] - ref["pred_ious_this_matching"]).abs().max() <= 5e-4
        num_gt = len(ref["topk10_iou_sum"])
        expected_ks = ref["topk10_iou_sum"].int().clamp(min=1)
        assert torch.equal(result.dynamic_ks[image, :num_gt], expected_ks.long())


# ---------------------------------------------------------------- dense crater image


_DENSE_STEP = """
import json, resource, sys, time, torch
sys.path.insert(0, sys.argv[1])
from yolox.models.build import build_yolox, init_yolox
torch.manual_seed(0)
gen = torch.Generator().manual_seed(0)
num_boxes = 1000
wh = 6 + torch.rand(num_boxes, 2, generator=gen) * 40
labels = torch.zeros(1, num_boxes, 5)
labels[0, :, 1:3] = wh / 2 + torch.rand(num_boxes, 2, generator=gen) * (640 - wh)
labels[0, :, 3:5] = wh
model = init_yolox(build_yolox(0.33, 0.25, num_classes=1, depthwise=True)).train()
images = torch.rand(1, 3, 640, 640, generator=gen) * 255
start = time.perf_counter()
losses = model(images, labels)
losses["total_loss"].backward()
print(json.dumps(dict(seconds=time.perf_counter() - start, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      total=float(losses["total_loss"]), num_fg=float(losses["num_fg"]))))
"""


@pytest.mark.slow
def test_dense_1000_box_image_trains_one_step_on_cpu():
    """yolox-nano at 640 with 1,000 gts: one forward/backward in a fresh process, peak RSS bounded."""
    proc = subprocess.run([sys.executable, "-c", _DENSE_STEP, str(REPO_ROOT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(report)
    assert math.isfinite(report["total"]) and report["num_fg"] > 0
    assert report["peak_rss_mb"] < 3000
