"""Every op's test cases, declared once, and the samples built from them.

A case is a tuple of shapes and options. For the depthwise conv it carries the explicit
(top, bottom, left, right) pads the oracle applies, written here by hand: effkernels' own padding
helper is never consulted, so an off-by-one there shows as a wrong output. `<op>_sample(case,
device, dtype, layout)` turns a case into the public op's arguments and the float64 oracle's
answer (tests/oracles.py); `check_<op>` compares an output with it. The correctness tests run every
case on every backend, test_registration.py opchecks the lowered ops on `lowered_samples(device)`
(built from the first cases of each table), test_fuzz.py draws random cases of the same form.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

import torch

import oracles
from effkernels._common import ACTIVATIONS, CONV_ACTIVATIONS
from helpers import TOL, assert_close_to_ref

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Memory layouts of activations: NHWC and NCHW, and non-contiguous views of each (NHWC with padded
# channel and column strides, NCHW with a padded row stride).
LAYOUTS = ("channels_last", "nchw", "cl_view", "nchw_view")
CONV_ACTS = CONV_ACTIVATIONS  # what the conv epilogues take


@dataclass
class Sample:
    """The public op's arguments (backend excluded) and the oracle's float64 answer."""
    name: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    expected: Optional[Callable] = None

    def __repr__(self):
        return self.name


def make_x(shape, dtype, layout, device, offset=0.0):
    """Random [N, C, H, W] activations in `layout` (drawn in fp32 on the CPU, so every device gets the same values)."""
    n, c, h, w = shape
    if layout == "channels_last":
        x = torch.randn(n, c, h, w).contiguous(memory_format=torch.channels_last)
    elif layout == "nchw":
        x = torch.randn(n, c, h, w)
    elif layout == "cl_view":
        x = torch.randn(n, h, w + 2, c + 3)[:, :, 1:w + 1, :c].permute(0, 3, 1, 2)
    elif layout == "nchw_view":
        x = torch.randn(n, c, h, w + 3)[..., :w]
    else:
        raise ValueError(layout)
    return (x + offset).to(device=device, dtype=dtype)


def misaligned_cl(shape, dtype, device):
    """Random dense channels_last [N, C, H, W] activations whose data starts one element past a 16-byte
    boundary: with C a multiple of every vector width, only the address keeps the CUDA kernels off their
    16-byte vector paths."""
    n, c, h, w = shape
    x = torch.empty(n * h * w * c + 1, dtype=dtype, device=device)[1:].view(n, h, w, c).permute(0, 3, 1, 2)
    x.copy_(torch.randn(n, c, h, w))
    assert x.is_contiguous(memory_format=torch.channels_last) and x.data_ptr() % 16 != 0
    return x


def param(*shape, scale=1.0, dtype=torch.float32, device="cpu"):
    return (torch.randn(*shape) * scale).to(device=device, dtype=dtype)


def _memory_format(t):
    """"cl" or "nchw", or None where both describe t (C = 1, or H = W = 1); a non-dense view by which of
    its strides is innermost."""
    cl, nchw = t.is_contiguous(memory_format=torch.channels_last), t.is_contiguous()
    if cl and nchw:
        return None
    if cl or nchw:
        return "cl" if cl else "nchw"
    return "cl" if t.shape[1] > 1 and t.stride(1) == 1 else "nchw"


def expect_layout(out, x):
    """The op's output is dense and keeps x's memory format, NHWC or NCHW, where both have one (an
    empty output has no memory format to keep: its strides are never read)."""
    if out.numel() == 0:
        return
    assert out.is_contiguous() or out.is_contiguous(memory_format=torch.channels_last), \
        f"output strides {out.stride()} are not dense"
    want, got = _memory_format(x), _memory_format(out)
    assert want is None or got is None or want == got, f"output memory format {got}, x's {want}"


def rotate(options, *indices):
    """A deterministic pick that varies with every index: case i, dtype j, ... see different options."""
    return options[sum(indices) % len(options)]


# ---------------------------------------------------------------- dwconv_bn_act


class DW(NamedTuple):
    n: int
    c: int
    h: int
    w: int
    k: int
    stride: int
    padding: object  # what the op is given: None, an int, a pair, "valid", "same" or (top, bottom, left, right)
    pads: tuple      # what the oracle applies, written by hand (TF "same": the odd pad at the bottom/right)


DW_CASES = [
    DW(1, 37, 7, 7, 3, 1, None, (1, 1, 1, 1)),
    DW(2, 37, 17, 17, 3, 1, 1, (1, 1, 1, 1)),
    DW(2, 37, 17, 17, 5, 2, 2, (2, 2, 2, 2)),             # stride 2 on an odd size
    DW(3, 37, 17, 17, 5, 2, "same", (2, 2, 2, 2)),        # same, even total pad
    DW(2, 37, 16, 16, 3, 2, "same", (0, 1, 0, 1)),        # same, even size, stride 2: 0 top / 1 bottom
    DW(1, 37, 16, 16, 5, 2, "same", (1, 2, 1, 2)),
    DW(2, 37, 33, 33, 3, 2, "same", (1, 1, 1, 1)),
    DW(1, 37, 33, 33, 3, 2, None, (1, 1, 1, 1)),
    DW(1, 37, 16, 12, 5, 2, None, (2, 2, 2, 2)),
    DW(2, 16, 17, 16, 7, 2, "same", (3, 3, 2, 3)),        # k = 7, odd pad on the right only
    DW(1, 16, 9, 9, 7, 1, (3, 2, 1, 3), (3, 2, 1, 3)),    # explicit asymmetric pads
    DW(2, 37, 9, 10, 5, 1, (2, 1), (2, 2, 1, 1)),         # a pair (height, width), as nn.Conv2d's
    DW(1, 37, 9, 8, 3, 2, "valid", (0, 0, 0, 0)),         # nn.Conv2d's "valid"
    DW(2, 24, 6, 5, 1, 2, 0, (0, 0, 0, 0)),               # k = 1
    DW(2, 32, 9, 9, 1, 2, 0, (0, 0, 0, 0)),
    DW(2, 1155, 3, 3, 3, 1, None, (1, 1, 1, 1)),          # C above every channel block
    DW(1, 1155, 3, 2, 5, 2, "same", (2, 2, 1, 2)),
    DW(1, 1155, 7, 7, 5, 1, "same", (2, 2, 2, 2)),
    DW(1, 1155, 7, 7, 3, 2, 1, (1, 1, 1, 1)),
    DW(2, 1, 9, 9, 3, 1, 1, (1, 1, 1, 1)),                # C = 1
    DW(0, 37, 7, 7, 3, 1, 1, (1, 1, 1, 1)),               # N = 0
    # C a multiple of the CPU vector width: the fp32 k <= 3 kernel reads the input in place, the
    # columns against the padding apart.
    DW(2, 32, 17, 17, 3, 1, 1, (1, 1, 1, 1)),
    DW(2, 48, 17, 13, 5, 2, 2, (2, 2, 2, 2)),
    DW(1, 32, 16, 16, 3, 2, "same", (0, 1, 0, 1)),        # no left pad, one right
    DW(1, 64, 5, 4, 3, 1, 1, (1, 1, 1, 1)),               # two columns clear of the padding
    DW(1, 64, 5, 5, 5, 1, 2, (2, 2, 2, 2)),               # k = 5: one column clear of the padding
    DW(1, 32, 5, 2, 3, 2, "same", (1, 1, 0, 1)),          # W < k: every column touches the padding
    # The CUDA NHWC kernel's splits (csrc/cuda/dwconv_bn_act.cu dw_config; with an H100/H200's SM count):
    # two column strips (128 channels: 32 output columns per strip) and two row chunks (17 rows);
    DW(1, 128, 17, 40, 3, 1, 1, (1, 1, 1, 1)),
    # k = 7 at stride 2, its largest shared-memory ring: strips narrowed to fit the budget, two row chunks.
    DW(1, 64, 45, 45, 7, 2, "same", (3, 3, 3, 3)),
]


def out_size(h, w, k, stride, pads):
    """A k x k conv's output size on an h x w input padded by pads = (top, bottom, left, right)."""
    top, bottom, left, right = pads
    return (h + top + bottom - k) // stride + 1, (w + left + right - k) // stride + 1


def dw_sample(case, device, dtype, layout, activation="silu", se_sums=True):
    x = make_x(case[:4], dtype, layout, device)
    weight = param(case.c, 1, case.k, case.k, scale=1 / case.k, dtype=dtype, device=device)  # outputs O(1) for every k
    bias = param(case.c, scale=0.5, dtype=dtype, device=device)
    return Sample(f"{case} {dtype} {layout} {activation} se_sums={se_sums}", (x, weight, bias),
                  dict(stride=case.stride, padding=case.padding, activation=activation, se_sums=se_sums),
                  lambda: oracles.dwconv(x, weight, bias, case.stride, case.pads, activation))


def check_dwconv_bn_act(got, s):
    x = s.args[0]
    ref = s.expected()
    out, sums = got if s.kwargs["se_sums"] else (got, None)
    assert isinstance(out, torch.Tensor) and out.dtype == x.dtype and out.device == x.device, s
    expect_layout(out, x)
    assert_close_to_ref(out, ref, x.dtype, what=f"out of {s}")
    if sums is not None:
        assert sums.dtype == torch.float32 and sums.shape == tuple(x.shape[:2]), s
        # A backend may sum the outputs rounded to x's dtype: their rounding errors add up over
        # out_h * out_w terms, about sqrt(out_h * out_w) times one element's.
        abs_ = TOL[x.dtype]["abs"] * max(1.0, math.sqrt(ref.shape[2] * ref.shape[3]))
        assert_close_to_ref(sums, ref.sum(dim=(2, 3)), x.dtype, abs_=abs_, what=f"sums of {s}")


# ---------------------------------------------------------------- squeeze-excitation

SE_SHAPES = [(1, 37, 7, 7), (3, 70, 9, 13), (2, 37, 17, 17), (1, 1155, 7, 7), (3, 96, 33, 33), (2, 1, 5, 5),
             (0, 37, 7, 7)]
SE_PAIRS = (("silu", "sigmoid"), ("relu", "hardsigmoid"), ("relu", "sigmoid"), ("silu", "hardsigmoid"))


class Excite(NamedTuple):
    n: int
    c: int
    s: int  # squeeze channels


# C 1155 and S 300 need several channel blocks in both layers and a wide hidden vector.
EXCITE_CASES = [Excite(1, 37, 9), Excite(3, 37, 1), Excite(3, 37, 5), Excite(2, 1155, 300), Excite(1, 1155, 48),
                Excite(2, 8, 1), Excite(0, 37, 5)]


def se_weights(c, s, dtype=torch.float32, device="cpu"):
    return (param(s, c, scale=c ** -0.5, dtype=dtype, device=device), param(s, scale=0.5, dtype=dtype, device=device),
            param(c, s, scale=s ** -0.5, dtype=dtype, device=device), param(c, scale=0.5, dtype=dtype, device=device))


def se_x(shape, dtype, layout, device):
    return make_x(shape, dtype, layout, device, offset=0.3)  # non-zero mean: the sums are not just noise


def channel_sums_sample(shape, device, dtype, layout):
    x = se_x(shape, dtype, layout, device)
    return Sample(f"channel_sums {shape} {dtype} {layout}", (x,), {}, lambda: oracles.channel_sums(x))


def check_channel_sums(got, s):
    x = s.args[0]
    assert got.dtype == torch.float32 and got.shape == tuple(x.shape[:2]) and got.device == x.device, s
    # The inputs' rounding is shared by both sides: the sums compare as fp32 results whatever x's dtype.
    assert_close_to_ref(got, s.expected(), torch.float32, abs_=1e-5 * max(1, x.shape[2] * x.shape[3]),
                        what=f"sums of {s}")


def se_excite_sample(case, device, w_dtype, activation="silu", gate="sigmoid"):
    sums = param(case.n, case.c, scale=49.0, device=device)
    ws = se_weights(case.c, case.s, w_dtype, device)
    return Sample(f"{case} {w_dtype} {activation}/{gate}", (sums, 1 / 49, *ws), dict(activation=activation, gate=gate),
                  lambda: oracles.se_excite(sums, 1 / 49, *ws, activation, gate))


def check_se_excite(got, s):
    assert got.dtype == torch.float32 and got.shape == s.args[0].shape, s
    # Weights are used as given (already rounded); the math is fp32 whatever their dtype.
    assert_close_to_ref(got, s.expected(), torch.float32, what=f"scale of {s}")


def se_scale_sample(shape, device, dtype, layout):
    x = se_x(shape, dtype, layout, device)
    scale = (torch.rand(shape[:2]) * 2).to(device)
    return Sample(f"se_scale {shape} {dtype} {layout}", (x, scale), {}, lambda: oracles.se_scale(x, scale))


def squeeze_excite_sample(shape, device, dtype, layout, activation="silu", gate="sigmoid", s=9):
    x = se_x(shape, dtype, layout, device)
    ws = se_weights(shape[1], s, dtype, device)
    return Sample(f"squeeze_excite {shape} s={s} {dtype} {layout} {activation}/{gate}", (x, *ws),
                  dict(activation=activation, gate=gate), lambda: oracles.squeeze_excite(x, *ws, activation, gate))


def check_same_shape(got, s):
    """se_scale / squeeze_excite: x's shape, dtype and memory format."""
    x = s.args[0]
    assert got.dtype == x.dtype and got.shape == x.shape and got.device == x.device, s
    expect_layout(got, x)
    assert_close_to_ref(got, s.expected(), x.dtype, what=f"output of {s}")


# ---------------------------------------------------------------- pointwise_conv


class PW(NamedTuple):
    n: int
    c_in: int
    c_out: int
    h: int
    w: int


PW_CASES = [
    PW(1, 37, 70, 7, 7),      # C_in two K blocks, C_out two N blocks; M tiles straddle images
    PW(3, 37, 70, 7, 7),
    PW(2, 37, 20, 9, 9),
    PW(2, 16, 96, 17, 17),    # expand-like
    PW(1, 1155, 96, 7, 7),    # HW < C_out: CUDA rescales x instead of folding the scale
    PW(3, 96, 24, 33, 17),    # several row chunks per sample on the CPU
    PW(0, 37, 20, 7, 7),
]
# (scale, residual) combinations: the SE-scale prologue and the residual epilogue.
PW_EXTRAS = ((False, False), (True, False), (False, True), (True, True))


def pw_sample(case, device, dtype, layout, activation="silu", with_scale=False, with_res=False):
    x = make_x((case.n, case.c_in, case.h, case.w), dtype, layout, device)
    weight = param(case.c_out, case.c_in, scale=case.c_in ** -0.5, dtype=dtype, device=device)
    bias = param(case.c_out, dtype=dtype, device=device)
    scale = (torch.rand(case.n, case.c_in) * 2).to(device) if with_scale else None
    # The residual in the other memory format than x's: the kernels must use its strides.
    res_layout = "nchw" if layout in ("channels_last", "cl_view") else "channels_last"
    res = make_x((case.n, case.c_out, case.h, case.w), dtype, res_layout, device) if with_res else None
    return Sample(f"{case} {dtype} {layout} {activation} scale={with_scale} residual={with_res}",
                  (x, weight, bias, activation, scale, res), {},
                  lambda: oracles.pointwise_conv(x, weight, bias, activation, scale, res))


def check_pointwise_conv(got, s):
    x, weight = s.args[:2]
    assert got.dtype == x.dtype and got.shape == (x.shape[0], weight.shape[0], *x.shape[2:]), s
    expect_layout(got, x)
    assert_close_to_ref(got, s.expected(), x.dtype, what=f"output of {s}")


# ---------------------------------------------------------------- mbconv


class MB(NamedTuple):
    expand: int
    k: int
    stride: int
    c_in: int
    c_out: int
    n: int
    h: int
    w: int
    padding: object
    pads: tuple  # the oracle's, by hand
    se: bool


MB_CASES = [
    MB(1, 3, 1, 16, 16, 2, 9, 11, 1, (1, 1, 1, 1), True),   # residual, no expand
    MB(1, 5, 2, 16, 24, 2, 9, 11, 2, (2, 2, 2, 2), True),
    MB(1, 3, 1, 32, 16, 2, 17, 17, 1, (1, 1, 1, 1), True),               # stage 1: no expand
    MB(6, 3, 1, 8, 8, 2, 9, 11, None, (1, 1, 1, 1), True),               # residual; None: (k - 1) // 2
    MB(6, 5, 1, 8, 16, 2, 7, 9, 2, (2, 2, 2, 2), True),
    MB(6, 3, 2, 8, 16, 2, 10, 12, 1, (1, 1, 1, 1), True),
    MB(6, 5, 2, 8, 8, 2, 9, 11, 2, (2, 2, 2, 2), True),
    MB(6, 3, 2, 16, 24, 2, 17, 17, 1, (1, 1, 1, 1), True),              # stride 2, odd size
    MB(6, 5, 2, 24, 40, 1, 16, 16, 2, (2, 2, 2, 2), True),
    MB(6, 5, 2, 24, 40, 1, 16, 16, "same", (1, 2, 1, 2), True),         # TF same, asymmetric
    MB(6, 5, 1, 40, 40, 2, 9, 9, None, (2, 2, 2, 2), True),              # residual, k 5
    MB(6, 5, 2, 8, 16, 2, 10, 10, "same", (1, 2, 1, 2), False),         # no SE
    MB(6, 5, 2, 24, 40, 2, 16, 16, "same", (1, 2, 1, 2), False),
    MB(6, 3, 1, 40, 40, 0, 7, 7, 1, (1, 1, 1, 1), True),                 # N = 0
    MB(6, 3, 2, 24, 112, 2, 9, 9, 1, (1, 1, 1, 1), True),               # out 5x5 < C_out: CUDA scales in a pass
]
# (block activation, SE activation, SE gate): the SE activation always differs from the block's, so a
# kernel that applies one in place of the other is wrong.
MB_ACTS = (("silu", "relu", "sigmoid"), ("relu6", "silu", "hardsigmoid"), ("hardswish", "relu", "sigmoid"),
           ("relu", "silu", "hardsigmoid"), ("none", "silu", "sigmoid"))


def mb_params(case, dtype, device):
    """mbconv's parameters for a case: 1x1 weights as matrices, BN folded (random, O(1) outputs)."""
    c_exp = case.c_in * case.expand
    p = lambda *shape, scale=1.0: param(*shape, scale=scale, dtype=dtype, device=device)  # noqa: E731
    expand_w = p(c_exp, case.c_in, scale=case.c_in ** -0.5) if case.expand != 1 else None
    expand_b = p(c_exp, scale=0.5) if case.expand != 1 else None
    dw_w, dw_b = p(c_exp, 1, case.k, case.k, scale=1 / case.k), p(c_exp, scale=0.5)
    s = max(1, case.c_in // 4)
    se = (p(s, c_exp, scale=c_exp ** -0.5), p(s, scale=0.5), p(c_exp, s, scale=s ** -0.5), p(c_exp, scale=0.5)) \
        if case.se else (None,) * 4
    proj_w, proj_b = p(case.c_out, c_exp, scale=c_exp ** -0.5), p(case.c_out, scale=0.5)
    residual = case.stride == 1 and case.c_in == case.c_out
    return (expand_w, expand_b, dw_w, dw_b, case.stride, case.padding, *se, proj_w, proj_b, residual)


def mb_sample(case, device, dtype, layout, acts=MB_ACTS[0]):
    x = make_x((case.n, case.c_in, case.h, case.w), dtype, layout, device)
    params = mb_params(case, dtype, device)
    activation, se_activation, se_gate = acts
    oracle_params = params[:5] + (case.pads,) + params[6:]
    return Sample(f"{case} {dtype} {layout} {acts}", (x, *params),
                  dict(activation=activation, se_activation=se_activation, se_gate=se_gate),
                  lambda: oracles.mbconv(x, *oracle_params, activation, se_activation, se_gate))


def check_mbconv(got, s):
    x, proj_w = s.args[0], s.args[12]
    ref = s.expected()
    assert got.dtype == x.dtype and got.shape == (x.shape[0], proj_w.shape[0], *ref.shape[2:]), s
    expect_layout(got, x)
    assert_close_to_ref(got, ref, x.dtype, what=f"output of {s}")


# ---------------------------------------------------------------- the lowered ops (opcheck)


def lowered_samples(device):
    """{op name: [argument tuples]} for the ops of both namespaces, effkernels (C++) and
    effkernels_triton (Python custom ops): the same schemas, so the same samples, built from the
    first cases above with the geometry from their explicit pads."""
    act = ACTIVATIONS
    out = {}
    dws = []
    for case, layout, se_sums in ((DW_CASES[4], "channels_last", True), (DW_CASES[2], "nchw", False)):
        x, w, b = dw_sample(case, device, torch.float32, layout).args
        geom = (case.stride, case.pads[0], case.pads[2], *out_size(case.h, case.w, case.k, case.stride, case.pads))
        dws.append((x, w, b, *geom, act["silu"], se_sums))
    out["dwconv_bn_act"] = dws
    xs = [se_x(SE_SHAPES[0], torch.float32, layout, device) for layout in ("channels_last", "nchw")]
    out["channel_sums"] = [(x,) for x in xs]
    out["se_scale"] = [(x, (torch.rand(x.shape[:2]) + 0.5).to(device)) for x in xs]
    out["se_excite"] = [se_excite_sample(case, device, torch.float32).args + (act[a], act[g])
                        for case, (a, g) in ((EXCITE_CASES[0], SE_PAIRS[0]), (EXCITE_CASES[2], SE_PAIRS[1]))]
    out["squeeze_excite"] = [(x, *se_weights(x.shape[1], s, torch.float32, device), act[a], act[g])
                             for x, s, (a, g) in zip(xs, (5, 3), SE_PAIRS)]
    pws = (pw_sample(PW_CASES[0], device, torch.float32, "channels_last", "silu", True, True),
           pw_sample(PW_CASES[2], device, torch.float32, "nchw", "none"))
    out["pointwise_conv"] = [s.args[:3] + (act[s.args[3]],) + s.args[4:] for s in pws]
    mbs, dw_ses, expands = [], [], []
    for case, layout, (a, sa, g) in ((MB_CASES[3], "channels_last", MB_ACTS[0]), (MB_CASES[9], "nchw", MB_ACTS[1])):
        x, *params = mb_sample(case, device, torch.float32, layout).args
        ew, eb, dw_w, dw_b, stride, _, w1, b1, w2, b2, pw_, pb, residual = params
        geom = (stride, case.pads[0], case.pads[2], *out_size(case.h, case.w, case.k, stride, case.pads))
        mbs.append((x, ew, eb, dw_w, dw_b, *geom, w1, b1, w2, b2, pw_, pb, residual, act[a], act[sa], act[g]))
        h = make_x((case.n, dw_w.shape[0], case.h, case.w), torch.float32, layout, device)
        # channels_last: h is a library expand's pre-activation; with the library project (both ops),
        # W' = W_proj * s[n] and y initialised
        pre = ((None, act[a], None, None, None) if layout == "nchw" else
               (torch.randn(dw_w.shape[0], device=device), act[a], pw_, pb, None))
        dw_ses.append((h, dw_w, dw_b, *geom, act[a], *pre[:2], w1, b1, w2, b2, act[sa], act[g], *pre[2:]))
        if ew is not None:
            lib = pre[2:] if pre[2] is None else (pw_, pb, x if residual else None)
            expands.append((x, ew, eb, dw_w, dw_b, *geom, act[a], w1, b1, w2, b2, act[sa], act[g], *lib))
    out["mbconv"] = mbs
    if torch.device(device).type == "cpu" and hasattr(torch.ops.effkernels, "pack_pointwise_weight"):  # cpu backend
        pack = torch.ops.effkernels.pack_pointwise_weight
        # bf16: AMX panels where the CPU has AMX (the fake must give their shape), else fp32 ones
        out["pack_pointwise_weight"] = [(pws[0].args[1],), (pws[0].args[1].bfloat16(),)]
        x, w, b, _, scale, res = pws[0].args
        out["pointwise_conv_packed"] = [(x, pack(w), b, act["silu"], scale, res),
                                        (x.bfloat16(), pack(w.bfloat16()), b.bfloat16(), act["silu"], scale,
                                         res.bfloat16())]
        out["mbconv_packed"] = [(m[0], pack(m[1]), *m[2:14], pack(m[14]), *m[15:], path)
                                for m, path in zip(mbs, ("fused", "unfused")) if m[1] is not None]
        out["activation_"] = [(make_x((2, 19, 5, 7), dtype, layout, device), act[a])
                              for dtype, layout, a in ((torch.float32, "channels_last", "silu"),
                                                       (torch.bfloat16, "nchw", "hardswish"))]
        out["conv_bn_act"] = [(make_x((2, 3, 9, 11), dtype, layout, device), torch.randn(19, 3, 3, 3).to(dtype),
                               torch.randn(19).to(dtype), [2, 2], 1, 1, 5, 6, act["silu"])
                              for dtype, layout in ((torch.float32, "channels_last"), (torch.float16, "nchw"))]
    out["mbconv_dw_se"] = dw_ses
    out["mbconv_expand_dw_se"] = expands
    return out
