"""Squeeze-excitation ops (channel_sums, se_excite, se_scale, squeeze_excite) on every backend against
the float64 oracle and torchvision's SqueezeExcitation, the C++ ops' extras, and the argument checks."""
import pytest
import torch
from torchvision.ops import SqueezeExcitation

from effkernels._common import ACTIVATIONS
from effkernels.ops.squeeze_excite import channel_sums, se_excite, se_scale, squeeze_excite
from helpers import assert_close_to_ref, backend_device, backend_params, cxx_error_inputs, matrix
from op_cases import (DTYPES, EXCITE_CASES, LAYOUTS, SE_PAIRS, SE_SHAPES, Sample, check_channel_sums, check_same_shape,
                      check_se_excite, channel_sums_sample, misaligned_cl, rotate, se_excite_sample, se_scale_sample,
                      se_weights, se_x, squeeze_excite_sample)
import oracles

pytestmark = pytest.mark.usefixtures("poisoned")

BACKENDS = backend_params()
SHAPE_IDS = [str(s) for s in SE_SHAPES]


@pytest.mark.parametrize("i,dtype,layout,backend", matrix(SHAPE_IDS, DTYPES, LAYOUTS))
def test_channel_sums(i, dtype, layout, backend):
    s = channel_sums_sample(SE_SHAPES[i], backend_device(backend), dtype, layout)
    check_channel_sums(channel_sums(*s.args, backend=backend), s)


@pytest.mark.parametrize("i,w_dtype,act_gate,backend", matrix([str(tuple(c)) for c in EXCITE_CASES], DTYPES, SE_PAIRS))
def test_se_excite(i, w_dtype, act_gate, backend):
    s = se_excite_sample(EXCITE_CASES[i], backend_device(backend), w_dtype, *act_gate)
    check_se_excite(se_excite(*s.args, **s.kwargs, backend=backend), s)


@pytest.mark.parametrize("i,dtype,layout,backend", matrix(SHAPE_IDS, DTYPES, LAYOUTS))
def test_se_scale(i, dtype, layout, backend):
    s = se_scale_sample(SE_SHAPES[i], backend_device(backend), dtype, layout)
    check_same_shape(se_scale(*s.args, backend=backend), s)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_misaligned_input(dtype, backend):
    """channel_sums and se_scale on a dense channels_last x off 16-byte alignment (C = 64, a multiple of every
    vector width: only the address keeps the CUDA kernels off their vector paths)."""
    device = backend_device(backend)
    x = misaligned_cl((2, 64, 11, 13), dtype, device)
    s = Sample("channel_sums misaligned", (x,), {}, lambda: oracles.channel_sums(x))
    check_channel_sums(channel_sums(x, backend=backend), s)
    scale = (torch.rand(2, 64) * 2).to(device)
    s = Sample("se_scale misaligned", (x, scale), {}, lambda: oracles.se_scale(x, scale))
    check_same_shape(se_scale(x, scale, backend=backend), s)


@pytest.mark.parametrize("i,dtype,layout,backend", matrix(SHAPE_IDS, DTYPES, LAYOUTS))
def test_squeeze_excite(i, dtype, layout, backend):
    """The activation / gate pair rotates with the shape and dtype."""
    s = squeeze_excite_sample(SE_SHAPES[i], backend_device(backend), dtype, layout,
                              *rotate(SE_PAIRS, i, DTYPES.index(dtype)))
    check_same_shape(squeeze_excite(*s.args, **s.kwargs, backend=backend), s)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_torchvision(backend):
    device = backend_device(backend)
    se = SqueezeExcitation(37, 9).eval()
    for p in se.parameters():
        p.data.normal_(0, 0.3)
    x = se_x((2, 37, 5, 7), torch.float32, "channels_last", "cpu")
    ws = [t.to(device) for t in (se.fc1.weight[:, :, 0, 0], se.fc1.bias, se.fc2.weight[:, :, 0, 0], se.fc2.bias)]
    with torch.no_grad():
        out = squeeze_excite(x.to(device), *ws, "relu", "sigmoid", backend=backend)  # torchvision's defaults
        ref = se.double()(x.double())
    assert_close_to_ref(out, ref, torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_views(backend):
    """Strided views of every operand, the weights and the sums too."""
    device = backend_device(backend)
    x = torch.randn(2, 9, 11, 40).permute(0, 3, 1, 2)[:, ::2].to(device)  # C stride 2
    w1, b1, w2, b2 = se_weights(40, 6, device=device)
    ws = (w1[:, ::2], b1, w2[::2], b2[::2])
    assert_close_to_ref(squeeze_excite(x, *ws, backend=backend),
                        oracles.squeeze_excite(x, *ws, "silu", "sigmoid"), torch.float32)
    sums = torch.randn(20, 2).t().to(device)
    assert_close_to_ref(se_excite(sums, 0.1, *ws, backend=backend),
                        oracles.se_excite(sums, 0.1, *ws, "silu", "sigmoid"), torch.float32)
    scale = torch.rand(20, 2).t().to(device)
    assert_close_to_ref(se_scale(x, scale, backend=backend), oracles.se_scale(x, scale), torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch(backend):
    device = backend_device(backend)
    x = se_x((0, 8, 3, 3), torch.float32, "channels_last", device)
    ws = se_weights(8, 2, device=device)
    assert channel_sums(x, backend=backend).shape == (0, 8)
    assert se_excite(torch.zeros(0, 8, device=device), 1 / 9, *ws, backend=backend).shape == (0, 8)
    assert squeeze_excite(x, *ws, backend=backend).shape == x.shape


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.values[0] == "triton"])
def test_triton_squeeze_limit(backend):
    from effkernels.triton.squeeze_excite import MAX_SQUEEZE

    ws = se_weights(8, MAX_SQUEEZE + 1, device=backend_device(backend))
    with pytest.raises(ValueError, match="w1: the Triton SE kernel holds at most"):
        se_excite(torch.rand(1, 8, device=backend_device(backend)), 1.0, *ws, backend="triton")


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.values[0] != "eager"])
def test_refuses_autograd(backend):
    device = backend_device(backend)
    x = se_x((1, 8, 3, 3), torch.float32, "channels_last", device)
    w1, b1, w2, b2 = se_weights(8, 2, device=device)
    w1.requires_grad_()
    with pytest.raises(RuntimeError, match="backend='eager'"):
        squeeze_excite(x, w1, b1, w2, b2, backend=backend)
    with pytest.raises(RuntimeError, match="backend='eager'"):
        se_scale(x, torch.rand(1, 8, device=device, requires_grad=True), backend=backend)


def test_bad_inputs():
    x = se_x((2, 8, 3, 3), torch.float32, "channels_last", "cpu")
    w1, b1, w2, b2 = se_weights(8, 2)
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


# ---------------------------------------------------------------- the C++ ops' extras

CXX = backend_params(("cpu", "cuda"))


@pytest.mark.parametrize("device", CXX)
@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16], ids=str)
def test_cxx_se_excite_inside_autocast(device, amp_dtype):
    """Inside torch.autocast the kernel keeps its own dtypes (its internal GEMMs are not recast)."""
    sums, w1, b1, w2, b2 = (torch.randn(*s, device=device) for s in ((2, 16), (4, 16), (4,), (16, 4), (16,)))
    with torch.autocast(device, dtype=amp_dtype):
        scale = torch.ops.effkernels.se_excite(sums, 0.1, w1, b1, w2, b2, ACTIVATIONS["silu"], ACTIVATIONS["sigmoid"])
    assert scale.dtype == torch.float32
    assert_close_to_ref(scale, oracles.se_excite(sums, 0.1, w1, b1, w2, b2, "silu", "sigmoid"), torch.float32)


@pytest.mark.parametrize("device", CXX)
def test_cxx_error_messages(device, request):
    if (inputs := cxx_error_inputs(device, request)) is None:
        return
    ops, x = inputs
    with pytest.raises(RuntimeError, match=r"scale: expected shape \[2, 8\]"):
        ops.se_scale(x, torch.rand(2, 7, device=device))
    with pytest.raises(RuntimeError, match=r"scale: expected dtype float32"):
        ops.se_scale(x, torch.rand(2, 8, device=device, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"w2: expected shape \[8, 3\]"):
        ops.se_excite(torch.randn(2, 8, device=device), 1.0, torch.randn(3, 8, device=device),
                      torch.randn(3, device=device), torch.randn(8, 4, device=device), torch.randn(8, device=device),
                      ACTIVATIONS["silu"], ACTIVATIONS["sigmoid"])
