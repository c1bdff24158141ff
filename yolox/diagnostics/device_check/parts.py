"""The checks of the model's parts: each runs one part on the device and on the CPU from identical inputs.

Forward and gradients run the whole model. Loss, assignment, optimizer, EMA and decode + NMS each start from the
CPU's own intermediate results, copied to the device, so a fault shows in the part that has it and no other.
`amp` runs the device side under autocast with that dtype (the CPU side stays fp32, the reference).
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Dict, List, Optional, Tuple

import torch
from torch import nn

from yolox.diagnostics.device_check import tolerances as tol
from yolox.diagnostics.device_check.bench import Bench
from yolox.diagnostics.device_check.compare import (
    CheckResult,
    check,
    matched_rows_max_abs,
    max_abs,
    per_tensor_relative,
    relative,
    scaled_max_abs,
)
from yolox.exp.param_groups import start_momentum_at_zero
from yolox.models.assignment import simota_assign
from yolox.models.yolox_loss import compute_losses
from yolox.utils.boxes import postprocess
from yolox.utils.ema import ModelEMA

LOSS_TERMS = ("iou_loss", "conf_loss", "cls_loss", "l1_loss")
# fp16 gradients underflow without loss scaling; a fixed, modest scale for one backward (1024 overflowed the
# activation gradients of this random model)
AMP_LOSS_SCALE = 64.0
# the optimizers of training (upstream's SGD; AdamW as exps use it), one step each
SGD = dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
ADAMW = dict(lr=1e-3, weight_decay=0.05)
OPTIMIZERS = (("SGD", torch.optim.SGD, SGD), ("AdamW", torch.optim.AdamW, ADAMW))
# EMA update count whose decay mixes the two weights about 0.37 : 0.63, so the update is large enough to compare
EMA_UPDATES = 2000


def autocast_for(bench: Bench, amp: Optional[torch.dtype]) -> ContextManager:
    """Autocast on the device with `amp`'s dtype; nothing when amp is None."""
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=bench.device.type, dtype=amp)


def precision_suffix(amp: Optional[torch.dtype]) -> str:
    return "" if amp is None else f" ({str(amp).replace('torch.', '')})"


def head_units(boxes_and_scores: torch.Tensor, strides: torch.Tensor, probabilities: bool) -> torch.Tensor:
    """[B, A, 5+C] (cx, cy, w, h in pixels, then scores) -> xy/stride, log wh and logits, in float64: units where
    float noise has one size for every box (raw pixels are dominated by the rare huge box)."""
    out = boxes_and_scores.detach().cpu().double()
    stride = strides.detach().cpu().double().reshape(1, -1, 1)
    scores = out[..., 4:]
    logits = torch.special.logit(scores.clamp(1e-12, 1 - 1e-12)) if probabilities else scores
    return torch.cat([out[..., :2] / stride, out[..., 2:4].clamp_min(1e-30).log(), logits], dim=-1)


def eval_strides(model: nn.Module) -> torch.Tensor:
    """Per-anchor stride of the last eval forward of `model` (its head records the level sizes)."""
    head = model.head
    return torch.cat([torch.full((h * w,), float(s)) for (h, w), s in zip(head.hw, head.strides)])


def train_outputs(model: nn.Module, images: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """The head's train-mode tensors (outputs, x_shifts, y_shifts, expanded_strides, origin_preds), L1 on."""
    model.head.use_l1 = True
    return model.head.train_outputs(model.backbone(images))


def forward_checks(bench: Bench, amp: Optional[torch.dtype] = None) -> List[CheckResult]:
    """Eval-mode detections and train-mode head outputs, in head units."""
    limit = tol.FORWARD if amp is None else tol.AMP_FORWARD
    images = bench.batch.images
    device_model, cpu_model = bench.pair(train=False)
    with torch.no_grad():
        with autocast_for(bench, amp):
            device_out = device_model(bench.on_device(images)).float()
        cpu_out = cpu_model(images)
    strides = eval_strides(cpu_model)
    eval_diff = max_abs(head_units(device_out, strides, True), head_units(cpu_out, strides, True))

    device_model, cpu_model = bench.pair(train=True)
    with torch.no_grad():
        with autocast_for(bench, amp):
            device_train = train_outputs(device_model, bench.on_device(images))
        cpu_train = train_outputs(cpu_model, images)
    strides = cpu_train[3]
    train_diff = max_abs(head_units(device_train[0].float(), strides, False), head_units(cpu_train[0], strides, False))
    return [check("forward, eval mode" + precision_suffix(amp), "forward", eval_diff, limit, amp is not None, unit="head units"),
            check("forward, train mode" + precision_suffix(amp), "forward", train_diff, limit, amp is not None,
                  unit="head units")]


def cpu_train_tensors(bench: Bench) -> Tuple[torch.Tensor, ...]:
    """The CPU's train-mode head tensors for the batch: the common input of the loss and assignment checks."""
    with torch.no_grad():
        return train_outputs(bench.cpu_model(train=True), bench.batch.images)


def _losses(bench: Bench, tensors: Tuple[torch.Tensor, ...], labels: torch.Tensor) -> Dict[str, float]:
    outputs, x_shifts, y_shifts, expanded_strides, origin_preds = tensors
    head = bench.model.head
    values = compute_losses(outputs, labels, x_shifts, y_shifts, expanded_strides, origin_preds,
                            num_classes=head.num_classes, use_l1=True, iou_loss=head.iou_loss)
    return dict(zip(("total_loss",) + LOSS_TERMS + ("num_fg",), (float(value) for value in values)))


def loss_checks(bench: Bench, tensors: Tuple[torch.Tensor, ...]) -> List[CheckResult]:
    """Each loss term and the foreground count, from identical head outputs."""
    labels = bench.batch.labels
    device = _losses(bench, tuple(bench.on_device(t) for t in tensors), bench.on_device(labels))
    cpu = _losses(bench, tensors, labels)
    results = [check(f"loss: {term.replace('_loss', '')}", "loss", relative(device[term], cpu[term]), tol.LOSS,
                     device=device[term], cpu=cpu[term]) for term in LOSS_TERMS]
    results.append(check("loss: foreground per gt", "loss", abs(device["num_fg"] - cpu["num_fg"]), tol.EXACT,
                         device=device["num_fg"], cpu=cpu["num_fg"]))
    return results


def assignment_checks(bench: Bench, tensors: Tuple[torch.Tensor, ...]) -> List[CheckResult]:
    """SimOTA from identical head outputs: foreground count, matched ground truths, their IoUs."""
    outputs, x_shifts, y_shifts, expanded_strides, _ = tensors
    labels = bench.batch.labels
    cpu = simota_assign(outputs, labels, x_shifts, y_shifts, expanded_strides)
    device = simota_assign(*(bench.on_device(t) for t in (outputs, labels, x_shifts, y_shifts, expanded_strides)))
    device_fg, device_gt = device.fg_mask.cpu(), device.matched_gt_inds.cpu()
    either = device_fg | cpu.fg_mask
    mismatched = int(((device_fg != cpu.fg_mask) | (device_gt != cpu.matched_gt_inds))[either].sum())
    fg_diff = abs(int(device_fg.sum()) - int(cpu.fg_mask.sum()))
    both = device_fg & cpu.fg_mask
    iou_diff = max_abs(device.matched_ious.cpu()[both], cpu.matched_ious[both])
    return [check("assignment: foreground count", "assignment", fg_diff, tol.EXACT,
                  device=int(device_fg.sum()), cpu=int(cpu.fg_mask.sum())),
            check("assignment: matched boxes", "assignment", mismatched, tol.EXACT, unit="anchors"),
            check("assignment: matched IoU", "assignment", iou_diff, tol.ASSIGN_IOU)]


def gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, scale: float = 1.0) -> List[torch.Tensor]:
    """Every parameter's gradient of the total loss (backward of scale x loss, divided back)."""
    model.zero_grad(set_to_none=True)
    (model(images, labels)["total_loss"] * scale).backward()
    return [(p.grad / scale) if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


def gradient_check(bench: Bench, amp: Optional[torch.dtype] = None) -> Tuple[CheckResult, List[torch.Tensor]]:
    """The result, and the CPU's gradients (the optimizer checks start from them)."""
    device_model, cpu_model = bench.pair(train=True)
    scale = AMP_LOSS_SCALE if amp == torch.float16 else 1.0
    with autocast_for(bench, amp):
        device_grads = gradients(device_model, bench.on_device(bench.batch.images), bench.on_device(bench.batch.labels),
                                 scale)
    cpu_grads = gradients(cpu_model, bench.batch.images, bench.batch.labels)
    if amp is not None:
        # half-precision rounding is not small per element: the whole gradient's relative error, as the AMP probe
        device_flat, cpu_flat = (torch.cat([g.detach().cpu().double().flatten() for g in gs])
                                 for gs in (device_grads, cpu_grads))
        error = float((device_flat - cpu_flat).norm() / cpu_flat.norm().clamp_min(1e-30))
        return check("gradients" + precision_suffix(amp), "gradients", error, tol.AMP_GRADIENT, True,
                     unit="L2 error of the whole gradient, relative"), cpu_grads
    floor = 1e-3 * max(float(g.abs().max()) for g in cpu_grads)  # all-but-zero tensors compare to the largest
    return check("gradients", "gradients", per_tensor_relative(device_grads, cpu_grads, floor), tol.GRADIENT,
                 unit="per tensor, of its max"), cpu_grads


def amp_loss_check(bench: Bench, amp: torch.dtype) -> CheckResult:
    """The total loss of a train-mode forward under autocast on the device, against the CPU's in fp32."""
    device_model, cpu_model = bench.pair(train=True)
    with torch.no_grad():
        with autocast_for(bench, amp):
            device = float(device_model(bench.on_device(bench.batch.images),
                                        bench.on_device(bench.batch.labels))["total_loss"])
        cpu = float(cpu_model(bench.batch.images, bench.batch.labels)["total_loss"])
    return check("loss: total" + precision_suffix(amp), "loss", relative(device, cpu), tol.AMP_LOSS, True, device=device,
                 cpu=cpu)


def optimizer_settings(bench: Bench) -> Dict:
    """The policy's optimizer implementation: fused kernels where it trains with them."""
    return {"fused": True} if bench.policy.fused_optimizer else {}


def _laid_out_like(params: List[nn.Parameter], grads: List[torch.Tensor], scale: float = 1.0) -> None:
    for param, grad in zip(params, grads):
        # as autograd lays out a gradient: in its parameter's strides (channels_last convs), dtype and device; fused
        # CUDA kernels refuse any other layout, and CPU ones read the mismatched memory as if it matched
        param.grad = torch.empty_like(param).copy_(grad * scale)


def _optimizer(params: List[nn.Parameter], make: Callable, settings: Dict) -> torch.optim.Optimizer:
    """`make(params, **settings)` as the trainer builds it: a fused SGD's momentum starts at zero."""
    optimizer = make(params, **settings)
    if make is torch.optim.SGD and settings.get("fused"):
        start_momentum_at_zero(optimizer)
    return optimizer


def _stepped(model: nn.Module, grads: List[torch.Tensor], make: Callable, settings: Dict) -> List[torch.Tensor]:
    params = list(model.parameters())
    _laid_out_like(params, grads)
    _optimizer(params, make, settings).step()
    return [param.detach() for param in params]


def _scaled_steps(model: nn.Module, grad_sets: Tuple[List[torch.Tensor], ...], make: Callable,
                  settings: Dict) -> List[torch.Tensor]:
    """One optimizer step per gradient set through a GradScaler, as fp16 training steps (scaled gradients)."""
    params = list(model.parameters())
    optimizer = _optimizer(params, make, settings)
    scaler = torch.amp.GradScaler(params[0].device.type)
    for grads in grad_sets:
        _laid_out_like(params, grads, float(scaler.scale(torch.ones((), device=params[0].device))))
        _poison_freed_memory(params)
        scaler.step(optimizer)
        scaler.update()
    return [param.detach() for param in params]


def _poison_freed_memory(params: List[nn.Parameter]) -> None:
    """Leave NaN in freed blocks of the parameters' sizes, which the allocator hands out next: optimizer state that
    starts as uninitialised memory (torch.empty_like) then shows as NaN, not as whatever the memory held before
    (on an H100 that was once small enough to give only a 1.5% error)."""
    poisoned = [torch.full_like(param, float("nan")) for param in params]
    del poisoned


def _step_check(name: str, bench: Bench, device_after: List[torch.Tensor], cpu_after: List[torch.Tensor],
                amp: bool = False) -> CheckResult:
    """The weights after the device's and the CPU's steps, against the largest change the CPU's made."""
    change = max(float((a - b.detach()).abs().max()) for a, b in zip(cpu_after, bench.model.parameters()))
    return check(name, "optimizer", scaled_max_abs(device_after, cpu_after, change), tol.STEP, amp,
                 unit="of the largest change")


def optimizer_checks(bench: Bench, grads: List[torch.Tensor]) -> List[CheckResult]:
    """One SGD and one AdamW step from identical weights and gradients, with the policy's implementation."""
    return [_step_check(f"optimizer step: {name}", bench,
                        _stepped(bench.device_model(train=True), grads, make,
                                 {**settings, **optimizer_settings(bench)}),
                        _stepped(bench.cpu_model(train=True), grads, make, settings))
            for name, make, settings in OPTIMIZERS]


def skipped_step_checks(bench: Bench, grads: List[torch.Tensor]) -> List[CheckResult]:
    """Under fp16 loss scaling: a step the GradScaler skips (infinite gradients, as early fp16 steps overflow), then
    one from `grads`; the policy's implementation on the device against the plain one on the CPU. A skipped step
    must leave no trace (torch's fused SGD leaves momentum buffers it never set unless they start at zero)."""
    overflow = [torch.full_like(grad, float("inf")) for grad in grads]
    return [_step_check(f"optimizer step after a skipped one: {name}{precision_suffix(torch.float16)}", bench,
                        _scaled_steps(bench.device_model(train=True), (overflow, grads), make,
                                      {**settings, **optimizer_settings(bench)}),
                        _scaled_steps(bench.cpu_model(train=True), (overflow, grads), make, settings), amp=True)
            for name, make, settings in OPTIMIZERS]


def ema_check(bench: Bench, grads: List[torch.Tensor]) -> CheckResult:
    """One EMA update towards the weights after an SGD step, from identical states."""
    def updated(make_model: Callable[[bool], nn.Module]) -> List[torch.Tensor]:
        stepped = make_model(True)
        _stepped(stepped, grads, torch.optim.SGD, SGD)
        ema = ModelEMA(make_model(False), updates=EMA_UPDATES - 1)
        ema.update(stepped)
        return [value for value in ema.ema.state_dict().values() if value.is_floating_point()]

    before = [v for v in bench.model.state_dict().values() if v.is_floating_point()]
    device_ema, cpu_ema = updated(bench.device_model), updated(bench.cpu_model)
    change = max(float((a - b).abs().max()) for a, b in zip(cpu_ema, before))
    return check("EMA update", "ema", scaled_max_abs(device_ema, cpu_ema, change), tol.STEP,
                 unit="of the largest change")


def postprocess_checks(bench: Bench, images: torch.Tensor, conf_thre: float, nms_thre: float) -> List[CheckResult]:
    """Decoding and NMS from identical raw head outputs of `images`: detections per image, boxes of matched rows."""
    cpu_model = bench.cpu_model(train=False)
    cpu_model.head.decode_in_inference = False
    with torch.no_grad():
        raw = cpu_model(images)
    device_head = bench.device_model(train=False).head
    device_head.hw = list(cpu_model.head.hw)
    num_classes = cpu_model.head.num_classes
    cpu = postprocess(cpu_model.head.decode_outputs(raw.clone()), num_classes, conf_thre, nms_thre)
    device = postprocess(device_head.decode_outputs(bench.on_device(raw)), num_classes, conf_thre, nms_thre)
    empty = torch.zeros(0, 7)
    cpu = [empty if rows is None else rows for rows in cpu]
    device = [empty if rows is None else rows.detach().cpu().float() for rows in device]
    count_diff = sum(abs(len(d) - len(c)) for d, c in zip(device, cpu))
    box_diff = max(matched_rows_max_abs(d[:, :4], c[:, :4]) if len(d) == len(c) else 0.0
                   for d, c in zip(device, cpu))
    return [check("decode + NMS: detections", "postprocess", count_diff, tol.EXACT,
                  device=[len(d) for d in device], cpu=[len(c) for c in cpu]),
            check("decode + NMS: boxes", "postprocess", box_diff, tol.BOXES_PX, unit="px")]
