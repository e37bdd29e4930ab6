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

Padding = Union[None, int, str, tuple]


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


def as_pair(v, argname: str) -> tuple:
    """v as (height, width): an int for both, or a pair of ints."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v, v
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        return tuple(v)
    raise ValueError(f"{argname}: expected an int or a pair of ints, got {v!r}")


def conv_window(h: int, w: int, kernel, stride, padding: Padding) -> tuple:
    """(top, bottom, left, right, out_h, out_w) of a convolution on an h x w input; every op's padding goes
    through here. kernel, stride: an int or (height, width), checked by the caller.

    padding: None: (k - 1) // 2 per axis (odd kernels keep the size at stride 1); an int or a pair
    (height, width): symmetric, as nn.Conv2d's (out = (h + 2p - k) // s + 1); "valid": none; "same": TensorFlow SAME per axis (out = ceil(h / s), pad_total = max((out - 1) * s + k - h, 0),
    the extra row/column at the bottom/right); or (top, bottom, left, right).
    """
    (kh, kw), (sh, sw) = as_pair(kernel, "kernel"), as_pair(stride, "stride")
    if padding == "same":
        out_h, out_w = math.ceil(h / sh), math.ceil(w / sw)
        pad_h, pad_w = max((out_h - 1) * sh + kh - h, 0), max((out_w - 1) * sw + kw - w, 0)
        return pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2, out_h, out_w
    if padding is None:
        pads = ((kh - 1) // 2, (kh - 1) // 2, (kw - 1) // 2, (kw - 1) // 2)
    elif padding == "valid":
        pads = (0, 0, 0, 0)
    elif isinstance(padding, (tuple, list)) and len(padding) == 4 and all(
            isinstance(p, int) and not isinstance(p, bool) for p in padding):
        pads = tuple(padding)
    else:
        try:
            ph, pw = as_pair(padding, "padding")
        except ValueError:
            raise ValueError("padding: expected an int or a pair of ints, 'same', 'valid' or (top, bottom, left, "
                             f"right), got {padding!r}") from None
        pads = (ph, ph, pw, pw)
    if min(pads) < 0:
        raise ValueError(f"padding: expected non-negative pads, got {padding!r}")
    top, bottom, left, right = pads
    out_h, out_w = (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"x: a {h}x{w} input padded by {pads} is smaller than the {kh}x{kw} kernel")
    return (*pads, out_h, out_w)


def conv_geometry(h: int, w: int, k: int, stride: int, padding: Padding):
    """(pad_top, pad_left, out_h, out_w) of a k x k convolution (conv_window): kernels zero-fill outside the
    input, so only the top/left pads and the output size are needed."""
    top, _, left, _, out_h, out_w = conv_window(h, w, k, stride, padding)
    return top, left, out_h, out_w


def explicit_padding(h: int, w: int, k: int, stride: int, padding: Padding):
    """(top, bottom, left, right) pads of a k x k convolution (conv_window)."""
    return conv_window(h, w, k, stride, padding)[:4]


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
