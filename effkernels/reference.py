"""Eager-PyTorch reference of every effkernels op.

These are the "eager" backend (called in the input's dtype; float64 inputs work too). They are
written for clarity, not speed: plain torch ops, one step at a time. The tests check them, like every
backend, against oracles that share no code with the package (tests/oracles.py).

Conventions shared by all ops:
- 1x1 weights are 2-d matrices [C_out, C_in]; depthwise weights are [C, 1, k, k].
- BatchNorm is already folded into (weight, bias) (see effkernels.fold).
- Spatial sums and SE scales are float32 (float64 when the input is float64).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import explicit_padding


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


# Every activation name the package knows, as the function it computes (convert identifies modules against these).
ACTIVATION_FNS = {"none": lambda x: x, "relu": F.relu, "relu6": F.relu6, "silu": F.silu, "hardswish": F.hardswish,
                  "sigmoid": torch.sigmoid, "hardsigmoid": F.hardsigmoid}


def apply_activation(x: torch.Tensor, name: str) -> torch.Tensor:
    if name not in ACTIVATION_FNS:
        raise ValueError(f"activation: unknown activation {name!r}")
    return ACTIVATION_FNS[name](x)


def dwconv_bn_act_ref(x, weight, bias, stride=1, padding=None, activation="silu", se_sums=False):
    """act(depthwise_conv(x, weight, stride, padding) + bias); with se_sums also the per-(n, c)
    spatial sums of the activated output, shape [N, C], float32."""
    k = weight.shape[-1]
    top, bottom, left, right = explicit_padding(x.shape[2], x.shape[3], k, stride, padding)
    xp = F.pad(x, (left, right, top, bottom))
    out = F.conv2d(xp, weight, bias, stride=stride, groups=x.shape[1])
    out = apply_activation(out, activation)
    if se_sums:
        return out, out.to(_acc_dtype(x)).sum(dim=(2, 3))
    return out


def conv_bn_act_ref(x, weight, bias, stride=1, padding=(1, 1, 1, 1), activation="silu"):
    """act(conv2d(x, weight, stride) + bias), groups 1, on x zero-padded by padding = (top, bottom, left, right)."""
    top, bottom, left, right = padding
    return apply_activation(F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, stride=stride), activation)


def channel_sums_ref(x):
    """Per-(n, c) spatial sums of x, shape [N, C], float32 (float64 for float64 input)."""
    return x.to(_acc_dtype(x)).sum(dim=(2, 3))


def se_excite_ref(sums, inv_hw, w1, b1, w2, b2, activation="silu", gate="sigmoid"):
    """The excite MLP of squeeze-excitation on pooled sums [N, C]:
    gate(w2 @ act(w1 @ (sums * inv_hw) + b1) + b2), shape [N, C], in sums' dtype."""
    mean = sums * inv_hw
    hidden = apply_activation(mean @ w1.to(sums.dtype).t() + b1.to(sums.dtype), activation)
    return apply_activation(hidden @ w2.to(sums.dtype).t() + b2.to(sums.dtype), gate)


def se_scale_ref(x, scale):
    """x * scale[n, c], computed in float32, returned in x's dtype and layout."""
    return (x.to(scale.dtype) * scale[:, :, None, None]).to(x.dtype)


def squeeze_excite_ref(x, w1, b1, w2, b2, activation="silu", gate="sigmoid"):
    """Pool, excite and scale: torchvision's SqueezeExcitation with its fc weights as matrices."""
    hw = x.shape[2] * x.shape[3]
    scale = se_excite_ref(channel_sums_ref(x), 1.0 / hw, w1, b1, w2, b2, activation, gate)
    return se_scale_ref(x, scale)


def pointwise_conv_ref(x, weight, bias, activation="none", scale=None, residual=None):
    """1x1 convolution: act(conv1x1(x * scale[n, c_in]) + bias) + residual.

    scale (optional, [N, C_in]) is the SE scale applied to the input; residual (optional) has
    the output's shape and is added after the activation.
    """
    if scale is not None:
        x = se_scale_ref(x, scale)
    out = F.conv2d(x, weight[:, :, None, None], bias)
    out = apply_activation(out, activation)
    if residual is not None:
        out = out + residual
    return out


def mbconv_ref(x, expand_w, expand_b, dw_w, dw_b, stride, padding, se_w1, se_b1, se_w2, se_b2,
               proj_w, proj_b, residual, activation="silu", se_activation="silu", se_gate="sigmoid"):
    """MBConv inference forward with folded BN (torchvision's MBConv in eval mode).

    expand_w/expand_b are None when the expand ratio is 1; se_* are None for blocks without SE.
    residual: add x to the output (stride 1 and C_in == C_out).
    """
    h = x
    if expand_w is not None:
        h = pointwise_conv_ref(h, expand_w, expand_b, activation)
    h = dwconv_bn_act_ref(h, dw_w, dw_b, stride, padding, activation)
    scale = None
    if se_w1 is not None:
        hw = h.shape[2] * h.shape[3]
        scale = se_excite_ref(channel_sums_ref(h), 1.0 / hw, se_w1, se_b1, se_w2, se_b2, se_activation, se_gate)
    return pointwise_conv_ref(h, proj_w, proj_b, "none", scale, x if residual else None)
