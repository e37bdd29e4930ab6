"""pointwise_conv (1x1 conv GEMM with SE-scale prologue, bias/activation/residual epilogue) vs the
float64 reference, on every backend this machine has."""
import pytest
import torch

from effkernels import reference
from effkernels._common import CONV_ACTIVATIONS, is_channels_last
from effkernels.ops.pointwise_conv import pointwise_conv
from helpers import backends_for, assert_close_to_ref

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


pytestmark = pytest.mark.usefixtures("on_device")


BACKENDS = backends_for("pointwise_conv")


def _layout(t, channels_last):
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t.contiguous()


def _ref(x, w, b, act="none", scale=None, res=None):
    d = lambda t: None if t is None else t.double()  # noqa: E731
    return reference.pointwise_conv_ref(d(x), d(w), d(b), act, d(scale), d(res))


def _inputs(n, c_in, c_out, h, w, dtype, channels_last):
    x = _layout(torch.randn(n, c_in, h, w), channels_last).to(dtype)
    weight = (torch.randn(c_out, c_in) / c_in ** 0.5).to(dtype)
    bias = torch.randn(c_out).to(dtype)
    return x, weight, bias


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [True, False], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("with_scale,with_res", [(False, False), (True, False), (False, True), (True, True)])
def test_matches_reference(backend, dtype, channels_last, n, with_scale, with_res, poisoned_empty):
    # C_in 37 spans two K blocks, C_out 70 two N blocks; 7x7 maps make M tiles straddle images.
    x, w, b = _inputs(n, 37, 70, 7, 7, dtype, channels_last)
    scale = torch.rand(n, 37) * 2 if with_scale else None
    res = _layout(torch.randn(n, 70, 7, 7), not channels_last).to(dtype) if with_res else None
    out = pointwise_conv(x, w, b, "silu", scale, res, backend=backend)
    assert out.dtype == dtype and is_channels_last(out) == channels_last
    assert_close_to_ref(out, _ref(x, w, b, "silu", scale, res), dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", CONV_ACTIVATIONS)
def test_activations(backend, activation):
    x, w, b = _inputs(2, 24, 16, 5, 3, torch.float32, True)
    out = pointwise_conv(x, w, b, activation, backend=backend)
    assert_close_to_ref(out, _ref(x, w, b, activation), torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_views(backend):
    # Every operand is a strided view: the kernel must use the strides it is given.
    x = torch.randn(2, 9, 11, 40).permute(0, 3, 1, 2)[:, ::2]  # [2, 20, 9, 11], C stride 2
    w = torch.randn(40, 16).t()[:, ::2]                         # [16, 20], non-unit inner stride
    b = torch.randn(32)[::2]
    scale = torch.rand(20, 2).t()
    res = torch.randn(2, 16, 18, 11)[:, :, ::2]
    out = pointwise_conv(x, w, b, "relu", scale, res, backend=backend)
    assert_close_to_ref(out, _ref(x, w, b, "relu", scale, res), torch.float32)
    # NCHW x (per-image tiles) with a residual whose rows do not flatten: the flattened mapping.
    x = x.contiguous()
    out = pointwise_conv(x, w, b, "relu", scale, res, backend=backend)
    assert_close_to_ref(out, _ref(x, w, b, "relu", scale, res), torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch(backend):
    x, w, b = _inputs(0, 8, 4, 3, 3, torch.float32, True)
    out = pointwise_conv(x, w, b, "silu", backend=backend)
    assert out.shape == (0, 4, 3, 3)


def test_bad_inputs():
    x, w, b = _inputs(2, 8, 4, 3, 3, torch.float32, True)
    with pytest.raises(ValueError, match="x: expected a 4-d"):
        pointwise_conv(x[0], w, b, backend="eager")
    with pytest.raises(ValueError, match="x: expected dtype"):
        pointwise_conv(x.double(), w, b, backend="eager")
    with pytest.raises(ValueError, match="weight: expected shape"):
        pointwise_conv(x, w[:, :7], b, backend="eager")
    with pytest.raises(ValueError, match="weight: expected dtype"):
        pointwise_conv(x, w.half(), b, backend="eager")
    with pytest.raises(ValueError, match="bias: expected shape"):
        pointwise_conv(x, w, b[:3], backend="eager")
    with pytest.raises(ValueError, match="activation: expected one of"):
        pointwise_conv(x, w, b, "gelu", backend="eager")
    with pytest.raises(ValueError, match="scale: expected dtype"):
        pointwise_conv(x, w, b, scale=torch.rand(2, 8).half(), backend="eager")
    with pytest.raises(ValueError, match="scale: expected shape"):
        pointwise_conv(x, w, b, scale=torch.rand(2, 4), backend="eager")
    with pytest.raises(ValueError, match="residual: expected shape"):
        pointwise_conv(x, w, b, residual=x, backend="eager")
    with pytest.raises(ValueError, match="backend: expected"):
        pointwise_conv(x, w, b, backend="tpu")


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "eager"])
def test_refuses_autograd(backend):
    x, w, b = _inputs(1, 8, 4, 3, 3, torch.float32, True)
    w.requires_grad_()
    with pytest.raises(RuntimeError, match="backend='eager'"):
        pointwise_conv(x, w, b, backend=backend)
    with torch.no_grad():
        assert_close_to_ref(pointwise_conv(x, w, b, backend=backend), _ref(x, w, b), torch.float32)


def test_eager_backend_trains():
    x, w, b = _inputs(1, 8, 4, 3, 3, torch.float32, True)
    w.requires_grad_()
    pointwise_conv(x, w, b, "silu", backend="eager").sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_triton_op_registration():
    """Schema, fake kernel and torch.compile tracing of the Triton custom op (opcheck)."""
    if "triton" not in BACKENDS:
        pytest.skip("triton cannot run here")
    x, w, b = _inputs(2, 8, 4, 3, 3, torch.float32, True)
    torch.library.opcheck(torch.ops.effkernels_triton.pointwise_conv, (x, w, b, 3, torch.rand(2, 8), None))
