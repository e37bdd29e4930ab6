"""Shared argument checks, activation codes and convolution geometry.

Every op validates its inputs through these helpers so error messages read the same
everywhere: they name the argument and say what was expected.
"""
from __future__ import annotations

import math
from typing import Union

import torch

# Activation codes shared by the Triton kernels, the C++/CUDA kernels and the references.
# Keep in sync with csrc/act.h (enum class Act).
ACTIVATIONS = {
    "none": 0,
    "relu": 1,
    "relu6": 2,
    "silu": 3,
    "hardswish": 4,
    "sigmoid": 5,
    "hardsigmoid": 6,
}
# What the fused depthwise / pointwise epilogues accept, and what an SE gate accepts.
CONV_ACTIVATIONS = ("none", "relu", "relu6", "silu", "hardswish")
SE_ACTIVATIONS = ("relu", "silu")
SE_GATES = ("sigmoid", "hardsigmoid")

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

Padding = Union[int, str, tuple]


def activation_code(name: str, argname: str = "activation", allowed=CONV_ACTIVATIONS) -> int:
    if name not in allowed:
        raise ValueError(f"{argname}: expected one of {list(allowed)}, got {name!r}")
    return ACTIVATIONS[name]


def check_tensor(t, argname: str, *, ndim=None, shape=None, dtype=None, device=None) -> None:
    """Raise a ValueError naming `argname` when `t` is not what an op expects.

    `shape` may hold None for a free dimension. `dtype` may be a dtype or a tuple of them.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{argname}: expected a torch.Tensor, got {type(t).__name__}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{argname}: expected a {ndim}-d tensor, got shape {tuple(t.shape)}")
    if shape is not None:
        want = tuple("*" if s is None else s for s in shape)
        if t.dim() != len(shape) or any(s is not None and s != g for s, g in zip(shape, t.shape)):
            raise ValueError(f"{argname}: expected shape {want}, got {tuple(t.shape)}")
    if dtype is not None:
        allowed = dtype if isinstance(dtype, tuple) else (dtype,)
        if t.dtype not in allowed:
            names = ", ".join(str(d).replace("torch.", "") for d in allowed)
            raise ValueError(f"{argname}: expected dtype {names}, got {str(t.dtype).replace('torch.', '')}")
    if device is not None and t.device != torch.device(device):
        raise ValueError(f"{argname}: expected a tensor on {device}, got one on {t.device}")


def check_inference(op: str, *tensors) -> None:
    """The fused kernels have no backward: refuse inputs that would need one."""
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        raise RuntimeError(f"{op}: the fused kernels are inference-only and got inputs that require grad; "
                           "use backend='eager' to train, or run under torch.no_grad()/torch.inference_mode()")


def conv_geometry(h: int, w: int, k: int, stride: int, padding: Padding):
    """Return (pad_top, pad_left, out_h, out_w) of a k x k convolution.

    padding: an int p (symmetric, PyTorch style: out = (h + 2p - k) // s + 1), "same" (TensorFlow
    SAME: out = ceil(h / s), pad_total = max((out - 1) * s + k - h, 0), the extra row/column at the
    bottom/right), or a tuple (top, bottom, left, right). Kernels zero-fill outside the input, so
    only the top/left pads and the output size are needed.
    """
    if isinstance(padding, str):
        if padding != "same":
            raise ValueError(f"padding: expected an int, 'same' or (top, bottom, left, right), got {padding!r}")
        out_h, out_w = math.ceil(h / stride), math.ceil(w / stride)
        pad_h = max((out_h - 1) * stride + k - h, 0)
        pad_w = max((out_w - 1) * stride + k - w, 0)
        return pad_h // 2, pad_w // 2, out_h, out_w
    if isinstance(padding, int) and not isinstance(padding, bool):
        top = bottom = left = right = padding
    elif isinstance(padding, (tuple, list)) and len(padding) == 4 and all(isinstance(p, int) for p in padding):
        top, bottom, left, right = padding
    else:
        raise ValueError(f"padding: expected an int, 'same' or (top, bottom, left, right), got {padding!r}")
    if min(top, bottom, left, right) < 0:
        raise ValueError(f"padding: expected non-negative pads, got {padding!r}")
    out_h = (h + top + bottom - k) // stride + 1
    out_w = (w + left + right - k) // stride + 1
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"x: input {h}x{w} is too small for kernel {k}, stride {stride}, padding {padding!r}")
    return top, left, out_h, out_w


def explicit_padding(h: int, w: int, k: int, stride: int, padding: Padding):
    """(top, bottom, left, right) pads that produce conv_geometry's output size."""
    top, left, out_h, out_w = conv_geometry(h, w, k, stride, padding)
    bottom = max((out_h - 1) * stride + k - h - top, 0)
    right = max((out_w - 1) * stride + k - w - left, 0)
    return top, bottom, left, right


def is_channels_last(x: torch.Tensor) -> bool:
    """True when x is laid out NHWC in memory (C innermost), the layout the kernels prefer.

    Decided by strides, so NHWC views that are not contiguous count too.
    """
    return x.dim() == 4 and x.shape[1] > 1 and x.stride(1) == 1


def empty_like_layout(x: torch.Tensor, shape, dtype=None) -> torch.Tensor:
    """A new 4-d tensor of `shape` in x's memory format (channels_last stays channels_last)."""
    fmt = torch.channels_last if is_channels_last(x) else torch.contiguous_format
    # memory_format at allocation: .contiguous(memory_format=...) afterwards would launch a copy kernel.
    return torch.empty(shape, dtype=dtype or x.dtype, device=x.device, memory_format=fmt)


def tap_major(weight: torch.Tensor) -> torch.Tensor:
    """The same [C, 1, k, k] weight stored as [k, k, C] (channel stride 1): the channels_last
    Triton and CUDA kernels then load each tap's weights as vectors. Once per fold (nn/_base.py), never per call."""
    return weight[:, 0].permute(1, 2, 0).contiguous().permute(2, 0, 1).unsqueeze(1)
