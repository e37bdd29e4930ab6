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
from .._common import CONV_ACTIVATIONS, FLOAT_DTYPES, activation_code, check_inference, check_tensor, \
    empty_like_layout, explicit_padding
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


def _pair(v, argname):
    if isinstance(v, int) and not isinstance(v, bool):
        return v, v
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        return tuple(v)
    raise ValueError(f"{argname}: expected an int or a pair of ints, got {v!r}")


def conv_pads(h: int, w: int, kh: int, kw: int, stride, padding):
    """(top, bottom, left, right) of a kh x kw conv with stride (sh, sw). padding: None ((k - 1) // 2 per axis),
    an int, a pair (height, width) or "valid" (none) as nn.Conv2d's, "same" (TF SAME per axis: the extra
    row/column at the bottom/right; at stride 1 the same as nn.Conv2d's "same") or (top, bottom, left, right)."""
    sh, sw = stride
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        if not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in padding):
            raise ValueError(f"padding: expected non-negative ints (top, bottom, left, right), got {padding!r}")
        return tuple(padding)
    if padding is None:
        padding = ((kh - 1) // 2, (kw - 1) // 2)
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        return (*explicit_padding(h, h, kh, sh, "same")[:2], *explicit_padding(w, w, kw, sw, "same")[2:])
    ph, pw = _pair(padding, "padding")
    if min(ph, pw) < 0:
        raise ValueError(f"padding: expected non-negative pads, got {padding!r}")
    return ph, ph, pw, pw


def conv_bn_act(x, weight, bias, stride=1, padding=None, activation="silu", backend="auto"):
    """Fused dense conv + folded BN + activation.

    x: [N, C_in, H, W] float32/float16/bfloat16, any strides. weight: [C_out, C_in, kh, kw]; bias: [C_out]; both in
    x's dtype, on x's device. stride: an int or (height, width). padding: see conv_pads (default (k - 1) // 2).
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
    stride = _pair(stride, "stride")
    if min(stride) < 1:
        raise ValueError(f"stride: expected positive strides, got {stride!r}")
    act = activation_code(activation, "activation", CONV_ACTIVATIONS)
    top, bottom, left, right = conv_pads(h, w, kh, kw, stride, padding)
    out_h, out_w = (h + top + bottom - kh) // stride[0] + 1, (w + left + right - kw) // stride[1] + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"x: a {h}x{w} input padded by {(top, bottom, left, right)} is smaller than the "
                         f"{kh}x{kw} kernel")
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
