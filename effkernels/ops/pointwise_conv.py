"""pointwise_conv: 1x1 convolution with an optional SE scale on its input, bias, activation and
an optional residual: act(conv1x1(x * scale[n, c_in]) + bias) + residual.

Backends: "triton" (effkernels/triton/pointwise_conv.py), "cuda"/"cpu" (torch.ops.effkernels),
"eager" (reference.pointwise_conv_ref).

The cpu backend's block kernels take 1x1 weights packed once (pack_pointwise_weight: fp32 panels of the
register tile's width, csrc/cpu/gemm.h, or for a bf16 weight on a CPU with AMX bf16 panels in the layout of
the AMX tiles, csrc/cpu/amx.h); the C++ op pointwise_conv_packed is pointwise_conv on such weights.
"""
from __future__ import annotations

import torch

from .. import _dispatch, _ext
from .._common import FLOAT_DTYPES, activation_code, check_inference, check_tensor, empty_like_layout
from ..backends import resolve
from ..reference import pointwise_conv_ref


def _fake(x, weight, bias, activation, scale, residual):
    n, _, h, w = x.shape
    return empty_like_layout(x, (n, weight.shape[0], h, w))


def _pack_fake(weight):
    nr = _ext._C.cpu_panel_width()  # output channels per panel: 16 (AVX2), 32 (AVX-512)
    panels, k = -(-weight.shape[0] // nr), weight.shape[1]
    if weight.dtype == torch.bfloat16 and _ext._C.cpu_amx_bf16():  # AMX panels: pairs of k, K padded to 32
        return weight.new_empty((panels, -(-k // 32) * 16, nr, 2), dtype=torch.bfloat16)
    return weight.new_empty((panels, k, nr), dtype=torch.float32)


def _packed_fake(x, weight, bias, activation, scale, residual):
    n, _, h, w = x.shape
    return empty_like_layout(x, (n, bias.shape[0], h, w))


_dispatch.define("pack_pointwise_weight", _pack_fake)  # C++ (CPU) only
_dispatch.define("pointwise_conv_packed", _packed_fake)  # C++ (CPU) only
_dispatch.define("pointwise_conv", _fake, "(Tensor x, Tensor weight, Tensor bias, int activation, Tensor? scale, "
                 "Tensor? residual) -> Tensor", "effkernels.triton.pointwise_conv:pointwise_conv")


def pack_cpu(weight):
    """weight [C_out, C_in] packed for the cpu backend's GEMM (pack_pointwise_weight): pointwise_conv's `packed`."""
    return torch.ops.effkernels.pack_pointwise_weight(weight)


def pointwise_conv(x, weight, bias, activation="none", scale=None, residual=None, backend="auto", packed=None):
    """1x1 conv on x [N, C_in, H, W] with weight [C_out, C_in] and bias [C_out] (BN folded).

    scale: optional fp32 [N, C_in], multiplies the input (the SE scale), rounded to x's dtype.
    residual: optional [N, C_out, H, W], added after the activation.
    Returns [N, C_out, H, W] in x's dtype and memory format.
    packed: pack_cpu(weight), made once, read by the cpu backend (other backends ignore it).
    """
    check_tensor(x, "x", ndim=4, dtype=FLOAT_DTYPES)
    n, c_in, h, w = x.shape
    check_tensor(weight, "weight", shape=(None, c_in), dtype=x.dtype, device=x.device)
    c_out = weight.shape[0]
    check_tensor(bias, "bias", shape=(c_out,), dtype=x.dtype, device=x.device)
    act = activation_code(activation)
    if scale is not None:
        check_tensor(scale, "scale", shape=(n, c_in), dtype=torch.float32, device=x.device)
    if residual is not None:
        check_tensor(residual, "residual", shape=(n, c_out, h, w), dtype=x.dtype, device=x.device)
    be = resolve(backend, x.device)
    if be == "eager":
        return pointwise_conv_ref(x, weight, bias, activation, scale, residual)
    check_inference("pointwise_conv", x, weight, bias, scale, residual)
    if be == "cpu" and packed is not None:
        return _dispatch.run("pointwise_conv_packed", be, x, packed, bias, act, scale, residual)
    return _dispatch.run("pointwise_conv", be, x, weight, bias, act, scale, residual)
