"""The evaluation cross-check: float noise of TF32 and fp16 size passes, faults a user would notice fail.

Tolerance tests use real COCO weights on THEMIS craters and dog.jpg (../shared), with noise injected into the
undecoded head output in head units; the end-to-end tests use the device check's self-contained fixture (seeded
yolox-nano, generated craters) under simulated MPS and CUDA policies, whose tensors stay on the CPU.
"""
import glob
import json

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import shared_path
from yolox.core.eval_crosscheck import CrossCheck, compare_outputs, cross_check_evaluation
from yolox.data.data_augment import ValTransform
from yolox.diagnostics.device_check.evaluation import score_threshold
from yolox.diagnostics.device_check.fixture import fixed_model, load_batch, write_crater_set
from yolox.models.build import create_yolox_model
from yolox.utils.device import build_policy

COCO_CLASSES = 80
NMS = 0.65
THEMIS_TILES = 3


@pytest.fixture(scope="module")
def real_outputs():
    """(undecoded eval output, the head that decodes it, the same forward under CPU fp16 autocast) of COCO-trained
    yolox-nano on dog.jpg and a few THEMIS tiles at 416 px."""
    model = create_yolox_model("yolox-nano", pretrained=True, ckpt_path=str(
        shared_path("fixtures", "real_nano", "yolox_nano_coco_unfolded.pth"))).eval()
    tiles = sorted(glob.glob(str(shared_path("datasets", "themis_mars", "val2017") / "*.jpg")))[:THEMIS_TILES]
    images = [ValTransform(legacy=False)(cv2.imread(path), None, (416, 416))[0] for path in tiles]
    dog = np.load(shared_path("fixtures", "real_nano", "dog_input416.npy"))
    batch = torch.cat([torch.from_numpy(dog), torch.from_numpy(np.stack(images)).float()])
    model.head.decode_in_inference = False
    with torch.no_grad():
        raw = model(batch)
        with torch.autocast("cpu", dtype=torch.float16):
            raw_fp16 = model(batch).float()
    return raw, model.head, raw_fp16


def with_noise(raw: torch.Tensor, relative: float, seed: int) -> torch.Tensor:
    """The undecoded output with Gaussian noise of `relative` x each part's RMS added in head units (xy offsets,
    log wh, obj and cls logits): float error scales with the size of what a conv sums, not with each value."""
    units = raw.clone()
    units[..., 4:] = torch.special.logit(units[..., 4:].clamp(1e-7, 1 - 1e-7))
    generator = torch.Generator().manual_seed(seed)
    for part in (slice(0, 2), slice(2, 4), slice(4, 5), slice(5, None)):
        values = units[..., part]
        units[..., part] = values + relative * values.pow(2).mean().sqrt() * torch.randn(values.shape,
                                                                                        generator=generator)
    units[..., 4:] = units[..., 4:].sigmoid()
    return units


def compared(device: torch.Tensor, cpu: torch.Tensor, head, conf: float) -> CrossCheck:
    return compare_outputs(head.decode_outputs(device.clone()), head.decode_outputs(cpu.clone()),
                           num_classes=COCO_CLASSES, conf_thre=conf, nms_thre=NMS)


@pytest.mark.parametrize("conf", [0.001, 0.01, 0.1])
@pytest.mark.parametrize("relative", [1e-3, 1e-2], ids=["tf32-size", "fp16-size"])
def test_noise_of_tf32_and_fp16_size_agrees(real_outputs, relative, conf):
    raw, head, _ = real_outputs
    for seed in range(3):
        check = compared(with_noise(raw, relative, seed), raw, head, conf)
        assert check.cpu_detections > 0 and check.agree, check.row()


def test_a_real_fp16_forward_agrees(real_outputs):
    raw, head, raw_fp16 = real_outputs
    check = compared(raw_fp16, raw, head, conf=0.001)
    assert check.agree and check.box_error > 0, check.row()


def scores_doubled(output):
    output[..., 4] *= 2


def one_nan(output):
    output[1, 7, 5] = float("nan")


def shifted_3px(output):
    output[..., :2] += 3.0


def garbled(output):
    output[..., :4] = output[:, torch.randperm(output.shape[1], generator=torch.Generator().manual_seed(0)), :4]


@pytest.mark.parametrize("fault, named", [(scores_doubled, "scores off by a factor 2.00"),
                                          (one_nan, "non-finite values: 1 on the device, 0 on the CPU"),
                                          (shifted_3px, "boxes off by"),
                                          (garbled, "detections found by the other pass")])
def test_faults_fail_and_the_warning_names_them(real_outputs, fault, named):
    raw, head, _ = real_outputs
    device, cpu = head.decode_outputs(raw.clone()), head.decode_outputs(raw.clone())
    fault(device)
    check = compare_outputs(device, cpu, num_classes=COCO_CLASSES, conf_thre=0.01, nms_thre=NMS)
    assert not check.agree
    line = check.warning("cuda:0")
    assert named in line and "`yolox-check-device --device cuda`" in line and "\n" not in line


def test_a_nan_on_the_cpu_side_fails_too_and_says_the_weights_are_broken(real_outputs):
    raw, head, _ = real_outputs
    device, cpu = head.decode_outputs(raw.clone()), head.decode_outputs(raw.clone())
    one_nan(cpu)
    check = compare_outputs(device, cpu, num_classes=COCO_CLASSES, conf_thre=0.01, nms_thre=NMS)
    assert not check.agree and "the weights themselves are broken" in check.warning("mps")


def test_non_finite_detections_fail_and_the_row_stays_plain_json(real_outputs):
    raw, head, _ = real_outputs
    device, cpu = head.decode_outputs(raw.clone()), head.decode_outputs(raw.clone())
    device[..., 2] = float("inf")
    check = compare_outputs(device, cpu, num_classes=COCO_CLASSES, conf_thre=0.01, nms_thre=NMS)
    row = json.loads(json.dumps(check.row(), allow_nan=False))
    assert not check.agree and row["non_finite_device"] > 0 and row["non_finite_cpu"] == 0


def test_a_background_anchors_wild_box_is_no_disagreement(real_outputs):
    raw, head, _ = real_outputs
    device, cpu = head.decode_outputs(raw.clone()), head.decode_outputs(raw.clone())
    scores = device[..., 4] * device[..., 5:].amax(dim=-1)
    background = scores < 1e-4
    device[..., 2:4][background] = float("inf")
    cpu[..., 2:4][background] *= 1e6
    check = compare_outputs(device, cpu, num_classes=COCO_CLASSES, conf_thre=0.01, nms_thre=NMS)
    assert background.sum() > 1000 and check.agree, check.row()


@pytest.fixture(scope="module")
def crater_bench(tmp_path_factory):
    """(the device check's fixed model, its generated crater images, a score threshold in a gap of its scores)."""
    root = write_crater_set(tmp_path_factory.mktemp("craters"))
    images = load_batch(root, "val2017", "instances_val2017.json").images
    model = fixed_model(images)
    with torch.no_grad():
        conf = score_threshold(model(images))
    return model, images, conf


def cross_check(model, images, policy, conf):
    return cross_check_evaluation(model, images, policy, num_classes=1, conf_thre=conf, nms_thre=NMS)


def test_detections_crossing_the_threshold_by_rounding_are_still_found(crater_bench):
    """A threshold among densely packed scores (not in a gap) and a 3% score jitter: many detections cross it."""
    model, images, _ = crater_bench
    with torch.no_grad():
        cpu = model(images)
    conf = float((cpu[..., 4] * cpu[..., 5]).flatten().sort(descending=True).values[100])
    counts = set()
    for seed in range(5):
        device = cpu.clone()
        jitter = torch.randn(device[..., 4].shape, generator=torch.Generator().manual_seed(seed))
        device[..., 4] *= torch.exp(0.03 * jitter)
        check = compare_outputs(device, cpu.clone(), num_classes=1, conf_thre=conf, nms_thre=NMS)
        assert check.recall == check.precision == 1.0 and check.agree, check.row()
        counts.add((check.device_detections, check.cpu_detections))
    assert any(device != cpu for device, cpu in counts)


def test_a_cpu_policy_makes_no_cross_check(crater_bench):
    model, images, conf = crater_bench
    assert cross_check(model, images, build_policy("cpu"), conf) is None


@pytest.mark.parametrize("kind", ["mps", "cuda"])
def test_a_healthy_device_agrees_as_plain_json(crater_bench, kind):
    """Under CUDA rules: channels_last and fp16 autocast switched on by the caller, as in the trainer."""
    model, images, conf = crater_bench
    policy = build_policy(kind, tensors_on="cpu", fp16=None)
    placed = policy.place_model(model)
    with policy.autocast():
        check = cross_check(placed, images, policy, conf)
    row = json.loads(json.dumps(check.row(), allow_nan=False))
    assert row["agree"] is True and row["matched"] == row["cpu_detections"] > 10 and row["box_error"] == 0.0


@pytest.fixture
def restored_tf32_flags():
    """torch's TF32 flags as they were before the test, set back through the legacy API, which leaves every flag
    readable again whichever API the test used."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def cudnn_tf32() -> bool:
    """Whether cuDNN convolutions may use TF32, read through whichever API torch accepts now."""
    try:
        return torch.backends.cudnn.allow_tf32
    except RuntimeError:
        return torch.backends.cudnn.conv.fp32_precision == "tf32"


def legacy_api():
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True


def fp32_precision_api():
    """As a library on torch 2.9+ may leave them: TF32 on through the new API, after which torch refuses to read
    the legacy flags."""
    torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "tf32"
    torch.backends.cudnn.rnn.fp32_precision = "ieee"


@pytest.mark.parametrize("tf32_on", [legacy_api, fp32_precision_api])
def test_both_passes_run_in_exact_fp32_outside_autocast(crater_bench, restored_tf32_flags, tf32_on):
    model, images, conf = crater_bench
    policy = build_policy("cuda", tensors_on="cpu", fp16=None)
    seen = []
    handle = model.head.stems[0].register_forward_hook(lambda module, args, output: seen.append(
        (output.dtype, torch.is_autocast_enabled("cpu"), cudnn_tf32())))
    tf32_on()
    try:
        with policy.autocast():
            cross_check(model, images, policy, conf)
    finally:
        handle.remove()
    assert seen == [(torch.float32, False, False)] * 2 and cudnn_tf32() is True


def test_a_perturbed_op_on_the_device_pass_is_caught(crater_bench):
    """The CPU pass runs the same module with CPU copies of its weights (torch.func.functional_call), so a hook
    that sees the module's own weight is in the device pass."""
    model, images, conf = crater_bench
    conv = model.head.stems[0].conv
    own_weight = conv.weight
    handle = conv.register_forward_hook(lambda module, args, output:
                                        output * 1.1 if module.weight is own_weight else output)
    try:
        check = cross_check(model, images, build_policy("mps", tensors_on="cpu"), conf)
    finally:
        handle.remove()
    assert not check.agree, check.row()
