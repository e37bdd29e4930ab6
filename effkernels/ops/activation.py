"""activation_: an activation applied in place to a fresh conv output, for the dense k x k convs ops.conv_bn_act
leaves to ATen (Fused-MBConv expand convs; every dense conv off the cpu backend). On the cpu backend it is the C++ op
torch.ops.effkernels.activation_ (csrc/cpu/activation.cpp, the block kernels' vector code: ATen's silu_ costs
~1 ns per element on one thread), elsewhere ATen's in-place activations. Reference: reference.apply_activation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _dispatch
from .._common import CONV_ACTIVATIONS, FLOAT_DTYPES, activation_code
from ..backends import resolve

_dispatch.define("activation_", lambda x, activation: None)  # C++ (CPU) only

_ATEN_INPLACE = {
    "none": lambda y: y,
    "relu": torch.relu_,
    "relu6": lambda y: F.relu6(y, inplace=True),
    "silu": lambda y: F.silu(y, inplace=True),
    "hardswish": lambda y: F.hardswish(y, inplace=True),
}


def activation_(y: torch.Tensor, activation: str, backend: str = "auto") -> torch.Tensor:
    """y activated in place (activation: one of CONV_ACTIVATIONS) and returned. The cpu backend runs the C++ kernel
    on a contiguous or channels_last y of a kernel dtype (what a conv returns); anything else (other backends, a
    view with gaps, float64) runs ATen's in-place function."""
    code = activation_code(activation, allowed=CONV_ACTIVATIONS)
    dense = y.is_contiguous() or (y.dim() == 4 and y.is_contiguous(memory_format=torch.channels_last))
    if code and dense and y.dtype in FLOAT_DTYPES and resolve(backend, y.device) == "cpu":
        _dispatch.run("activation_", "cpu", y, code)
        return y
    return _ATEN_INPLACE[activation](y)
