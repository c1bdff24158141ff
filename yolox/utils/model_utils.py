"""Model helpers: BatchNorm folding, size/FLOP summary, module swapping, freezing and mode switching."""
import contextlib
from copy import deepcopy
from typing import Callable, Iterator, Optional, Sequence

import torch
from torch import nn

__all__ = [
    "fuse_conv_and_bn",
    "fuse_model",
    "get_model_info",
    "count_params",
    "replace_module",
    "freeze_module",
    "adjust_status",
]

_PROFILE_SIZE = 64  # profile on a small square input, then scale MACs by area


def count_params(model: nn.Module) -> int:
    """Number of parameter elements (BatchNorm running buffers excluded)."""
    return sum(param.numel() for param in model.parameters())


def _conv_ops(module: nn.Conv2d, output: torch.Tensor) -> int:
    return output.numel() * (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]


def _linear_ops(module: nn.Linear, output: torch.Tensor) -> int:
    return output.numel() * module.in_features


def _batchnorm_ops(module: nn.BatchNorm2d, output: torch.Tensor) -> int:
    # thop's convention (normalise 2 + affine 2 per element), so totals line up with upstream's figures.
    return output.numel() * (4 if module.affine else 2)


def _upsample_ops(module: nn.Upsample, output: torch.Tensor) -> int:
    return output.numel() if module.mode == "nearest" else 0


_OP_COUNTERS = {
    nn.Conv2d: _conv_ops,
    nn.Linear: _linear_ops,
    nn.BatchNorm2d: _batchnorm_ops,
    nn.Upsample: _upsample_ops,
}


def _recorder(counter: Callable[[nn.Module, torch.Tensor], int], counts: list) -> Callable:
    def record(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        counts.append(counter(module, output))

    return record


def _hooked_macs(model: nn.Module, image: torch.Tensor) -> float:
    """thop-style multiply-accumulates of one forward of `image`: convs, linears, BatchNorms, upsampling."""
    counts: list = []
    handles = [
        module.register_forward_hook(_recorder(_OP_COUNTERS[type(module)], counts))
        for module in model.modules()
        if type(module) in _OP_COUNTERS
    ]
    try:
        model(image)
    finally:
        for handle in handles:
            handle.remove()
    return float(sum(counts))


def _profile_macs(model: nn.Module, image: torch.Tensor) -> float:
    try:
        from thop import profile  # lazy: thop is optional, the hooks below count without it
    except ImportError:
        return _hooked_macs(model, image)
    return profile(model, inputs=(image,), verbose=False)[0]


def get_model_info(model: nn.Module, tsize: Sequence[int]) -> str:
    """ "Params: {M}M, Gflops: {G}" with G = 2 x MACs at input size tsize (h, w)."""
    param = next(model.parameters())
    image = torch.zeros((1, 3, _PROFILE_SIZE, _PROFILE_SIZE), device=param.device, dtype=param.dtype)
    probe = deepcopy(model).eval()  # profiling must not touch the caller's BN stats or head caches
    with torch.no_grad():
        macs = _profile_macs(probe, image)
    gflops = macs / 1e9 * 2 * tsize[0] * tsize[1] / _PROFILE_SIZE**2
    return f"Params: {count_params(model) / 1e6:.2f}M, Gflops: {gflops:.2f}"


def fuse_conv_and_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A Conv2d (with bias, no grad) computing bn(conv(x)) with the BN running statistics."""
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_((conv_bias - bn.running_mean) * scale + bn.bias)
    return fused.requires_grad_(False)


def _fusable(module: nn.Module) -> bool:
    """A conv block with a BatchNorm and a forward for after the fold (BaseConv), recognised without importing it."""
    conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
    return isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and hasattr(module, "fuseforward")


def fuse_model(model: nn.Module) -> nn.Module:
    """Fold BatchNorm into the conv of every BaseConv (for inference; the state_dict layout changes)."""
    for module in model.modules():
        if _fusable(module):
            module.conv = fuse_conv_and_bn(module.conv, module.bn)
            del module.bn
            module.forward = module.fuseforward
    return model


def _instantiate(_replaced_type: type, new_type: type) -> nn.Module:
    return new_type()


def replace_module(
    module: nn.Module,
    replaced_module_type: type,
    new_module_type: type,
    replace_func: Optional[Callable[[type, type], nn.Module]] = None,
) -> nn.Module:
    """Recursively swap every `replaced_module_type` submodule for a new one; returns the (new) root."""
    if replace_func is None:
        replace_func = _instantiate
    if isinstance(module, replaced_module_type):
        return replace_func(replaced_module_type, new_module_type)
    for name, child in module.named_children():
        new_child = replace_module(child, replaced_module_type, new_module_type, replace_func)
        if new_child is not child:
            module.add_module(name, new_child)
    return module


def freeze_module(module: nn.Module, name: Optional[str] = None) -> nn.Module:
    """Stop gradients and switch to eval every parameter/submodule whose name contains `name` (all if None)."""
    for param_name, param in module.named_parameters():
        if name is None or name in param_name:
            param.requires_grad_(False)
    for module_name, submodule in module.named_modules():
        if name is None or name in module_name:
            submodule.eval()
    return module


@contextlib.contextmanager
def adjust_status(module: nn.Module, training: bool = False) -> Iterator[nn.Module]:
    """Temporarily set `.training` on every submodule; each one's previous mode is restored on exit."""
    previous = {submodule: submodule.training for submodule in module.modules()}
    for submodule in previous:
        submodule.training = training
    try:
        yield module
    finally:
        for submodule, was_training in previous.items():
            submodule.training = was_training
