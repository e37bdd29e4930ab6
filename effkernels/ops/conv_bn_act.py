"""conv_bn_act: dense k x k conv (groups 1) with BatchNorm folded into (weight, bias), then an activation.

    out = act(conv2d(x, weight, stride, padding) + bias)

The dense convs of the layers (nn.ConvBNAct: network stems; Fused-MBConv's expand conv) run through it.
Backends: "cpu": the C++ kernel torch.ops.effkernels.conv_bn_act (csrc/cpu/conv_bn_act.cpp: the activation in
registers before the only store) when the conv has at most DIRECT_MAX_TAPS input taps per output (C_in * kh * kw:
stems), else ATen's conv (oneDNN) then activation_ in place; "cuda"/"triton": ATen's conv (cuDNN) then
activation_; "eager": reference.conv_bn_act_ref. Inference only.
"""
from __future__ import annotations

import torch.nn.functional as F

from .. import _dispatch
from .._common import (CONV_ACTIVATIONS, FLOAT_DTYPES, activation_code, as_pair, check_inference, check_tensor,
                       conv_window, empty_like_layout)
from ..backends import resolve
from ..reference import conv_bn_act_ref
from .activation import activation_

# Input taps per output (C_in * kh * kw) up to which the cpu backend's direct kernel beats oneDNN's conv plus the
# activation pass (2 threads, AVX2, 3x3 stride 2, 32 outputs: 1.5x at 27 taps, 1.6-1.7x at 72, 1.2-1.4x at 144;
# past that mixed: 0.9-1.2x at 216, benchmarks/results/2026-11-30-cpu-stem/README.md).
DIRECT_MAX_TAPS = 144


def _fake(x, weight, bias, stride, pad_top, pad_left, out_h, out_w, activation):
    return empty_like_layout(x, (x.shape[0], weight.shape[0], out_h, out_w))


_dispatch.define("conv_bn_act", _fake)  # C++ (CPU) only


def conv_bn_act(x, weight, bias, stride=1, padding=None, activation="silu", backend="auto"):
    """Fused dense conv + folded BN + activation.

    x: [N, C_in, H, W] float32/float16/bfloat16, any strides. weight: [C_out, C_in, kh, kw]; bias: [C_out]; both in
    x's dtype, on x's device. stride: an int or (height, width). padding: None ((k - 1) // 2 per axis), or what
    _common.conv_window takes: an int or a pair (height, width) as nn.Conv2d's, "valid", "same" (TF SAME per axis)
    or (top, bottom, left, right).
    activation: one of "none", "relu", "relu6", "silu", "hardswish".
    Returns [N, C_out, out_h, out_w] in x's dtype and memory format.
    """
    check_tensor(x, "x", ndim=4, dtype=FLOAT_DTYPES)
    n, c_in, h, w = x.shape
    check_tensor(weight, "weight", ndim=4, dtype=x.dtype, device=x.device)
    if weight.shape[1] != c_in or min(weight.shape) < 1:
        raise ValueError(f"weight: expected shape (C_out, {c_in}, kh, kw) (groups 1, C_in = x.shape[1]), "
                         f"got {tuple(weight.shape)}")
    c_out, _, kh, kw = weight.shape
    check_tensor(bias, "bias", shape=(c_out,), dtype=x.dtype, device=x.device)
    stride = as_pair(stride, "stride")
    if min(stride) < 1:
        raise ValueError(f"stride: expected positive strides, got {stride!r}")
    act = activation_code(activation, "activation", CONV_ACTIVATIONS)
    top, bottom, left, right, out_h, out_w = conv_window(h, w, (kh, kw), stride, padding)
    be = resolve(backend, x.device)
    if be == "eager":
        return conv_bn_act_ref(x, weight, bias, stride, (top, bottom, left, right), activation)
    check_inference("conv_bn_act", x, weight, bias)
    if be == "cpu" and c_in * kh * kw <= DIRECT_MAX_TAPS:
        return _dispatch.run("conv_bn_act", be, x, weight, bias, list(stride), top, left, out_h, out_w, act)
    if top == bottom and left == right:
        y = F.conv2d(x, weight, bias, stride, (top, left))
    else:
        y = F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, stride)
    return activation_(y, activation, be)
