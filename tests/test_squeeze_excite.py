"""Squeeze-excitation ops (channel_sums, se_excite, se_scale, squeeze_excite) vs the float64
reference and vs torchvision's SqueezeExcitation, on every backend this machine has."""
import pytest
import torch
from torchvision.ops import SqueezeExcitation

from effkernels import reference
from effkernels._common import is_channels_last
from effkernels.ops.squeeze_excite import channel_sums, se_excite, se_scale, squeeze_excite
from helpers import backends_for, assert_close_to_ref

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


pytestmark = pytest.mark.usefixtures("on_device")


def _x(n, c, h, w, dtype, channels_last):
    x = torch.randn(n, c, h, w) + 0.3  # non-zero mean, so the sums are not just noise
    return (x.contiguous(memory_format=torch.channels_last) if channels_last else x).to(dtype)


def _se_weights(c, s, dtype=torch.float32):
    return ((torch.randn(s, c) / c ** 0.5).to(dtype), (torch.randn(s) * 0.5).to(dtype),
            (torch.randn(c, s) / s ** 0.5).to(dtype), (torch.randn(c) * 0.5).to(dtype))


def _d(ts):
    return [t.double() for t in ts]


@pytest.mark.parametrize("backend", backends_for("channel_sums"))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [True, False], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("shape", [(1, 37, 7, 7), (3, 70, 9, 13)])
def test_channel_sums(backend, dtype, channels_last, shape, poisoned_empty):
    x = _x(*shape, dtype, channels_last)
    out = channel_sums(x, backend=backend)
    assert out.dtype == torch.float32 and out.shape == shape[:2]
    # Sums of up to 117 values: compare as fp32 results (the input rounding is shared by both sides).
    assert_close_to_ref(out, reference.channel_sums_ref(x.double()), torch.float32)


@pytest.mark.parametrize("backend", backends_for("se_excite"))
@pytest.mark.parametrize("w_dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n,c,s", [(1, 37, 9), (3, 37, 1), (2, 1155, 300)])
@pytest.mark.parametrize("activation,gate", [("silu", "sigmoid"), ("relu", "hardsigmoid")])
def test_se_excite(backend, w_dtype, n, c, s, activation, gate, poisoned_empty):
    # C 1155 and S 300 need several channel blocks in both layers and a wide hidden vector.
    sums = torch.randn(n, c) * 49
    ws = _se_weights(c, s, w_dtype)
    out = se_excite(sums, 1 / 49, *ws, activation, gate, backend=backend)
    ref = reference.se_excite_ref(sums.double(), 1 / 49, *_d(ws), activation, gate)
    assert out.dtype == torch.float32
    # Weights are used as given (already rounded), the math is fp32 whatever their dtype.
    assert_close_to_ref(out, ref, torch.float32)


@pytest.mark.parametrize("backend", backends_for("se_scale"))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [True, False], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("n", [1, 3])
def test_se_scale(backend, dtype, channels_last, n, poisoned_empty):
    x = _x(n, 37, 7, 7, dtype, channels_last)
    scale = torch.rand(n, 37) * 2
    out = se_scale(x, scale, backend=backend)
    assert out.dtype == dtype and is_channels_last(out) == channels_last
    assert_close_to_ref(out, reference.se_scale_ref(x.double(), scale.double()), dtype)


@pytest.mark.parametrize("backend", backends_for("se_scale"))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [True, False], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("n", [1, 3])
def test_squeeze_excite(backend, dtype, channels_last, n, poisoned_empty):
    x = _x(n, 37, 7, 7, dtype, channels_last)
    ws = _se_weights(37, 9, dtype)
    out = squeeze_excite(x, *ws, "silu", "sigmoid", backend=backend)
    assert out.dtype == dtype and is_channels_last(out) == channels_last
    assert_close_to_ref(out, reference.squeeze_excite_ref(x.double(), *_d(ws)), dtype)


@pytest.mark.parametrize("backend", backends_for("se_scale"))
def test_matches_torchvision(backend):
    se = SqueezeExcitation(37, 9).eval()
    for p in se.parameters():
        p.data.normal_(0, 0.3)
    x = _x(2, 37, 5, 7, torch.float32, True)
    ws = (se.fc1.weight[:, :, 0, 0], se.fc1.bias, se.fc2.weight[:, :, 0, 0], se.fc2.bias)
    with torch.no_grad():
        out = squeeze_excite(x, *ws, "relu", "sigmoid", backend=backend)  # torchvision's defaults
        ref = se.double()(x.double())
    assert_close_to_ref(out, ref, torch.float32)


@pytest.mark.parametrize("backend", backends_for("se_scale"))
def test_non_contiguous_views(backend):
    x = torch.randn(2, 9, 11, 40).permute(0, 3, 1, 2)[:, ::2]  # C stride 2
    w1, b1, w2, b2 = _se_weights(40, 6)
    ws = (w1[:, ::2], b1, w2[::2], b2[::2])
    assert_close_to_ref(squeeze_excite(x, *ws, backend=backend),
                        reference.squeeze_excite_ref(x.double(), *_d(ws)), torch.float32)
    sums = torch.randn(20, 2).t()
    assert_close_to_ref(se_excite(sums, 0.1, *ws, backend=backend),
                        reference.se_excite_ref(sums.double(), 0.1, *_d(ws)), torch.float32)
    scale = torch.rand(20, 2).t()
    assert_close_to_ref(se_scale(x, scale, backend=backend),
                        reference.se_scale_ref(x.double(), scale.double()), torch.float32)


@pytest.mark.parametrize("backend", backends_for("se_scale"))
def test_empty_batch(backend):
    x = _x(0, 8, 3, 3, torch.float32, True)
    ws = _se_weights(8, 2)
    assert channel_sums(x, backend=backend).shape == (0, 8)
    assert se_excite(torch.zeros(0, 8), 1 / 9, *ws, backend=backend).shape == (0, 8)
    assert squeeze_excite(x, *ws, backend=backend).shape == x.shape


def test_bad_inputs():
    x = _x(2, 8, 3, 3, torch.float32, True)
    w1, b1, w2, b2 = _se_weights(8, 2)
    sums = torch.rand(2, 8)
    with pytest.raises(ValueError, match="x: expected a 4-d"):
        channel_sums(x[0], backend="eager")
    with pytest.raises(ValueError, match="sums: expected dtype float32"):
        se_excite(sums.half(), 1 / 9, w1, b1, w2, b2, backend="eager")
    with pytest.raises(ValueError, match="w1: expected shape"):
        se_excite(sums, 1 / 9, w1[:, :7], b1, w2, b2, backend="eager")
    with pytest.raises(ValueError, match="b1: expected shape"):
        se_excite(sums, 1 / 9, w1, b2, w2, b2, backend="eager")
    with pytest.raises(ValueError, match="w2: expected shape"):
        se_excite(sums, 1 / 9, w1, b1, w2.t(), b2, backend="eager")
    with pytest.raises(ValueError, match="b2: expected dtype"):
        se_excite(sums, 1 / 9, w1, b1, w2, b2.half(), backend="eager")
    with pytest.raises(ValueError, match="inv_hw: expected a positive number"):
        se_excite(sums, 0.0, w1, b1, w2, b2, backend="eager")
    with pytest.raises(ValueError, match="activation: expected one of"):
        se_excite(sums, 1 / 9, w1, b1, w2, b2, "hardswish", backend="eager")
    with pytest.raises(ValueError, match="gate: expected one of"):
        squeeze_excite(x, w1, b1, w2, b2, "silu", "tanh", backend="eager")
    with pytest.raises(ValueError, match="scale: expected shape"):
        se_scale(x, sums[:, :4], backend="eager")
    with pytest.raises(ValueError, match="scale: expected dtype"):
        se_scale(x, sums.double(), backend="eager")


@pytest.mark.skipif("triton" not in backends_for("se_excite"), reason="triton cannot run here")
def test_triton_squeeze_limit():
    from effkernels.triton.squeeze_excite import MAX_SQUEEZE

    ws = _se_weights(8, MAX_SQUEEZE + 1)
    with pytest.raises(ValueError, match="w1: the Triton SE kernel holds at most"):
        se_excite(torch.rand(1, 8), 1.0, *ws, backend="triton")


@pytest.mark.parametrize("backend", [b for b in backends_for("se_scale") if b != "eager"])
def test_refuses_autograd(backend):
    x = _x(1, 8, 3, 3, torch.float32, True)
    w1, b1, w2, b2 = _se_weights(8, 2)
    w1.requires_grad_()
    with pytest.raises(RuntimeError, match="backend='eager'"):
        squeeze_excite(x, w1, b1, w2, b2, backend=backend)
    with pytest.raises(RuntimeError, match="backend='eager'"):
        se_scale(x, torch.rand(1, 8, requires_grad=True), backend=backend)


@pytest.mark.skipif("triton" not in backends_for("se_excite"), reason="triton cannot run here")
def test_triton_op_registration():
    """Schemas, fake kernels and torch.compile tracing of the Triton custom ops (opcheck)."""
    x = _x(2, 8, 3, 3, torch.float32, True)
    ws = _se_weights(8, 2)
    ops = torch.ops.effkernels_triton
    torch.library.opcheck(ops.channel_sums, (x,))
    torch.library.opcheck(ops.se_excite, (torch.rand(2, 8), 1 / 9, *ws, 3, 5))
    torch.library.opcheck(ops.se_scale, (x, torch.rand(2, 8)))


@pytest.mark.skipif("triton" not in backends_for("se_excite"), reason="triton cannot run here")
@pytest.mark.parametrize("n,p,c,s", [(2, 3, 37, 9), (1, 45, 70, 300), (3, 2, 1155, 16)])
def test_triton_se_excite_reduces_partial_sums(n, p, c, s):
    """The launcher also takes [N, P, C] partial sums (the dw kernel's, one row per pixel block) and
    adds the P rows up itself: here a view of the first P rows of a larger buffer whose other rows
    are NaN, so reading past row P shows."""
    from effkernels.triton.squeeze_excite import se_excite as launch

    buf = torch.full((n, p + 5, c), float("nan"))
    buf[:, :p] = torch.randn(n, p, c) * 10
    partials = buf[:, :p]
    ws = _se_weights(c, s)
    out = launch(partials, 1 / 49, *ws, 3, 5)
    ref = reference.se_excite_ref(partials.double().sum(1), 1 / 49, *_d(ws), "silu", "sigmoid")
    assert out.shape == (n, c) and out.dtype == torch.float32
    assert_close_to_ref(out, ref, torch.float32)
