"""dwconv_bn_act on every backend against the float64 oracle (tests/oracles.py: the cases'
hand-written pads applied with F.pad, torch's own conv), the C++ op's extras, and the argument checks.

The Triton tests run on the GPU when there is one, else on the CPU under the interpreter
(tests/conftest.py), so shapes stay small. Backends that cannot run here skip with the reason.
"""
import pytest
import torch

from effkernels import _ext
from effkernels._common import ACTIVATIONS, tap_major
from effkernels.ops import dwconv_bn_act
from helpers import assert_close_to_ref, backend_device, backend_params, cxx_error_inputs, matrix, raised_in_child
from op_cases import (CONV_ACTS, DTYPES, DW, DW_CASES, LAYOUTS, Sample, check_dwconv_bn_act, dw_sample, make_x,
                      misaligned_cl, param, rotate)
import oracles

pytestmark = pytest.mark.usefixtures("poisoned")

BACKENDS = backend_params()
CXX = backend_params(("cpu", "cuda"))  # the C++ op itself, torch.ops.effkernels.dwconv_bn_act


@pytest.mark.parametrize("i,dtype,layout,backend", matrix([str(tuple(c[:7])) for c in DW_CASES], DTYPES, LAYOUTS))
def test_matches_oracle(i, dtype, layout, backend):
    """Every case, dtype and layout; the activation and se_sums rotate with the case and dtype."""
    j = DTYPES.index(dtype)
    s = dw_sample(DW_CASES[i], backend_device(backend), dtype, layout, rotate(CONV_ACTS, i, j), se_sums=(i + j) % 2 == 0)
    check_dwconv_bn_act(dwconv_bn_act(*s.args, **s.kwargs, backend=backend), s)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
@pytest.mark.parametrize("activation", CONV_ACTS)
@pytest.mark.parametrize("se_sums", [False, True])
def test_every_activation(activation, layout, se_sums, backend):
    s = dw_sample(DW(2, 19, 9, 9, 3, 1, None, (1, 1, 1, 1)), backend_device(backend), torch.float32, layout, activation,
                  se_sums)
    s.args[0].mul_(4)  # the oracle sees the same tensor: reach both saturation points of relu6 / hardswish
    check_dwconv_bn_act(dwconv_bn_act(*s.args, **s.kwargs, backend=backend), s)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_views(backend):
    """Strided views of x, weight and bias: every backend must use the strides it is given."""
    device = backend_device(backend)
    big = torch.randn(3, 80, 20, 21).to(device)
    weight = (torch.randn(80, 2, 5, 5) / 5).to(device)[1:38, 1:]
    bias = torch.randn(160).to(device)[::4][:37]
    # TF same, k 5, stride 2: a total pad of 3 on even sizes (1 before, 2 after), 4 on odd ones.
    views = {
        "nhwc slice": (big.contiguous(memory_format=torch.channels_last)[:, 3:40, 1:18, 2::2], (2, 2, 1, 2)),
        "nchw strided w": (big[::2, 5:42, :, ::2], (1, 2, 2, 2)),
        "transposed hw": (big[:, 10:47].transpose(2, 3), (2, 2, 1, 2)),
        "permuted n": (big[:, :37].permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3), (1, 2, 2, 2)),
    }
    for name, (x, pads) in views.items():
        assert not x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last), name
        out, sums = dwconv_bn_act(x, weight, bias, 2, "same", "silu", True, backend=backend)
        ref = oracles.dwconv(x, weight, bias, 2, pads, "silu")
        assert_close_to_ref(out, ref, torch.float32, what=name)
        assert_close_to_ref(sums, ref.sum((2, 3)), torch.float32, abs_=1e-3, what=f"{name} sums")


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.values[0] in ("triton", "cuda")])
def test_large_shapes(backend):
    """EfficientNet-sized layers, every activation: on a GPU only (the interpreter would take minutes)."""
    if backend_device(backend).type != "cuda":
        pytest.skip("large shapes run on a GPU only (the Triton interpreter would take minutes)")
    for case in (DW(4, 96, 56, 56, 3, 2, "same", (0, 1, 0, 1)), DW(2, 1152, 7, 7, 5, 1, None, (2, 2, 2, 2))):
        for dtype in DTYPES:
            for layout in ("channels_last", "nchw"):
                for act in CONV_ACTS:
                    s = dw_sample(case, "cuda", dtype, layout, act, True)
                    check_dwconv_bn_act(dwconv_bn_act(*s.args, **s.kwargs, backend=backend), s)


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.values[0] != "eager"])
def test_grad_requires_eager(backend):
    x, weight, bias = dw_sample(DW_CASES[0], backend_device(backend), torch.float32, "channels_last").args
    weight.requires_grad_(True)
    with pytest.raises(RuntimeError, match="backend=.eager."):
        dwconv_bn_act(x, weight, bias, backend=backend)
    dwconv_bn_act(x, weight, bias, backend="eager").sum().backward()
    assert weight.grad is not None
    with torch.no_grad():
        dwconv_bn_act(x, weight, bias, backend=backend)


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.values[0] == "triton"])
def test_torch_compile_traces_the_triton_op(backend):
    x, weight, bias = dw_sample(DW(2, 8, 9, 9, 3, 2, "same", (1, 1, 1, 1)), backend_device(backend), torch.float32,
                                "channels_last").args

    def f(x, weight, bias):
        out, sums = dwconv_bn_act(x, weight, bias, 2, "same", "silu", True, backend="triton")
        return out * 2, sums

    got = torch.compile(f, backend="aot_eager", fullgraph=True)(x, weight, bias)
    want = f(x, weight, bias)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


# ---------------------------------------------------------------- the C++ op's extras


@pytest.mark.parametrize("device", CXX)
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
@pytest.mark.parametrize("act", ["sigmoid", "hardsigmoid"])
def test_cxx_gate_activations(act, layout, device):
    """The C++ kernels take every activation code, the SE gates too (the public op only the conv ones)."""
    x = make_x((2, 24, 9, 9), torch.float32, layout, device)
    wt, b = param(24, 1, 3, 3, device=device), param(24, device=device)
    out, sums = torch.ops.effkernels.dwconv_bn_act(x, wt, b, 1, 1, 1, 9, 9, ACTIVATIONS[act], False)
    assert sums.numel() == 0
    assert_close_to_ref(out, oracles.dwconv(x, wt, b, 1, (1, 1, 1, 1), act), torch.float32)


@pytest.mark.parametrize("device", CXX)
def test_cxx_fp32_params_with_bf16_input(device):
    x = make_x((2, 40, 11, 11), torch.bfloat16, "channels_last", device)
    wt, b = param(40, 1, 5, 5, scale=0.2, device=device), param(40, device=device)
    out, _ = torch.ops.effkernels.dwconv_bn_act(x, wt, b, 2, 2, 2, 6, 6, ACTIVATIONS["silu"], False)
    assert out.dtype == torch.bfloat16
    assert_close_to_ref(out, oracles.dwconv(x, wt, b, 2, (2, 2, 2, 2), "silu"), torch.bfloat16)


@pytest.mark.parametrize("device", CXX)
def test_cxx_error_messages(device, request):
    if (inputs := cxx_error_inputs(device, request)) is None:
        return
    ops, x = inputs
    w, b = torch.randn(8, 1, 3, 3, device=device), torch.randn(8, device=device)
    silu = ACTIVATIONS["silu"]
    with pytest.raises(RuntimeError, match=r"x: expected a 4-d tensor"):
        ops.dwconv_bn_act(x[0], w, b, 1, 1, 1, 9, 9, silu, False)
    with pytest.raises(RuntimeError, match=r"weight: expected shape \[8, 1, k, k\]"):
        ops.dwconv_bn_act(x, w[:4], b, 1, 1, 1, 9, 9, silu, False)
    with pytest.raises(RuntimeError, match=r"weight: expected an odd kernel size"):
        ops.dwconv_bn_act(x, torch.randn(8, 1, 4, 4, device=device), b, 1, 1, 1, 9, 9, silu, False)
    with pytest.raises(RuntimeError, match=r"bias: expected shape \[8\]"):
        ops.dwconv_bn_act(x, w, b[:3], 1, 1, 1, 9, 9, silu, False)
    with pytest.raises(RuntimeError, match=r"stride: expected 1 or 2, got 3"):
        ops.dwconv_bn_act(x, w, b, 3, 1, 1, 3, 3, silu, False)
    with pytest.raises(RuntimeError, match=r"x: expected dtype float32, float16 or bfloat16, got Double"):
        ops.dwconv_bn_act(x.double(), w, b, 1, 1, 1, 9, 9, silu, False)
    with pytest.raises(RuntimeError, match=r"activation: expected an activation code"):
        ops.dwconv_bn_act(x, w, b, 1, 1, 1, 9, 9, 9, False)
    with pytest.raises(RuntimeError, match=r"out_h/out_w: expected a positive output size"):
        ops.dwconv_bn_act(x, w, b, 1, 1, 1, 0, 9, silu, False)


# The layers pass the depthwise weight tap-major on "triton", "cuda" and "cpu" (nn/_base.py _prepare): the
# kernels read it through its strides. Cases: C off the vector width, the CUDA kernel's strips and row
# chunks, k = 7 at stride 2, C above every channel slice, k = 1.
TAP_MAJOR_CASES = [0, 2, 9, 11, 15, 25, 26]


@pytest.mark.parametrize("i,dtype,layout,backend",
                         matrix([str(tuple(DW_CASES[i][:7])) for i in TAP_MAJOR_CASES], DTYPES, ("channels_last",),
                                backends=("cpu", "cuda", "eager")))
def test_tap_major_weight(i, dtype, layout, backend):
    case = DW_CASES[TAP_MAJOR_CASES[i]]
    s = dw_sample(case, backend_device(backend), dtype, layout, rotate(CONV_ACTS, i), se_sums=True)
    x, weight, bias = s.args
    packed = tap_major(weight)
    assert packed.stride(0) == 1 and torch.equal(packed, weight)
    check_dwconv_bn_act(dwconv_bn_act(x, packed, bias, **s.kwargs, backend=backend), s)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_misaligned_input(dtype, backend):
    """A dense channels_last input off 16-byte alignment (C = 64, a multiple of every vector width)."""
    device = backend_device(backend)
    x = misaligned_cl((2, 64, 11, 13), dtype, device)
    weight, bias = param(64, 1, 3, 3, scale=1 / 3, dtype=dtype, device=device), param(64, dtype=dtype, device=device)
    s = Sample(f"misaligned {dtype}", (x, weight, bias), dict(stride=2, padding=1, activation="silu", se_sums=True),
               lambda: oracles.dwconv(x, weight, bias, 2, (1, 1, 1, 1), "silu"))
    check_dwconv_bn_act(dwconv_bn_act(*s.args, **s.kwargs, backend=backend), s)


@pytest.mark.parametrize("device", CXX)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("act", ["silu", "sigmoid"])
def test_cxx_activation_extremes(act, dtype, device):
    """The kernels' SiLU and sigmoid at large |x|, +-inf and NaN (a 1x1 identity depthwise conv, out = act(x)):
    the same NaNs and infinities as the float64 oracle, the dtype's tolerance elsewhere. On CUDA fp32 outputs
    use ex2.approx + rcp.approx, fp16/bf16 ones a single tanh.approx (csrc/cuda/device.cuh)."""
    big = 6e4 if dtype == torch.float16 else 1e30
    vals = [-float("inf"), -big, -1e3, -100.0, -20.0, -8.0, -3.0, -1.0, -0.1, 0.0, 0.1, 1.0, 3.0, 8.0, 20.0, 100.0,
            1e3, big, float("inf"), float("nan")]
    c = 8
    x = torch.tensor(vals).repeat(c, 1).T.reshape(1, 1, len(vals), c).permute(0, 3, 1, 2)  # [1, C, 1, W] NHWC
    x = x.to(device, dtype).contiguous(memory_format=torch.channels_last)
    wt, b = torch.ones(c, 1, 1, 1, device=device, dtype=dtype), torch.zeros(c, device=device, dtype=dtype)
    out, _ = torch.ops.effkernels.dwconv_bn_act(x, wt, b, 1, 0, 0, 1, len(vals), ACTIVATIONS[act], False)
    o, r = out.double().cpu(), oracles.dwconv(x, wt, b, 1, (0, 0, 0, 0), act).cpu()
    assert torch.equal(o.isnan(), r.isnan()), f"NaNs differ: {o[0, 0]} vs {r[0, 0]}"
    inf = r.isinf()
    assert torch.equal(o[inf], r[inf]), f"infinities differ: {o[0, 0]} vs {r[0, 0]}"
    fin = r.isfinite()
    assert_close_to_ref(o[fin], r[fin], dtype)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA GPU")
@pytest.mark.skipif(not _ext.built_with_cuda(), reason="effkernels._C was built without CUDA kernels")
def test_cxx_error_device_mismatch(request):
    if raised_in_child(request):
        return
    x = torch.randn(2, 8, 9, 9, device="cuda")
    with pytest.raises(RuntimeError, match=r"weight: expected a tensor on cuda"):
        torch.ops.effkernels.dwconv_bn_act(x, torch.randn(8, 1, 3, 3), torch.randn(8, device="cuda"), 1, 1, 1, 9, 9,
                                           3, False)


# ---------------------------------------------------------------- argument checks (public op)


def _bad(**kw):
    x, weight, bias = dw_sample(DW(1, 8, 7, 7, 3, 1, 1, (1, 1, 1, 1)), "cpu", torch.float32, "channels_last").args
    args = dict(x=x, weight=weight, bias=bias)
    args.update(kw)
    return args


@pytest.mark.parametrize("kwargs,argname", [
    (dict(x=torch.randn(8, 7, 7)), "x"),
    (dict(x=torch.randn(1, 8, 7, 7, dtype=torch.float64)), "x"),
    (dict(x=torch.randint(0, 5, (1, 8, 7, 7))), "x"),
    (dict(x=[[1.0]]), "x"),
    (dict(weight=torch.randn(8, 1, 4, 4)), "weight"),   # even k
    (dict(weight=torch.randn(8, 1, 9, 9)), "weight"),   # k > 7
    (dict(weight=torch.randn(8, 1, 3, 5)), "weight"),   # not square
    (dict(weight=torch.randn(7, 1, 3, 3)), "weight"),   # C mismatch
    (dict(weight=torch.randn(8, 2, 3, 3)), "weight"),   # not depthwise
    (dict(weight=torch.randn(8, 1, 3, 3, dtype=torch.float16)), "weight"),
    (dict(bias=torch.randn(7)), "bias"),
    (dict(bias=torch.randn(8, dtype=torch.float16)), "bias"),
    (dict(stride=3), "stride"),
    (dict(stride=True), "stride"),
    (dict(padding="full"), "padding"),
    (dict(padding=-1), "padding"),
    (dict(padding=(1, 1, 1)), "padding"),
    (dict(padding=(1.0, 1)), "padding"),
    (dict(activation="gelu"), "activation"),
    (dict(se_sums=1), "se_sums"),
    (dict(backend="tpu"), "backend"),
])
def test_bad_inputs_name_the_argument(kwargs, argname):
    with pytest.raises((ValueError, TypeError), match=f"^{argname}:"):
        dwconv_bn_act(**_bad(**kwargs))


def test_too_small_input_names_x():
    x, weight, bias = dw_sample(DW(1, 8, 2, 2, 5, 1, 0, (0, 0, 0, 0)), "cpu", torch.float32, "nchw").args
    with pytest.raises(ValueError, match="^x:"):
        dwconv_bn_act(x, weight, bias, padding=0)
