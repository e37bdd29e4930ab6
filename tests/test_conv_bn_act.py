"""conv_bn_act (ops/conv_bn_act.py; on the cpu backend the C++ kernel csrc/cpu/conv_bn_act.cpp for few input taps,
else ATen's conv + activation_): a dense conv with folded BN and an activation, against the float64 reference
(reference.conv_bn_act_ref) in fp32/fp16/bf16 (tolerances: helpers.TOL), both layouts and strided views, N = 1
and N > 1, C_out not a multiple of 8/16 (channel-block tails) and output widths that leave column tails, stride 1
and 2 (and (2, 1)), k 3 and 5 (and 3 x 5), every padding form (int, pair, TF SAME, asymmetric), every conv
activation; the C++ kernel directly on many input channels (past the wrapper's DIRECT_MAX_TAPS, so its general
case is covered too) and with 2 threads whose row ranges cross images; errors naming the argument."""
import pytest
import torch

from effkernels._common import ACTIVATIONS, CONV_ACTIVATIONS, conv_window
from effkernels.ops import conv_bn_act
from effkernels.ops.conv_bn_act import DIRECT_MAX_TAPS
from effkernels.reference import conv_bn_act_ref
from helpers import assert_close_to_ref, backend_device, backend_params, backend_unavailable

ops = torch.ops.effkernels
DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# (N, C_in, H, W, C_out, k (or (kh, kw)), stride, padding, the (top, bottom, left, right) pads it means, written here
# by hand so that the reference does not share the op's padding helper)
CASES = [
    (1, 3, 23, 31, 32, 3, 2, 1, (1, 1, 1, 1)),          # a stem: 3 -> 32, stride 2; 16 columns: two 6-column groups + 4
    (2, 3, 17, 16, 19, 3, 2, "same", (1, 1, 0, 1)),     # TF SAME (extra column at the right), C_out 19: a tail block
    (1, 3, 9, 13, 40, 5, 1, 2, (2, 2, 2, 2)),           # k 5, 40 channels: a full and a partial block on AVX2 and AVX-512
    (3, 1, 8, 7, 8, 3, 1, (0, 2, 1, 0), (0, 2, 1, 0)),  # C_in 1 (NCHW either way), asymmetric pads
    (2, 2, 11, 10, 24, (3, 5), (2, 1), (1, 2), (1, 1, 2, 2)),  # 3 x 5 kernel, stride (2, 1), pair padding
    (1, 3, 5, 5, 1, 3, 1, 0, (0, 0, 0, 0)),             # C_out 1, no padding
    (1, 3, 7, 6, 16, 3, 1, "valid", (0, 0, 0, 0)),      # nn.Conv2d's "valid"
]
LAYOUTS = ["channels_last", "nchw", "view"]


def _inputs(case, dtype, layout, device="cpu"):
    n, c_in, h, w, c_out, k = case[:6]
    kh, kw = (k, k) if isinstance(k, int) else k
    if layout == "view":  # gaps between rows and columns: the kernel reads x by its strides
        x = torch.randn(n, c_in, h + 3, 2 * w, device=device)[:, :, 1:h + 1, ::2]
    else:
        x = torch.randn(n, c_in, h, w, device=device)
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(c_out, c_in, kh, kw, device=device) / (c_in * kh * kw) ** 0.5
    bias = torch.randn(c_out, device=device) * 0.5
    return x.to(dtype), weight.to(dtype), bias.to(dtype)


def _reference(x, weight, bias, stride, pads, activation):
    return conv_bn_act_ref(x.double(), weight.double(), bias.double(), stride, pads, activation)


@pytest.mark.parametrize("backend", backend_params(("cpu", "cuda", "triton", "eager")))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
def test_matches_reference(case, dtype, layout, backend):
    x, weight, bias = _inputs(case, dtype, layout, backend_device(backend))
    stride, padding, pads = case[6:]
    kh, kw = weight.shape[2:]
    assert conv_window(x.shape[2], x.shape[3], (kh, kw), stride, padding)[:4] == pads
    out = conv_bn_act(x, weight, bias, stride, padding, "silu", backend)
    assert out.dtype == dtype
    if layout == "channels_last" and min(case[1], case[4]) > 1:
        assert out.is_contiguous(memory_format=torch.channels_last)
    assert_close_to_ref(out, _reference(x, weight, bias, stride, pads, "silu"), dtype)


@pytest.mark.parametrize("backend", backend_params(("cpu", "eager")))
@pytest.mark.parametrize("activation", CONV_ACTIVATIONS)
def test_every_activation(activation, backend):
    x, weight, bias = _inputs(CASES[1], torch.float32, "channels_last")
    x = x * 4
    out = conv_bn_act(x, weight, bias, 2, "same", activation, backend)
    assert_close_to_ref(out, _reference(x, weight, bias, 2, CASES[1][-1], activation), torch.float32)


@pytest.mark.skipif(backend_unavailable("cpu") is not None, reason=str(backend_unavailable("cpu")))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
@pytest.mark.parametrize("c_in", [DIRECT_MAX_TAPS // 9 + 1, 19])
def test_cxx_kernel_many_input_channels(c_in, layout, dtype):
    """The C++ kernel itself on C_in * k * k past DIRECT_MAX_TAPS (the wrapper gives those to ATen): correct there
    too, with 2 threads sharing 3 images x 2 pieces of output rows (11 rows: a full piece and a short one)."""
    case = (3, c_in, 21, 14, 21, 3, 2, 1)
    assert c_in * 9 > DIRECT_MAX_TAPS
    x, weight, bias = _inputs(case, dtype, layout)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = ops.conv_bn_act(x, weight, bias, [2, 2], 1, 1, 11, 7, ACTIVATIONS["silu"])
    finally:
        torch.set_num_threads(threads)
    assert_close_to_ref(out, _reference(x, weight, bias, 2, (1, 1, 1, 1), "silu"), dtype)


@pytest.mark.skipif(backend_unavailable("cpu") is not None, reason=str(backend_unavailable("cpu")))
def test_cpu_backend_runs_the_kernel_for_stems_only(monkeypatch):
    """The cpu backend sends C_in * kh * kw <= DIRECT_MAX_TAPS to the C++ kernel (an EfficientNet stem: 27) and
    larger convs to ATen."""
    calls = []
    real = torch.ops.effkernels.conv_bn_act
    monkeypatch.setattr(torch.ops.effkernels, "conv_bn_act", lambda *a: calls.append(a[0].shape[1]) or real(*a))
    small = DIRECT_MAX_TAPS // 9
    for c_in in (3, small, small + 1):
        x, weight, bias = _inputs((1, c_in, 12, 12, 16, 3, 2, 1), torch.float32, "channels_last")
        out = conv_bn_act(x, weight, bias, 2, 1, "silu", "cpu")
        assert_close_to_ref(out, _reference(x, weight, bias, 2, (1, 1, 1, 1), "silu"), torch.float32)
    assert calls == [3, small]


@pytest.mark.skipif(backend_unavailable("cpu") is not None, reason=str(backend_unavailable("cpu")))
def test_cxx_errors_name_the_argument():
    x, w, b = torch.randn(1, 3, 8, 8), torch.randn(16, 3, 3, 3), torch.randn(16)
    silu = ACTIVATIONS["silu"]
    with pytest.raises(RuntimeError, match="x: expected a 4-d tensor"):
        ops.conv_bn_act(x[0], w, b, [1, 1], 1, 1, 8, 8, silu)
    with pytest.raises(RuntimeError, match=r"weight: expected shape \[C_out, 3, kh, kw\]"):
        ops.conv_bn_act(x, w[:, :2], b, [1, 1], 1, 1, 8, 8, silu)
    with pytest.raises(RuntimeError, match="weight: expected x's dtype"):
        ops.conv_bn_act(x, w.half(), b, [1, 1], 1, 1, 8, 8, silu)
    with pytest.raises(RuntimeError, match="bias: expected shape"):
        ops.conv_bn_act(x, w, b[:3], [1, 1], 1, 1, 8, 8, silu)
    with pytest.raises(RuntimeError, match="stride: expected two positive strides"):
        ops.conv_bn_act(x, w, b, [0, 1], 1, 1, 8, 8, silu)
    with pytest.raises(RuntimeError, match="padding: expected non-negative"):
        ops.conv_bn_act(x, w, b, [1, 1], -1, 1, 8, 8, silu)
    with pytest.raises(RuntimeError, match="out_h/out_w: expected a positive output size"):
        ops.conv_bn_act(x, w, b, [1, 1], 1, 1, 0, 8, silu)
    with pytest.raises(RuntimeError, match="activation: expected an activation code 0..6"):
        ops.conv_bn_act(x, w, b, [1, 1], 1, 1, 8, 8, 9)


def test_python_errors_name_the_argument():
    x, w, b = torch.randn(1, 3, 8, 8), torch.randn(16, 3, 3, 3), torch.randn(16)
    with pytest.raises(ValueError, match="x: expected a 4-d tensor"):
        conv_bn_act(x[0], w, b)
    with pytest.raises(ValueError, match=r"weight: expected shape \(C_out, 3, kh, kw\)"):
        conv_bn_act(x, w[:, :2], b)
    with pytest.raises(ValueError, match="bias: expected shape"):
        conv_bn_act(x, w, b[:3])
    with pytest.raises(ValueError, match="stride: expected positive strides"):
        conv_bn_act(x, w, b, (0, 1))
    with pytest.raises(ValueError, match="stride: expected an int or a pair"):
        conv_bn_act(x, w, b, 1.5)
    with pytest.raises(ValueError, match="padding: expected non-negative"):
        conv_bn_act(x, w, b, 1, (1, -1, 0, 0))
    with pytest.raises(ValueError, match="padding: expected an int or a pair"):
        conv_bn_act(x, w, b, 1, "full")
    with pytest.raises(ValueError, match="activation: expected one of"):
        conv_bn_act(x, w, b, 1, 1, "sigmoid")
    with pytest.raises(ValueError, match="x: a 2x2 input padded by"):
        conv_bn_act(x[:, :, :2, :2], w, b, 1, 0)
