"""Squeeze-excitation ops: channel_sums (squeeze), se_excite (the MLP), se_scale (x * scale), and
squeeze_excite = all three, for SE blocks that do not follow a depthwise conv (after one,
dwconv_bn_act(se_sums=True) gives the sums and pointwise_conv(scale=...) applies the scale).

Backends: "triton" (effkernels/triton/squeeze_excite.py), "cuda"/"cpu" (torch.ops.effkernels),
"eager" (effkernels.reference).
"""
from __future__ import annotations

import torch

from .. import _dispatch
from .._common import (FLOAT_DTYPES, SE_ACTIVATIONS, SE_GATES, activation_code, check_inference, check_tensor,
                       empty_like_layout)
from ..backends import resolve
from ..reference import channel_sums_ref, se_excite_ref, se_scale_ref, squeeze_excite_ref

_TRITON = "effkernels.triton.squeeze_excite:"
_dispatch.define("channel_sums", lambda x: x.new_empty((x.shape[0], x.shape[1]), dtype=torch.float32),
                 "(Tensor x) -> Tensor", _TRITON + "channel_sums")
_dispatch.define("se_excite", lambda sums, *_: sums.new_empty((sums.shape[0], sums.shape[-1]), dtype=torch.float32),
                 "(Tensor sums, float inv_hw, Tensor w1, Tensor b1, Tensor w2, Tensor b2, int activation, "
                 "int gate) -> Tensor", _TRITON + "se_excite")
_dispatch.define("se_scale", lambda x, scale: empty_like_layout(x, x.shape), "(Tensor x, Tensor scale) -> Tensor",
                 _TRITON + "se_scale")


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
    return _dispatch.run("channel_sums", be, x)


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
    return _dispatch.run("se_excite", be, sums, float(inv_hw), w1, b1, w2, b2, *codes)


def se_scale(x, scale, backend="auto"):
    """x * scale[n, c] (scale fp32 [N, C]), computed in fp32, in x's dtype and memory format."""
    _check_x(x)
    check_tensor(scale, "scale", shape=tuple(x.shape[:2]), dtype=torch.float32, device=x.device)
    be = resolve(backend, x.device)
    if be == "eager":
        return se_scale_ref(x, scale)
    check_inference("se_scale", x, scale)
    return _dispatch.run("se_scale", be, x, scale)


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
    sums = _dispatch.run("channel_sums", be, x)
    scale = _dispatch.run("se_excite", be, sums, 1.0 / (h * w), w1, b1, w2, b2, *codes)
    return _dispatch.run("se_scale", be, x, scale)
