"""Squeeze-excitation ops: channel_sums (squeeze), se_excite (the MLP), se_scale (x * scale), and
squeeze_excite = all three, for SE blocks that do not follow a depthwise conv (after one,
dwconv_bn_act(se_sums=True) gives the sums and pointwise_conv(scale=...) applies the scale).

Backends: "triton" (effkernels/triton/squeeze_excite.py), "cuda"/"cpu" (torch.ops.effkernels),
"eager" (effkernels.reference).
"""
from __future__ import annotations

import torch

from .. import _ext
from .._common import (FLOAT_DTYPES, SE_ACTIVATIONS, SE_GATES, activation_code, check_inference, check_tensor,
                       empty_like_layout)
from ..backends import resolve
from ..reference import channel_sums_ref, se_excite_ref, se_scale_ref, squeeze_excite_ref


def _channel_sums_fake(x):
    return x.new_empty((x.shape[0], x.shape[1]), dtype=torch.float32)


def _se_excite_fake(sums, inv_hw, w1, b1, w2, b2, activation, gate):
    return sums.new_empty(sums.shape, dtype=torch.float32)


def _se_scale_fake(x, scale):
    return empty_like_layout(x, x.shape)


@torch.library.custom_op("effkernels_triton::channel_sums", mutates_args=())
def _triton_channel_sums(x: torch.Tensor) -> torch.Tensor:
    from ..triton.squeeze_excite import channel_sums as launch

    return launch(x)


@torch.library.custom_op("effkernels_triton::se_excite", mutates_args=())
def _triton_se_excite(sums: torch.Tensor, inv_hw: float, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
                      b2: torch.Tensor, activation: int, gate: int) -> torch.Tensor:
    from ..triton.squeeze_excite import se_excite as launch

    return launch(sums, inv_hw, w1, b1, w2, b2, activation, gate)


@torch.library.custom_op("effkernels_triton::se_scale", mutates_args=())
def _triton_se_scale(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    from ..triton.squeeze_excite import se_scale as launch

    return launch(x, scale)


for _name, _fake in (("channel_sums", _channel_sums_fake), ("se_excite", _se_excite_fake),
                     ("se_scale", _se_scale_fake)):
    torch.library.register_fake(f"effkernels_triton::{_name}")(_fake)
    if _ext.loaded():
        torch.library.register_fake(f"effkernels::{_name}")(_fake)


def _check_x(x):
    check_tensor(x, "x", ndim=4, dtype=FLOAT_DTYPES)


def _check_se(c, w1, b1, w2, b2, activation, gate, device):
    """w1 [S, C], b1 [S], w2 [C, S], b2 [C] in one float dtype; returns the activation codes."""
    check_tensor(w1, "w1", ndim=2, dtype=FLOAT_DTYPES, device=device)
    s = w1.shape[0]
    check_tensor(w1, "w1", shape=(s, c))
    check_tensor(b1, "b1", shape=(s,), dtype=w1.dtype, device=device)
    check_tensor(w2, "w2", shape=(c, s), dtype=w1.dtype, device=device)
    check_tensor(b2, "b2", shape=(c,), dtype=w1.dtype, device=device)
    return (activation_code(activation, "activation", SE_ACTIVATIONS), activation_code(gate, "gate", SE_GATES))


def _check_triton_squeeze(w1, argname="w1"):
    from ..triton.squeeze_excite import MAX_SQUEEZE

    if w1.shape[0] > MAX_SQUEEZE:
        raise ValueError(f"{argname}: the Triton SE kernel holds at most {MAX_SQUEEZE} squeeze channels, got "
                         f"{w1.shape[0]}; use another backend")


def channel_sums(x, backend="auto"):
    """fp32 [N, C] spatial sums of x [N, C, H, W] (the SE squeeze before dividing by H*W)."""
    _check_x(x)
    be = resolve(backend, x.device)
    if be == "eager":
        return channel_sums_ref(x)
    check_inference("channel_sums", x)
    if be == "triton":
        return _triton_channel_sums(x)
    return torch.ops.effkernels.channel_sums(x)


def se_excite(sums, inv_hw, w1, b1, w2, b2, activation="silu", gate="sigmoid", backend="auto"):
    """gate(w2 @ act(w1 @ (sums * inv_hw) + b1) + b2) per image: sums fp32 [N, C], w1 [S, C], b1 [S],
    w2 [C, S], b2 [C] (one float dtype, computed in fp32). Returns the fp32 [N, C] SE scale."""
    check_tensor(sums, "sums", ndim=2, dtype=torch.float32)
    codes = _check_se(sums.shape[1], w1, b1, w2, b2, activation, gate, sums.device)
    if isinstance(inv_hw, bool) or not isinstance(inv_hw, (int, float)) or not inv_hw > 0:
        raise ValueError(f"inv_hw: expected a positive number (1 / (H * W)), got {inv_hw!r}")
    be = resolve(backend, sums.device)
    if be == "eager":
        return se_excite_ref(sums, inv_hw, w1, b1, w2, b2, activation, gate)
    check_inference("se_excite", sums, w1, b1, w2, b2)
    if be == "triton":
        _check_triton_squeeze(w1)
        return _triton_se_excite(sums, float(inv_hw), w1, b1, w2, b2, *codes)
    return torch.ops.effkernels.se_excite(sums, float(inv_hw), w1, b1, w2, b2, *codes)


def se_scale(x, scale, backend="auto"):
    """x * scale[n, c] (scale fp32 [N, C]), computed in fp32, in x's dtype and memory format."""
    _check_x(x)
    check_tensor(scale, "scale", shape=tuple(x.shape[:2]), dtype=torch.float32, device=x.device)
    be = resolve(backend, x.device)
    if be == "eager":
        return se_scale_ref(x, scale)
    check_inference("se_scale", x, scale)
    if be == "triton":
        return _triton_se_scale(x, scale)
    return torch.ops.effkernels.se_scale(x, scale)


def squeeze_excite(x, w1, b1, w2, b2, activation="silu", gate="sigmoid", backend="auto"):
    """torchvision's SqueezeExcitation on x [N, C, H, W] with fc weights as matrices w1 [S, C],
    w2 [C, S]: x * gate(w2 @ act(w1 @ mean_hw(x) + b1) + b2). Three kernels: sums, excite, scale."""
    _check_x(x)
    n, c, h, w = x.shape
    codes = _check_se(c, w1, b1, w2, b2, activation, gate, x.device)
    be = resolve(backend, x.device)
    if be == "eager":
        return squeeze_excite_ref(x, w1, b1, w2, b2, activation, gate)
    check_inference("squeeze_excite", x, w1, b1, w2, b2)
    if h * w == 0:
        return x.clone()  # no pixels to scale
    if be == "triton":
        _check_triton_squeeze(w1)
        scale = _triton_se_excite(_triton_channel_sums(x), 1.0 / (h * w), w1, b1, w2, b2, *codes)
        return _triton_se_scale(x, scale)
    ops = torch.ops.effkernels
    return ops.se_scale(x, ops.se_excite(ops.channel_sums(x), 1.0 / (h * w), w1, b1, w2, b2, *codes))
