"""effkernels.ops.dwconv_bn_act against the float64 reference, on every backend this machine has.

The Triton tests run on the GPU when there is one, else on the CPU under the interpreter
(tests/conftest.py), so shapes stay small.
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import effkernels.triton.dwconv_bn_act as tri
from effkernels import backends
from effkernels._common import CONV_ACTIVATIONS, conv_geometry, is_channels_last
from effkernels.ops import dwconv_bn_act
from effkernels.reference import dwconv_bn_act_ref
from helpers import TOL, assert_close_to_ref, poison_

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
HAS_CUDA = torch.cuda.is_available()
DEVICE = "cuda" if HAS_CUDA else "cpu"  # where backend="triton" runs
HAS_CPU_KERNEL = (backends.backends_available()["cpu"][0]
                  and torch._C._dispatch_has_kernel_for_dispatch_key("effkernels::dwconv_bn_act", "CPU"))


@pytest.fixture(autouse=True)
def _poison_triton_outputs(monkeypatch):
    """The launcher allocates its output and its (never zeroed) SE partial sums: hand it NaN-filled
    memory so unwritten elements show."""
    alloc = tri.empty_like_layout
    monkeypatch.setattr(tri, "empty_like_layout", lambda *a, **kw: poison_(alloc(*a, **kw)))
    alloc_partials = tri._empty_partials
    monkeypatch.setattr(tri, "_empty_partials", lambda *a: poison_(alloc_partials(*a)))


def make_inputs(n, c, h, w, k, dtype, layout="channels_last", device=DEVICE):
    x = torch.randn(n, c, h, w, device=device)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(c, 1, k, k, device=device) / k  # keeps outputs O(1) for every k
    bias = torch.randn(c, device=device) * 0.5
    return x.to(dtype), weight.to(dtype), bias.to(dtype)


def check(x, weight, bias, stride=1, padding=None, activation="silu", se_sums=False, backend="triton"):
    """Run the op and compare out (and sums) with the reference computed in float64."""
    k = weight.shape[-1]
    pad = (k - 1) // 2 if padding is None else padding
    got = dwconv_bn_act(x, weight, bias, stride, padding, activation, se_sums, backend=backend)
    ref = dwconv_bn_act_ref(x.double().cpu(), weight.double().cpu(), bias.double().cpu(), stride, pad, activation,
                            se_sums)
    out, sums = got if se_sums else (got, None)
    ref_out, ref_sums = ref if se_sums else (ref, None)
    assert out.dtype == x.dtype and out.device == x.device
    fmt = torch.channels_last if is_channels_last(x) else torch.contiguous_format
    assert out.is_contiguous(memory_format=fmt), "output does not keep x's memory format"
    assert_close_to_ref(out, ref_out, x.dtype)
    if se_sums:
        assert sums.dtype == torch.float32 and sums.shape == (x.shape[0], x.shape[1])
        # A backend may sum the outputs rounded to x's dtype: their rounding errors add up over
        # out_h * out_w terms, about sqrt(out_h * out_w) times one element's.
        abs_ = TOL[x.dtype]["abs"] * max(1.0, (out.shape[2] * out.shape[3]) ** 0.5)
        assert_close_to_ref(sums, ref_sums, x.dtype, abs_=abs_, what="sums")
    return out


# (N, C, H, W, k, stride, padding): odd and even maps, stride 2 on both, symmetric, "same" and
# explicit pads, C not a multiple of any channel block, and C above the largest block (1155).
SHAPES = [
    (1, 37, 7, 7, 3, 1, None),
    (3, 37, 17, 17, 5, 2, "same"),
    (1, 37, 33, 33, 3, 2, None),
    (2, 37, 16, 16, 3, 2, "same"),  # TF same, even size, stride 2: pads 0 top / 1 bottom
    (1, 37, 16, 12, 5, 2, None),
    (2, 1155, 3, 3, 3, 1, None),
    (1, 1155, 3, 2, 5, 2, "same"),
    (1, 16, 9, 9, 7, 1, (3, 2, 1, 3)),
    (2, 24, 6, 5, 1, 2, 0),
]


@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape_id", range(len(SHAPES)))
def test_triton_matches_reference(shape_id, dtype, layout):
    n, c, h, w, k, stride, padding = SHAPES[shape_id]
    activation = CONV_ACTIVATIONS[(shape_id + DTYPES.index(dtype)) % len(CONV_ACTIVATIONS)]
    x, weight, bias = make_inputs(n, c, h, w, k, dtype, layout)
    check(x, weight, bias, stride, padding, activation, se_sums=shape_id % 2 == 0)


@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
@pytest.mark.parametrize("activation", CONV_ACTIVATIONS)
@pytest.mark.parametrize("se_sums", [False, True])
def test_every_activation(activation, layout, se_sums):
    x, weight, bias = make_inputs(2, 19, 9, 9, 3, torch.float32, layout)
    x = x * 4  # reach both saturation points of relu6 / hardswish
    check(x, weight, bias, 1, None, activation, se_sums)


@pytest.mark.parametrize("kernel,table", [("nhwc", tri.NHWC_CONFIGS), ("nchw", tri.NCHW_CONFIGS)])
def test_every_config(kernel, table):
    """The interpreter runs one big tile unless told otherwise: pin each GPU config on a multi-block shape."""
    layout = "channels_last" if kernel == "nhwc" else "nchw"
    x, weight, bias = make_inputs(2, 70, 11, 9, 3, torch.float16, layout)
    ref, ref_sums = dwconv_bn_act_ref(x.double(), weight.double(), bias.double(), 2, 1, "silu", True)
    for cfg in table:
        out, sums = tri.dwconv_bn_act(x, weight, bias, 2, *conv_geometry(11, 9, 3, 2, 1), 3, True, config=cfg)
        assert_close_to_ref(out, ref, torch.float16, what=f"out with {cfg}")
        assert_close_to_ref(sums, ref_sums, torch.float16, what=f"sums with {cfg}")


@pytest.mark.parametrize("kernel,table", [("nhwc", tri.NHWC_CONFIGS), ("nchw", tri.NCHW_CONFIGS)])
def test_partial_sums_every_config(kernel, table):
    """dwconv_bn_act_partials: fp32 [N, cdiv(OH * OW, BLOCK_P), C], every slot written (the buffer
    comes NaN-filled), rows summing to the reference sums; the same partials the [N, C] launcher
    reduces, so they match it bit for bit."""
    layout = "channels_last" if kernel == "nhwc" else "nchw"
    x, weight, bias = make_inputs(2, 70, 11, 9, 3, torch.float32, layout)
    geom = conv_geometry(11, 9, 3, 2, 1)
    _, ref_sums = dwconv_bn_act_ref(x.double(), weight.double(), bias.double(), 2, 1, "silu", True)
    for config in table:
        cfg = config.kwargs
        out, partials = tri.dwconv_bn_act_partials(x, weight, bias, 2, *geom, 3, True, config=config)
        assert partials.dtype == torch.float32 and partials.shape == (2, -(-30 // cfg["BLOCK_P"]), 70), cfg
        assert torch.isfinite(partials).all(), f"unwritten partial sums with {cfg}"
        assert_close_to_ref(partials.sum(1), ref_sums, torch.float32, what=f"sums with {cfg}")
        out2, sums = tri.dwconv_bn_act(x, weight, bias, 2, *geom, 3, True, config=config)
        torch.testing.assert_close(sums, partials.sum(1), rtol=0, atol=0)
        assert sums.is_contiguous()


def test_non_contiguous_views():
    big = torch.randn(3, 80, 20, 21, device=DEVICE)
    w_big = torch.randn(80, 2, 5, 5, device=DEVICE) / 5
    b_big = torch.randn(160, device=DEVICE)
    weight, bias = w_big[1:38, 1:], b_big[::4][:37]  # strided weight and bias
    views = {
        "nhwc slice": big.contiguous(memory_format=torch.channels_last)[:, 3:40, 1:18, 2::2],
        "nchw strided w": big[::2, 5:42, :, ::2],
        "transposed hw": big[:, 10:47].transpose(2, 3),
        "permuted n": big[:, :37].permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3),
    }
    for name, x in views.items():
        assert not x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last), name
        check(x, weight, bias, 2, "same", "silu", True)
    # the tap-major weight layout the NHWC kernel loads as vectors
    check(views["nhwc slice"], tri.tap_major(weight.contiguous()), bias, 1, None, "hardswish", True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_alignment_hints_only_when_true(dtype):
    """C = 40 (a multiple of 8, not 16) gets VEC / W_VEC alignment hints; views whose pixel or tap
    strides are not multiples must not (the kernel rounds strides down to multiples of the hint)."""
    x, weight, bias = make_inputs(2, 40, 9, 9, 3, dtype)
    check(x, tri.tap_major(weight), bias, 1, None, "silu", True)
    wide, wide_w, _ = make_inputs(2, 84, 9, 9, 3, dtype)  # pixel stride 84, tap strides 3 * 84, 84
    check(wide[:, :40], tri.tap_major(wide_w)[:40], bias, 2, "same", "silu", True)
    check(x, tri.tap_major(wide_w)[:40], bias, 1, None, "relu6", False)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 40), h=st.integers(1, 12), w=st.integers(1, 12),
       k=st.sampled_from([1, 3, 5, 7]), stride=st.sampled_from([1, 2]), same=st.booleans(),
       channels_last=st.booleans(), dtype=st.sampled_from(DTYPES), activation=st.sampled_from(CONV_ACTIVATIONS),
       se_sums=st.booleans())
def test_random_shapes(n, c, h, w, k, stride, same, channels_last, dtype, activation, se_sums):
    padding = "same" if same else (k - 1) // 2
    x, weight, bias = make_inputs(n, c, h, w, k, dtype, "channels_last" if channels_last else "nchw")
    check(x, weight, bias, stride, padding, activation, se_sums)


@pytest.mark.parametrize("backend", ["triton", "eager"])
def test_empty_batch(backend):
    x, weight, bias = make_inputs(0, 8, 5, 5, 3, torch.float32, device=DEVICE if backend == "triton" else "cpu")
    out, sums = dwconv_bn_act(x, weight, bias, 2, se_sums=True, backend=backend)
    assert out.shape == (0, 8, 3, 3) and sums.shape == (0, 8)


def test_se_sums_off_returns_a_tensor():
    x, weight, bias = make_inputs(1, 8, 5, 5, 3, torch.float32)
    assert isinstance(dwconv_bn_act(x, weight, bias, backend="triton"), torch.Tensor)


def test_eager_backend_matches_reference():
    for layout in ("channels_last", "nchw"):
        x, weight, bias = make_inputs(2, 37, 17, 17, 5, torch.float32, layout, device="cpu")
        check(x, weight, bias, 2, "same", "silu", True, backend="eager")


def test_grad_requires_eager():
    x, weight, bias = make_inputs(1, 8, 5, 5, 3, torch.float32)
    weight.requires_grad_(True)
    with pytest.raises(RuntimeError, match="backend=.eager."):
        dwconv_bn_act(x, weight, bias, backend="triton")
    dwconv_bn_act(x, weight, bias, backend="eager").sum().backward()
    assert weight.grad is not None
    with torch.no_grad():
        dwconv_bn_act(x, weight, bias, backend="triton")


def _bad(**kw):
    x, weight, bias = make_inputs(1, 8, 7, 7, 3, torch.float32, device="cpu")
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
    (dict(padding="valid"), "padding"),
    (dict(padding=-1), "padding"),
    (dict(padding=(1, 1)), "padding"),
    (dict(activation="gelu"), "activation"),
    (dict(se_sums=1), "se_sums"),
    (dict(backend="tpu"), "backend"),
])
def test_bad_inputs_name_the_argument(kwargs, argname):
    with pytest.raises((ValueError, TypeError), match=f"^{argname}:"):
        dwconv_bn_act(**_bad(**kwargs))


def test_too_small_input_names_x():
    x, weight, bias = make_inputs(1, 8, 2, 2, 5, torch.float32, device="cpu")
    with pytest.raises(ValueError, match="^x:"):
        dwconv_bn_act(x, weight, bias, padding=0)


def test_opcheck_triton_op():
    x, weight, bias = make_inputs(1, 8, 5, 5, 3, torch.float32)
    for se_sums in (False, True):
        torch.library.opcheck(torch.ops.effkernels_triton.dwconv_bn_act.default,
                              (x, weight, bias, 1, 1, 1, 5, 5, 3, se_sums),
                              test_utils=("test_schema", "test_faketensor"))


def test_torch_compile_traces_the_triton_op():
    x, weight, bias = make_inputs(2, 8, 9, 9, 3, torch.float32)

    def f(x, weight, bias):
        out, sums = dwconv_bn_act(x, weight, bias, 2, "same", "silu", True, backend="triton")
        return out * 2, sums

    got = torch.compile(f, backend="aot_eager", fullgraph=True)(x, weight, bias)
    want = f(x, weight, bias)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


@pytest.mark.skipif(not HAS_CPU_KERNEL, reason="effkernels._C has no CPU kernel for dwconv_bn_act (not built yet)")
def test_opcheck_cpu_op():
    x, weight, bias = make_inputs(1, 8, 5, 5, 3, torch.float32, device="cpu")
    for se_sums in (False, True):
        torch.library.opcheck(torch.ops.effkernels.dwconv_bn_act.default,
                              (x, weight, bias, 2, 1, 1, 3, 3, 3, se_sums),
                              test_utils=("test_schema", "test_faketensor"))


@pytest.mark.skipif(not HAS_CPU_KERNEL, reason="effkernels._C has no CPU kernel for dwconv_bn_act (not built yet)")
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cpu_backend(dtype, layout):
    for n, c, h, w, k, stride, padding in SHAPES[:4] + SHAPES[6:]:
        x, weight, bias = make_inputs(n, c, h, w, k, dtype, layout, device="cpu")
        check(x, weight, bias, stride, padding, "silu", True, backend="cpu")


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("backend", ["triton", "cuda"])
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cuda_backends(backend, dtype, layout):
    if not backends.backends_available()[backend][0]:
        pytest.skip(backends.backends_available()[backend][1])
    for n, c, h, w, k, stride, padding in SHAPES + [(4, 96, 56, 56, 3, 2, "same"), (2, 1152, 7, 7, 5, 1, None)]:
        for activation in CONV_ACTIVATIONS:
            x, weight, bias = make_inputs(n, c, h, w, k, dtype, layout, device="cuda")
            check(x, weight, bias, stride, padding, activation, True, backend=backend)
