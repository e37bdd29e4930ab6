"""The depthwise Triton launcher below the public op: every config of its tables pinned, the SE
partial-sums buffer, alignment hints, tap-major weights. These use launcher internals (config
tables, dwconv_bn_act_partials, _empty_partials, tap_major) and move with them; the public behaviour
of every op is tested per backend in tests/test_<op>.py (the pointwise configs: test_triton_configs.py).
Shapes small: without a GPU the kernels run in the interpreter."""
import pytest
import torch

from effkernels.ops import dwconv_bn_act, mbconv
from helpers import assert_close_to_ref, backend_device, backend_params
from op_cases import DW, MB, MB_ACTS, Sample, check_dwconv_bn_act, dw_sample, mb_sample, se_weights
import oracles
from effkernels._common import tap_major

TRITON = backend_params(("triton",))
pytestmark = [pytest.mark.triton, pytest.mark.usefixtures("poisoned")]


def _tri():
    import effkernels.triton.dwconv_bn_act as tri  # imports triton: only when these tests run

    return tri


def _configs(kernel):
    return _tri().NHWC_CONFIGS if kernel == "nhwc" else _tri().NCHW_CONFIGS


# 2 x 70 x 11 x 9, k 3, stride 2, pad 1: 6 x 5 = 30 output pixels, several pixel and channel blocks.
CONFIG_CASE = DW(2, 70, 11, 9, 3, 2, 1, (1, 1, 1, 1))
CONFIG_GEOM = (1, 1, 6, 5)  # pad_top, pad_left, out_h, out_w


@pytest.mark.parametrize("backend", TRITON)
@pytest.mark.parametrize("kernel", ["nhwc", "nchw"])
def test_every_config(kernel, backend):
    """The interpreter runs one big tile unless told otherwise: pin each GPU config on a multi-block shape."""
    layout = "channels_last" if kernel == "nhwc" else "nchw"
    s = dw_sample(CONFIG_CASE, backend_device(backend), torch.float16, layout)
    x, weight, bias = s.args
    ref = s.expected()
    for cfg in _configs(kernel):
        out, sums = _tri().dwconv_bn_act(x, weight, bias, 2, *CONFIG_GEOM, 3, True, config=cfg)
        assert_close_to_ref(out, ref, torch.float16, what=f"out with {cfg}")
        assert_close_to_ref(sums, ref.sum((2, 3)), torch.float16, what=f"sums with {cfg}")


@pytest.mark.parametrize("backend", TRITON)
@pytest.mark.parametrize("kernel", ["nhwc", "nchw"])
def test_partial_sums_every_config(kernel, backend):
    """dwconv_bn_act_partials: fp32 [N, cdiv(OH * OW, BLOCK_P), C], every slot written (the buffer
    comes NaN-filled), rows summing to the oracle's sums; the same partials the [N, C] launcher
    reduces, so they match it bit for bit."""
    layout = "channels_last" if kernel == "nhwc" else "nchw"
    s = dw_sample(CONFIG_CASE, backend_device(backend), torch.float32, layout)
    x, weight, bias = s.args
    ref_sums = s.expected().sum((2, 3))
    for config in _configs(kernel):
        cfg = config.kwargs
        out, partials = _tri().dwconv_bn_act_partials(x, weight, bias, 2, *CONFIG_GEOM, 3, True, config=config)
        assert partials.dtype == torch.float32 and partials.shape == (2, _tri().pixel_blocks(config, 6, 5), 70), cfg
        assert torch.isfinite(partials).all(), f"unwritten partial sums with {cfg}"
        assert_close_to_ref(partials.sum(1), ref_sums, torch.float32, what=f"sums with {cfg}")
        out2, sums = _tri().dwconv_bn_act(x, weight, bias, 2, *CONFIG_GEOM, 3, True, config=config)
        torch.testing.assert_close(sums, partials.sum(1), rtol=0, atol=0)
        assert sums.is_contiguous()


@pytest.mark.parametrize("backend", TRITON)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_alignment_hints_only_when_true(dtype, backend):
    """C = 40 (a multiple of 8, not 16) gets VEC / W_VEC alignment hints; views whose pixel or tap
    strides are not multiples must not (the kernel rounds strides down to multiples of the hint)."""
    device = backend_device(backend)
    x, weight, bias = dw_sample(DW(2, 40, 9, 9, 3, 1, None, (1, 1, 1, 1)), device, dtype, "channels_last").args
    wide, wide_w, _ = dw_sample(DW(2, 84, 9, 9, 3, 1, None, (1, 1, 1, 1)), device, dtype, "channels_last").args
    # (x, weight, stride, padding, pads, activation, se_sums): pixel stride 84, tap strides 3 * 84, 84
    for x_, w_, stride, padding, pads, act, se_sums in (
            (x, tap_major(weight), 1, None, (1, 1, 1, 1), "silu", True),
            (wide[:, :40], tap_major(wide_w)[:40], 2, "same", (1, 1, 1, 1), "silu", True),
            (x, tap_major(wide_w)[:40], 1, None, (1, 1, 1, 1), "relu6", False)):
        sample = Sample(f"{tuple(x_.shape)} {x_.stride()} w {w_.stride()}", (x_, w_, bias),
                        dict(stride=stride, padding=padding, activation=act, se_sums=se_sums),
                        lambda x_=x_, w_=w_, stride=stride, pads=pads, act=act: oracles.dwconv(x_, w_, bias, stride,
                                                                                               pads, act))
        check_dwconv_bn_act(dwconv_bn_act(*sample.args, **sample.kwargs, backend="triton"), sample)


@pytest.mark.parametrize("backend", TRITON)
def test_tap_major_weight_on_a_view(backend):
    """The tap-major weight layout the NHWC kernel loads as vectors, on a non-contiguous NHWC view."""
    device = backend_device(backend)
    big = torch.randn(3, 80, 20, 21).to(device)
    x = big.contiguous(memory_format=torch.channels_last)[:, 3:40, 1:18, 2::2]
    weight = (torch.randn(80, 2, 5, 5) / 5).to(device)[1:38, 1:].contiguous()
    bias = torch.randn(37).to(device)
    out, sums = dwconv_bn_act(x, tap_major(weight), bias, 1, None, "hardswish", True, backend="triton")
    ref = oracles.dwconv(x, weight, bias, 1, (2, 2, 2, 2), "hardswish")
    assert_close_to_ref(out, ref, torch.float32)
    assert_close_to_ref(sums, ref.sum((2, 3)), torch.float32, abs_=2e-3)


@pytest.mark.parametrize("backend", TRITON)
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
def test_partial_sums_poisoned(monkeypatch, layout, backend):
    """The dw kernel's [N, P_blocks, C] partial sums come uninitialised (NaN here), so a slot the
    dw kernel does not write, or a row se_excite reads that it should not, shows in the output. The
    buffer has exactly the rows of the tile the launcher picked, on every call."""
    tri = _tri()
    alloc = tri._empty_partials
    rows = []

    def counted(n, r, c, device):
        rows.append(r)
        return alloc(n, r, c, device)

    monkeypatch.setattr(tri, "_empty_partials", counted)
    # 11 x 13 = 143 pixels: several pixel blocks of most configs
    s = mb_sample(MB(6, 3, 1, 16, 16, 2, 11, 13, 1, (1, 1, 1, 1), True), backend_device(backend), torch.float32,
                  layout, MB_ACTS[0])
    with torch.no_grad():
        first = mbconv(*s.args, **s.kwargs, backend="triton")
        second = mbconv(*s.args, **s.kwargs, backend="triton")
    table = tri.NHWC if layout == "channels_last" else tri.STRIDED
    picked = table.pick(("fp32", 2, s.args[3].shape[0], 11, 13, 3, 1), s.args[0].device)
    assert rows == [tri.pixel_blocks(picked, 11, 13)] * 2
    ref = s.expected()
    assert_close_to_ref(first, ref, torch.float32)
    assert_close_to_ref(second, ref, torch.float32)


@pytest.mark.parametrize("backend", TRITON)
@pytest.mark.parametrize("n,p,c,s", [(2, 3, 37, 9), (1, 45, 70, 300), (3, 2, 1155, 16)])
def test_se_excite_reduces_partial_sums(n, p, c, s, backend):
    """The launcher also takes [N, P, C] partial sums (the dw kernel's, one row per pixel block) and
    adds the P rows up itself: here a view of the first P rows of a larger buffer whose other rows
    are NaN, so reading past row P shows."""
    from effkernels.triton.squeeze_excite import se_excite as launch

    device = backend_device(backend)
    buf = torch.full((n, p + 5, c), float("nan"), device=device)
    buf[:, :p] = (torch.randn(n, p, c) * 10).to(device)
    partials = buf[:, :p]
    ws = se_weights(c, s, device=device)
    out = launch(partials, 1 / 49, *ws, 3, 5)
    ref = oracles.se_excite(partials.double().sum(1), 1 / 49, *ws, "silu", "sigmoid")
    assert out.shape == (n, c) and out.dtype == torch.float32
    assert_close_to_ref(out, ref, torch.float32)
