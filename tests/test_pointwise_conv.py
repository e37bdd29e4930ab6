"""pointwise_conv (1x1 conv GEMM with SE-scale prologue, bias/activation/residual epilogue) on every
backend against the float64 oracle, the C++ op's extras, and the argument checks."""
import pytest
import torch

from effkernels._common import ACTIVATIONS
from effkernels.ops.pointwise_conv import pointwise_conv
from helpers import assert_close_to_ref, backend_device, backend_params, cxx_error_inputs, matrix
from op_cases import (CONV_ACTS, DTYPES, LAYOUTS, PW, PW_CASES, PW_EXTRAS, check_pointwise_conv, make_x, param,
                      pw_sample, rotate)
import oracles

pytestmark = pytest.mark.usefixtures("poisoned")

BACKENDS = backend_params()


@pytest.mark.parametrize("i,dtype,layout,backend", matrix([str(tuple(c)) for c in PW_CASES], DTYPES, LAYOUTS))
def test_matches_oracle(i, dtype, layout, backend):
    """Every case, dtype and layout; the activation and the (scale, residual) pair rotate with them."""
    j, k = DTYPES.index(dtype), LAYOUTS.index(layout)
    s = pw_sample(PW_CASES[i], backend_device(backend), dtype, layout, rotate(CONV_ACTS, i, j, k),
                  *rotate(PW_EXTRAS, i, j, k))
    check_pointwise_conv(pointwise_conv(*s.args, backend=backend), s)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("with_scale,with_res", PW_EXTRAS, ids=["plain", "scale", "residual", "scale+residual"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
def test_scale_and_residual(with_scale, with_res, dtype, layout, backend):
    s = pw_sample(PW_CASES[1], backend_device(backend), dtype, layout, "silu", with_scale, with_res)
    check_pointwise_conv(pointwise_conv(*s.args, backend=backend), s)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", CONV_ACTS)
def test_every_activation(backend, activation):
    s = pw_sample(PW(2, 24, 16, 5, 3), backend_device(backend), torch.float32, "channels_last", activation)
    s.args[0].mul_(4)  # the oracle sees the same tensor: reach both saturation points of relu6 / hardswish
    check_pointwise_conv(pointwise_conv(*s.args, backend=backend), s)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_views(backend):
    """Every operand a strided view: the kernel must use the strides it is given."""
    device = backend_device(backend)
    x = torch.randn(2, 9, 11, 40).permute(0, 3, 1, 2)[:, ::2].to(device)  # [2, 20, 9, 11], C stride 2
    w = torch.randn(40, 16).t()[:, ::2].to(device)                         # [16, 20], non-unit inner stride
    b = torch.randn(32)[::2].to(device)
    scale = torch.rand(20, 2).t().to(device)
    res = torch.randn(2, 16, 18, 11)[:, :, ::2].to(device)
    out = pointwise_conv(x, w, b, "relu", scale, res, backend=backend)
    assert_close_to_ref(out, oracles.pointwise_conv(x, w, b, "relu", scale, res), torch.float32)
    # NCHW x (per-image tiles) with a residual whose rows do not flatten: the flattened mapping.
    x = x.contiguous()
    out = pointwise_conv(x, w, b, "relu", scale, res, backend=backend)
    assert_close_to_ref(out, oracles.pointwise_conv(x, w, b, "relu", scale, res), torch.float32)


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.values[0] != "eager"])
def test_refuses_autograd(backend):
    x, w, b = pw_sample(PW(1, 8, 4, 3, 3), backend_device(backend), torch.float32, "channels_last").args[:3]
    w.requires_grad_()
    with pytest.raises(RuntimeError, match="backend='eager'"):
        pointwise_conv(x, w, b, backend=backend)
    with torch.no_grad():
        assert_close_to_ref(pointwise_conv(x, w, b, backend=backend), oracles.pointwise_conv(x, w, b), torch.float32)


def test_eager_backend_trains():
    x, w, b = pw_sample(PW(1, 8, 4, 3, 3), "cpu", torch.float32, "channels_last").args[:3]
    w.requires_grad_()
    pointwise_conv(x, w, b, "silu", backend="eager").sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_bad_inputs():
    x, w, b = pw_sample(PW(2, 8, 4, 3, 3), "cpu", torch.float32, "channels_last").args[:3]
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


# ---------------------------------------------------------------- the C++ op's extras

CXX = backend_params(("cpu", "cuda"))


@pytest.mark.parametrize("device", CXX)
@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16], ids=str)
def test_cxx_inside_autocast(device, amp_dtype):
    """Inside torch.autocast the kernel keeps x's dtype (its internal GEMM is not recast)."""
    x = make_x((2, 16, 5, 5), torch.float32, "channels_last", device)
    pw, pb = param(8, 16, device=device), param(8, device=device)
    with torch.autocast(device, dtype=amp_dtype):
        out = torch.ops.effkernels.pointwise_conv(x, pw, pb, ACTIVATIONS["relu"], None, None)
    assert out.dtype == torch.float32
    assert_close_to_ref(out, oracles.pointwise_conv(x, pw, pb, "relu"), torch.float32)


@pytest.mark.parametrize("backend", backend_params(("cpu",)))
def test_cpu_in_inference_mode_multithreaded(backend):
    """ATen calls made from the CPU kernels' worker threads must see the caller's inference mode."""
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.inference_mode():
            x = make_x((2, 16, 33, 33), torch.float32, "channels_last", "cpu")
            w, b = param(96, 16), param(96)
            out = pointwise_conv(x, w, b, "silu", backend=backend)
        assert_close_to_ref(out, oracles.pointwise_conv(x, w, b, "silu"), torch.float32)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("device", CXX)
def test_cxx_error_messages(device, request):
    if (inputs := cxx_error_inputs(device, request)) is None:
        return
    ops, x = inputs
    w, b = torch.randn(4, 8, device=device), torch.randn(4, device=device)
    with pytest.raises(RuntimeError, match=r"weight: expected shape \[C_out, 8\]"):
        ops.pointwise_conv(x, w[:, :5], b, 0, None, None)
    with pytest.raises(RuntimeError, match=r"residual: expected shape \[2, 4, 9, 9\]"):
        ops.pointwise_conv(x, w, b, 0, None, x)
