"""dwconv_bn_act: depthwise k x k conv with BatchNorm folded into (weight, bias), then an activation.

    out = act(depthwise_conv2d(x, weight, stride, padding) + bias)
    out, sums = dwconv_bn_act(..., se_sums=True)    # sums: fp32 [N, C] of out over H, W

Inference only. Backends: "triton" (effkernels/triton/dwconv_bn_act.py), "cuda" / "cpu"
(torch.ops.effkernels.dwconv_bn_act), "eager" (effkernels.reference.dwconv_bn_act_ref).
weight and bias must have x's dtype and device: every backend, the eager F.conv2d included,
computes with one dtype (fold BN in fp32, then cast the folded parameters).
"""
from __future__ import annotations

import torch

from .. import _dispatch
from .._common import (CONV_ACTIVATIONS, FLOAT_DTYPES, activation_code, check_inference, check_tensor,
                       conv_geometry, is_channels_last)
from ..backends import resolve
from ..reference import dwconv_bn_act_ref

KERNEL_SIZES = (1, 3, 5, 7)


def _fake(x, weight, bias, stride, pad_top, pad_left, out_h, out_w, activation, se_sums):
    fmt = torch.channels_last if is_channels_last(x) else torch.contiguous_format
    out = x.new_empty((x.shape[0], x.shape[1], out_h, out_w)).contiguous(memory_format=fmt)
    # A custom op cannot return None: an empty tensor stands for "no sums".
    sums = x.new_empty((x.shape[0], x.shape[1]) if se_sums else (0,), dtype=torch.float32)
    return out, sums


_dispatch.define("dwconv_bn_act", _fake, "(Tensor x, Tensor weight, Tensor bias, int stride, int pad_top, "
                 "int pad_left, int out_h, int out_w, int activation, bool se_sums) -> (Tensor, Tensor)",
                 "effkernels.triton.dwconv_bn_act:dwconv_bn_act")


def _check(x, weight, bias, stride, padding, activation, se_sums):
    """Validate dwconv_bn_act's arguments (errors name the argument); return
    (activation code, (pad_top, pad_left, out_h, out_w))."""
    check_tensor(x, "x", ndim=4, dtype=FLOAT_DTYPES)
    n, c, h, w = x.shape
    check_tensor(weight, "weight", ndim=4, dtype=x.dtype, device=x.device)
    k = weight.shape[-1]
    if tuple(weight.shape) != (c, 1, k, k) or k not in KERNEL_SIZES:
        raise ValueError(f"weight: expected shape ({c}, 1, k, k) with k in {list(KERNEL_SIZES)} "
                         f"(depthwise, C = x.shape[1] = {c}), got {tuple(weight.shape)}")
    check_tensor(bias, "bias", shape=(c,), dtype=x.dtype, device=x.device)
    if isinstance(stride, bool) or stride not in (1, 2):
        raise ValueError(f"stride: expected 1 or 2, got {stride!r}")
    act = activation_code(activation, "activation", CONV_ACTIVATIONS)
    if not isinstance(se_sums, bool):
        raise ValueError(f"se_sums: expected a bool, got {se_sums!r}")
    return act, conv_geometry(h, w, k, stride, padding)


def dwconv_bn_act(x, weight, bias, stride=1, padding=None, activation="silu", se_sums=False, backend="auto"):
    """Fused depthwise conv + folded BN + activation.

    x: [N, C, H, W] float32/float16/bfloat16, any strides (channels_last is the fast layout).
    weight: [C, 1, k, k], k odd in 1..7; bias: [C]; both in x's dtype, on x's device.
    stride: 1 or 2. padding: None ((k - 1) // 2), or as _common.conv_window takes it: an int or a pair, "valid",
    "same" (TF SAME) or (top, bottom, left, right).
    activation: one of "none", "relu", "relu6", "silu", "hardswish".
    se_sums: also return fp32 [N, C] sums of the activated output over H, W (the SE squeeze).
    Returns out ([N, C, out_h, out_w], x's dtype and memory format), or (out, sums).
    """
    act, (pad_top, pad_left, out_h, out_w) = _check(x, weight, bias, stride, padding, activation, se_sums)
    name = resolve(backend, x.device)
    if name == "eager":
        return dwconv_bn_act_ref(x, weight, bias, stride, padding, activation, se_sums)
    check_inference("dwconv_bn_act", x, weight, bias)
    out, sums = _dispatch.run("dwconv_bn_act", name, x, weight, bias, stride, pad_top, pad_left, out_h, out_w, act,
                              se_sums)
    return (out, sums) if se_sums else out
