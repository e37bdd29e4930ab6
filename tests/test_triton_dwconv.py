"""The Triton depthwise kernels' own machinery, in the interpreter (tests/test_dwconv_bn_act.py covers the op):
the NHWC kernel's row walk on every k / stride / strip height, its expand prologue and project-output
initialisation (the MBConv library-GEMM path), the int32 fast-path rule, and the tile choice."""
import pytest
import torch

from effkernels import backends
from effkernels._common import ACTIVATIONS, CONV_ACTIVATIONS, conv_geometry, tap_major
from effkernels.reference import apply_activation, dwconv_bn_act_ref
from helpers import DEVICE, TOL, assert_close_to_ref

pytestmark = pytest.mark.skipif(not backends.triton_interpreted() and DEVICE.type != "cuda",
                                reason="triton cannot run here")

if backends.backends_available()["triton"][0]:
    import effkernels.triton.dwconv_bn_act as tri

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@pytest.fixture(autouse=True)
def _poison(poisoned):
    """Outputs and partial sums come NaN-filled: an element the kernel does not write shows."""


def _inputs(n, c, h, w, k, dtype, scale=1.0):
    x = (torch.randn(n, c, h, w, device=DEVICE) * scale).contiguous(memory_format=torch.channels_last).to(dtype)
    return x, (torch.randn(c, 1, k, k, device=DEVICE) / k).to(dtype), (torch.randn(c, device=DEVICE) * 0.5).to(dtype)


def _check(out, partials, ref, ref_sums, dtype, what):
    assert_close_to_ref(out, ref, dtype, what=f"out {what}")
    if partials is not None:
        abs_ = TOL[dtype]["abs"] * max(1.0, (out.shape[2] * out.shape[3]) ** 0.5)
        assert_close_to_ref(partials.sum(1), ref_sums, dtype, abs_=abs_, what=f"sums {what}")


@pytest.mark.parametrize("k", [1, 3, 5, 7])
@pytest.mark.parametrize("stride", [1, 2])
def test_walk_every_kernel_size(k, stride):
    """Every k and stride, on the first and last tile the key allows (k 7: the last), with strip heights that split the map
    unevenly (3) and into single or double rows: the open output rows must rotate right across strips and
    map edges. C = 37 (no vector width) and 40 (8-element vectors only), TF-same padding on an odd map."""
    dtype = torch.bfloat16 if k % 4 == 3 else torch.float32
    # The interpreter's cost grows with k^2 (unrolled taps): fewer cases and a smaller map for k 5 and 7.
    cases = {1: ((40, -1, 1),), 3: ((37, 0, 3), (40, -1, 1)), 5: ((37, 0, 3), (40, -1, 2)), 7: ((37, -1, 2),)}[k]
    hh, ww = (11, 13) if k < 5 else (9, 8)
    for c, tile, bh in cases:
        x, w, b = _inputs(2, c, hh, ww, k, dtype)
        geom = conv_geometry(hh, ww, k, stride, "same")
        ref, ref_sums = dwconv_bn_act_ref(x.double(), w.double(), b.double(), stride, "same", "silu", True)
        cfg = tri._nhwc_candidates((tri.TRITON_DTYPES[dtype], 2, c, hh, ww, k, stride))[tile]
        config = tri._nhwc(cfg.kwargs["BLOCK_W"], cfg.kwargs["BLOCK_C"], cfg.num_warps, bh, cfg.num_stages)
        out, partials = tri.dwconv_bn_act_partials(x, tap_major(w), b, stride, *geom, 3, True, config=config)
        assert partials.shape == (2, tri.pixel_blocks(config, *geom[2:]), c)
        _check(out, partials, ref, ref_sums, dtype, f"k{k} s{stride} C{c} {config}")


@pytest.mark.parametrize("activation", CONV_ACTIVATIONS)
def test_prologue(activation):
    """x is a 1x1 GEMM's pre-activation: the kernel computes dw(act(x + pre_bias)) and the zero padding
    stays zero after the activation (act(pre_bias) is not, for most activations)."""
    i = CONV_ACTIVATIONS.index(activation)
    (k, stride), dtype = (3, 1) if i % 2 else (5, 2), DTYPES[i % 3]
    x, w, b = _inputs(2, 37, 9, 10, k, dtype, scale=3.0)
    pre_b = (torch.randn(37, device=DEVICE) + 1).to(dtype)
    geom = conv_geometry(9, 10, k, stride, "same")
    h = apply_activation(x.double() + pre_b.double()[:, None, None], activation)
    ref, ref_sums = dwconv_bn_act_ref(h, w.double(), b.double(), stride, "same", "silu", True)
    out, partials = tri.dwconv_bn_act_partials(x, w, b, stride, *geom, 3, True, config=tri.NHWC_CONFIGS[0],
                                               prologue=(pre_b, ACTIVATIONS[activation]))
    _check(out, partials, ref, ref_sums, dtype, f"prologue {activation}")


@pytest.mark.parametrize("dtype,c_y,with_residual", [(torch.float32, 5, True), (torch.float16, 37, False),
                                                     (torch.bfloat16, 150, True)], ids=str)
def test_project_output_initialised(dtype, c_y, with_residual):
    """y_init: every element of y [N, C_Y, OH, OW] becomes y_bias (+ residual), rounded once to y's dtype,
    whether C_Y is below, equal to or above (several channel blocks per program) the conv's C. (Triton's
    interpreter rounds fp32 -> bf16 toward zero where the GPU and torch round to nearest: one bf16 ulp.)"""
    ulp = 2.0**-7 if dtype == torch.bfloat16 and backends.triton_interpreted() else 0.0
    x, w, b = _inputs(2, 37, 7, 9, 3, dtype)
    y = torch.full((2, c_y, 7, 9), float("nan"), device=DEVICE, dtype=dtype).contiguous(memory_format=torch.channels_last)
    y_b = torch.randn(c_y, device=DEVICE).to(dtype)
    res = torch.randn(2, c_y, 7, 9, device=DEVICE).to(dtype).contiguous(memory_format=torch.channels_last)
    for config in (tri.NHWC_CONFIGS[0], tri._nhwc(8, 32, 1, 4)):
        tri.dwconv_bn_act_partials(x, w, b, 1, 1, 1, 7, 9, 3, False, config=config,
                                   y_init=(y, y_b, res if with_residual else None))
        want = (y_b.float()[None, :, None, None] + (res.float() if with_residual else 0)).expand(y.shape)
        torch.testing.assert_close(y, want.to(dtype), rtol=ulp, atol=0)
        y.fill_(float("nan"))


def test_y_init_refusals():
    """y_init (both kernels that take it, through `y_init_args`) names what it cannot serve: y or the residual
    without channel stride 1, a non-contiguous y_bias, and a y whose per-image offsets pass int32 (meta
    tensors: nothing is allocated)."""
    cl = torch.channels_last
    y, y_b = torch.empty(2, 8, 5, 5).contiguous(memory_format=cl), torch.empty(8)
    assert tri.y_init_args(None, y, y_b)[3] == 0 and tri.y_init_args((y, y_b, None), y, y_b)[3] == 1
    assert tri.y_init_args((y, y_b, y), y, y_b)[3] == 2
    for bad in ((y.contiguous(), y_b, None), (y, y_b, y.contiguous()), (y, torch.empty(16)[::2], None)):
        with pytest.raises(ValueError, match="y_init: expects channels_last"):
            tri.y_init_args(bad, y, y_b)
    huge = torch.empty(1, 8, 2**15, 2**14, device="meta").contiguous(memory_format=cl)
    with pytest.raises(ValueError, match="y_init: y and residual need every per-image element offset below 2"):
        tri.y_init_args((huge, y_b.to("meta"), None), y, y_b)


def test_layers_pack_the_depthwise_weight_for_triton():
    """The layers fold the depthwise weight tap-major ([k, k, C] storage) for the Triton backend, once per
    fold (nn/_base.py), and keep [C, 1, k, k] for the others; the outputs match the eager backend's."""
    from effkernels.nn import DWConvBNAct, MBConv

    x = torch.randn(2, 24, 7, 9, device=DEVICE).contiguous(memory_format=torch.channels_last)
    for layer, i in ((DWConvBNAct(24, 3, backend="triton"), 0), (MBConv(24, 24, 4, 5, 1, backend="triton"), 2)):
        layer = layer.to(DEVICE).eval()
        with torch.no_grad():
            out = layer(x)
            w = layer.folded(x)[i]
            c, k = w.shape[0], w.shape[-1]
            assert w.shape == (c, 1, k, k) and w.stride() == (1, c * k * k, c * k, c)
            assert layer.folded(x)[i] is w  # cached, not repacked per call
            layer.backend = "eager"
            layer.eval()  # drops the fold cache
            assert layer.folded(x)[i].is_contiguous()
            assert_close_to_ref(out, layer(x).double(), torch.float32, what=type(layer).__name__)


def test_extras_need_the_nhwc_kernel():
    x, w, b = _inputs(1, 8, 5, 5, 3, torch.float32)
    with pytest.raises(ValueError, match="^x:"):
        tri.dwconv_bn_act_partials(x.contiguous(), w, b, 1, 1, 1, 5, 5, 3, False, prologue=(b, 3))


def test_int32_rule():
    """The NHWC kernel indexes an image with int32: a view reaching past 2**31 elements goes to the strided
    kernel (int64); NCHW always does."""
    x, _, _ = _inputs(2, 8, 5, 5, 3, torch.float32)
    assert tri.nhwc_kernel_serves(x, 5, 5)
    assert not tri.nhwc_kernel_serves(x.contiguous(), 5, 5)
    huge = torch.empty_strided(x.shape, (x.stride(0), 1, 2**29, 2**28), device="meta")  # 4 * 2**29 + ...: too far
    assert not tri.nhwc_kernel_serves(huge, 5, 5)
    assert tri.dense_nhwc_fits(96, 112, 112, 56, 56) and not tri.dense_nhwc_fits(2**16, 2**8, 2**8, 1, 1)


# B0..B7 depthwise layers at batch 1 and 128, and odd ones.
KEYS = [(dt, n, c, hw, hw, k, s) for dt in ("bf16", "fp32") for n in (1, 128)
        for c, hw, k, s in ((32, 112, 3, 1), (96, 112, 3, 2), (144, 56, 5, 2), (240, 28, 3, 2), (480, 14, 5, 1),
                            (672, 14, 5, 2), (1152, 7, 3, 1), (37, 9, 7, 1), (2064, 9, 7, 2))]


@pytest.mark.parametrize("key", KEYS, ids=str)
def test_heuristic_picks_a_candidate_that_fits(key):
    dtype, n, c, h, w, k, stride = key
    picked = tri._nhwc_heuristic(key)
    shape = lambda cfg: (cfg.kwargs["BLOCK_W"], cfg.kwargs["BLOCK_C"], cfg.num_warps, cfg.num_stages)  # noqa: E731
    assert shape(picked) in {shape(cfg) for cfg in tri._nhwc_candidates(key)}
    assert tri._elements(picked) <= tri._max_elements(k, dtype)
    assert 1 <= picked.kwargs["BLOCK_H"] <= 8
    oh, ow = -(-h // stride), -(-w // stride)
    programs = n * tri.pixel_blocks(picked, oh, ow) * -(-c // picked.kwargs["BLOCK_C"])
    assert programs >= 2 * tri._SMS or picked.kwargs["BLOCK_H"] == 1
    assert tri._waste(c, picked.kwargs["BLOCK_C"]) * 8 <= c or picked.kwargs["BLOCK_C"] == 16


def test_candidates_respect_the_register_budget():
    for k, dtype in ((5, "bf16"), (7, "bf16"), (7, "fp32")):
        cands = tri._nhwc_candidates((dtype, 8, 64, 28, 28, k, 1))
        assert cands and all(tri._elements(cfg) <= tri._max_elements(k, dtype) for cfg in cands)
    assert tri._nhwc_candidates(None) == tri.NHWC_CONFIGS
