"""activation_ (ops/activation.py; the C++ op csrc/cpu/activation.cpp on the cpu backend): an activation written in
place over a dense tensor, against the float64 reference (reference.apply_activation) for every activation the
conv layers take, fp32/fp16/bf16 (tolerances: helpers.TOL), both layouts and sizes that leave a vector tail
(odd element counts, C not a multiple of 8/16), N = 1, and a size past one parallel piece (2^15 elements) so
two threads share it; the ATen fallback for a view with gaps; errors naming the argument."""
import pytest
import torch

from effkernels._common import ACTIVATIONS, CONV_ACTIVATIONS
from effkernels.ops import activation_
from effkernels.reference import apply_activation
from helpers import assert_close_to_ref, backend_params, backend_unavailable

ops = torch.ops.effkernels
SHAPES = [(1, 3, 7, 9), (2, 19, 5, 7), (1, 32, 112, 112)]


@pytest.mark.parametrize("backend", backend_params(("cpu",)) + ["eager"])
@pytest.mark.parametrize("activation", CONV_ACTIVATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference(shape, layout, dtype, activation, backend):
    y = (torch.randn(shape) * 4).to(dtype)
    if layout == "channels_last":
        y = y.contiguous(memory_format=torch.channels_last)
    ref = apply_activation(y.double(), activation)
    ptr = y.data_ptr()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = activation_(y, activation, backend)
    finally:
        torch.set_num_threads(threads)
    assert out is y and y.data_ptr() == ptr, "not in place"
    assert y.dtype == dtype and y.is_contiguous(memory_format=torch.channels_last if layout == "channels_last"
                                                else torch.contiguous_format)
    assert_close_to_ref(y, ref, dtype)


def test_strided_view_falls_back_to_aten():
    """A view with gaps is activated by ATen's in-place function (the C++ kernel takes dense tensors only)."""
    base = torch.randn(2, 8, 6, 10)
    view = base[:, :, :, 2:7]
    ref = apply_activation(view.double(), "silu")
    activation_(view, "silu", "auto")
    assert_close_to_ref(view, ref, torch.float32)


@pytest.mark.skipif(backend_unavailable("cpu") is not None, reason=str(backend_unavailable("cpu")))
def test_cxx_errors_name_the_argument():
    with pytest.raises(RuntimeError, match="x: expected a dense tensor"):
        ops.activation_(torch.randn(4, 6)[:, ::2], ACTIVATIONS["silu"])
    with pytest.raises(RuntimeError, match="x: expected dtype float32, float16 or bfloat16"):
        ops.activation_(torch.zeros(4, dtype=torch.int32), ACTIVATIONS["silu"])
    with pytest.raises(RuntimeError, match="activation: expected an activation code 0..6"):
        ops.activation_(torch.zeros(4), 9)


def test_python_errors_name_the_argument():
    with pytest.raises(ValueError, match="activation: expected one of"):
        activation_(torch.zeros(4), "sigmoid")


@pytest.mark.skipif(backend_unavailable("cpu") is not None, reason=str(backend_unavailable("cpu")))
@pytest.mark.parametrize("activation", ["silu", "hardswish"])
def test_range_and_nan(activation):
    """Past exp's clamp (x > 87: the kernel's exp(-x) clamps its exponent to -126; x < -88.7: exp(-x) = inf), tiny
    and zero inputs, every
    element compared with the float64 reference: rel 5e-6 (exp(-x) = 2^t with t = -x log2(e) rounded to fp32,
    whose error grows with |x|: 3.5e-6 at x = -66, where silu(x) ~ 1e-27; below 1e-6 for |x| < 10) or abs 1e-30;
    NaN stays NaN."""
    x = torch.cat([torch.linspace(-120, 120, 4001), torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e-6, -87.5, 88.7])])
    ref = apply_activation(x.double(), activation)
    y = x.clone()
    ops.activation_(y, ACTIVATIONS[activation])
    err = (y.double() - ref).abs()
    assert (err <= 5e-6 * ref.abs() + 1e-30).all(), f"worst at x = {x[(err / (ref.abs() + 1e-30)).argmax()]}"
    nan = torch.tensor([float("nan"), 1.0, float("nan")])
    ops.activation_(nan, ACTIVATIONS[activation])
    assert nan[0].isnan() and nan[2].isnan() and not nan[1].isnan()
