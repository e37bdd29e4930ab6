"""The Triton SE kernels' own machinery, in the interpreter (tests/test_squeeze_excite.py covers the ops): pixel
sums split into pieces written as partials, images walked as one flattened row or as rows (views), the excite
kernel writing per-image project weights, and one launcher for the whole squeeze-excitation."""
import pytest
import torch

from effkernels import backends, reference
from helpers import DEVICE, assert_close_to_ref

pytestmark = pytest.mark.skipif(not backends.triton_interpreted() and DEVICE.type != "cuda",
                                reason="triton cannot run here")

if backends.backends_available()["triton"][0]:
    import effkernels.triton.squeeze_excite as tri

DTYPES = (torch.float32, torch.float16, torch.bfloat16)




def _x(n, c, h, w, dtype, layout):
    x = torch.randn(n, c, h, w, device=DEVICE) + 0.3
    if layout == "nhwc":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "view":  # (h, w) do not flatten to one stride: walked row by row
        x = x.contiguous(memory_format=torch.channels_last)[:, :, :, 1:]
    return x.to(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["nhwc", "nchw", "view"])
@pytest.mark.parametrize("n,c,h,w", [(1, 8, 40, 41), (3, 37, 9, 13), (2, 130, 1, 70)])
def test_partial_sums(poisoned, dtype, layout, n, c, h, w):
    """Every slot of the [N, P, C] partials is written (the buffer comes NaN-filled) and they add up to the
    sums; N = 1, C = 8 on a 40x40 map splits the pixels into several pieces."""
    x = _x(n, c, h, w, dtype, layout)
    partials = tri.channel_sums_partials(x)
    assert partials.dtype == torch.float32 and partials.shape[::2] == (n, c)
    assert torch.isfinite(partials).all()
    assert_close_to_ref(partials.sum(1), reference.channel_sums_ref(x.double()), torch.float32)
    assert_close_to_ref(tri.channel_sums(x), reference.channel_sums_ref(x.double()), torch.float32)
    if (n, c) == (1, 8):
        assert partials.shape[1] > 1, "a lone image with few channels is split across programs"


@pytest.mark.parametrize("n,h,w", [(1, 40, 40), (1, 7, 7), (200, 7, 7)])
def test_pieces_fill_the_gpu(n, h, w):
    """_sums_grid: at least 2 chunks of 64 pixels per program, and about 4 programs per SM when the
    pixels allow it."""
    chunks = -(-h * w // tri._BLOCK_P)
    per_prog, pieces = tri._sums_grid(n, 96, chunks)
    assert pieces * per_prog >= chunks > (pieces - 1) * per_prog  # every chunk in exactly one piece
    assert per_prog >= min(2, chunks)
    programs = n * -(-96 // tri._BLOCK_C) * pieces
    assert programs >= 4 * tri._SMS or per_prog <= 3  # enough programs, or split as finely as allowed


@pytest.mark.parametrize("w_dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n,p,c,s,c_out", [(2, 3, 37, 9, 24), (1, 1, 96, 4, 40), (3, 45, 70, 300, 130)])
def test_project_weights(poisoned, w_dtype, n, p, c, s, c_out):
    """W'[n] = project_w * scale[n] over its input channels, in project_w's dtype, written whole, from
    partial sums (P rows) or [N, C] sums (P = 1)."""
    partials = torch.randn(n, p, c, device=DEVICE) * 10
    ws = [t.to(w_dtype) for t in (torch.randn(s, c) / c ** 0.5, torch.randn(s) * 0.5, torch.randn(c, s) / s ** 0.5,
                                   torch.randn(c) * 0.5)]
    pw = (torch.randn(c_out, c, device=DEVICE) / c ** 0.5).to(w_dtype)
    got = tri.se_project_weights(partials if p > 1 else partials[:, 0], 1 / 49, *ws, 3, 5, pw)
    scale = reference.se_excite_ref(partials.double().sum(1), 1 / 49, *[t.double() for t in ws], "silu", "sigmoid")
    assert got.shape == (n, c_out, c) and got.dtype == w_dtype and got.is_contiguous()
    assert_close_to_ref(got, pw.double()[None] * scale[:, None, :], w_dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["nhwc", "nchw", "view"])
def test_scale_and_squeeze_excite(poisoned, dtype, layout):
    x = _x(2, 37, 9, 11, dtype, layout)
    ws = [t.to(dtype) for t in (torch.randn(9, 37) / 6, torch.randn(9) * 0.5, torch.randn(37, 9) / 3,
                                 torch.randn(37) * 0.5)]
    scale = torch.rand(2, 37, device=DEVICE) * 2
    assert_close_to_ref(tri.se_scale(x, scale), reference.se_scale_ref(x.double(), scale.double()), dtype)
    got = tri.squeeze_excite(x, *ws, 3, 5)
    assert_close_to_ref(got, reference.squeeze_excite_ref(x.double(), *[t.double() for t in ws]), dtype)


def test_squeeze_excite_is_three_launches():
    """Partial sums, excite (reducing them), scale: no [N, C] reduction or zero-fill in between."""
    import triton.runtime.interpreter as interp

    launched = []
    run = interp.InterpretedFunction.run

    def counting(self, *args, **kwargs):
        launched.append(self.fn.__name__)
        return run(self, *args, **kwargs)

    x = _x(1, 8, 40, 40, torch.float32, "nhwc")
    ws = (torch.randn(2, 8), torch.randn(2), torch.randn(8, 2), torch.randn(8))
    interp.InterpretedFunction.run = counting
    try:
        tri.squeeze_excite(x, *ws, 3, 5)
    finally:
        interp.InterpretedFunction.run = run
    assert launched == ["_channel_sums_kernel", "_se_excite_kernel", "_se_scale_kernel"]


@pytest.mark.skipif(DEVICE.type == "cuda", reason="checks the interpreter's launches")
def test_opcheck_squeeze_excite_op():
    x = _x(2, 8, 3, 3, torch.float32, "nhwc")
    ws = (torch.randn(2, 8), torch.randn(2), torch.randn(8, 2), torch.randn(8))
    torch.library.opcheck(torch.ops.effkernels_triton.squeeze_excite.default, (x, *ws, 3, 5),
                          test_utils=("test_schema", "test_faketensor"))
