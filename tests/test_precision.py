"""fp16/bf16 kernels must accumulate long reductions in fp32.

The per-dtype tolerances of the other tests (helpers.TOL) would pass a kernel that accumulates in
16 bits. Here the reductions are long (a 1x1 conv over C_in = 4096, sums over 32 x 32 and 48 x 48 pixels) and
the inputs have a non-zero mean, so partial sums grow and every 16-bit rounding of them costs. Each
test bounds the backend's error by what fp32 accumulation achieves on those inputs, and checks, on
the same inputs, that the bound is reachable (an fp32-accumulating emulation meets it) and that it
has power: 16-bit accumulators, emulated here (an element-by-element FMA chain, and fp32 blocks of
32 added into a 16-bit accumulator, as a tiled GEMM with a 16-bit accumulator does), both fail it.
"""
import functools

import pytest
import torch

from effkernels.ops import channel_sums, dwconv_bn_act, pointwise_conv
from helpers import backend_device, backend_params
from op_cases import DW, dw_sample, make_x, param
import oracles

pytestmark = pytest.mark.usefixtures("poisoned")

BACKENDS = backend_params()
LOW = [torch.float16, torch.bfloat16]
BLOCK = 32  # the reduction tile of the blocked 16-bit emulation


def rel_err(out, ref):
    out, ref = out.detach().to("cpu", torch.float64), ref.detach().to("cpu", torch.float64)
    assert torch.isfinite(out).all(), "non-finite values (unwritten elements?)"
    return ((out - ref).norm() / ref.norm()).item()


def accumulate(terms, dtype, block):
    """Sum `terms` [K, ...] (fp64) over dim 0 the way a kernel with a `dtype` accumulator does: fp32
    blocks of `block` terms (1: an FMA chain), each added into the accumulator and rounded to it."""
    acc = torch.zeros(terms.shape[1:], dtype=dtype)
    for k in range(0, terms.shape[0], block):
        acc = (acc.double() + terms[k:k + block].float().sum(0).double()).to(dtype)
    return acc.double()


def check_power(emulate, dtype, bound, ref):
    """The bound holds for fp32 accumulation and fails for both 16-bit accumulators (module docstring)."""
    fp32 = rel_err(emulate(torch.float32, BLOCK), ref)
    assert fp32 <= bound, f"the bound {bound:.2e} is unreachable: fp32 accumulation gives {fp32:.2e}"
    for block in (1, BLOCK):
        err = rel_err(emulate(dtype, block), ref)
        assert err > bound, f"no power: a {dtype} accumulator (blocks of {block}) gives {err:.2e} <= {bound:.2e}"


@functools.lru_cache(maxsize=None)
def _pointwise_problem(dtype):
    """(x, w, b, oracle, bound), CPU tensors; the bound's power checked once per dtype."""
    torch.manual_seed(0)
    c_in, c_out = 4096, 32
    x = make_x((1, c_in, 2, 4), torch.float32, "channels_last", "cpu").abs().to(dtype)
    w = ((torch.rand(c_out, c_in) - 0.3) / c_in ** 0.5).to(dtype)  # mean > 0: the sums grow with k
    b = param(c_out, dtype=dtype)
    ref = oracles.pointwise_conv(x, w, b)
    # fp32 accumulation leaves the output's rounding (1x the error of rounding the exact result; 2x
    # where casts truncate, as the Triton interpreter's to bf16 do); a 16-bit accumulator over 4096
    # terms, > 7x.
    bound = 3 * rel_err(ref.to(dtype), ref)
    terms = oracles.f64(x)[0].reshape(c_in, -1)[:, None, :] * oracles.f64(w).t()[:, :, None]  # [K, C_out, HW]

    def emulate(acc_dtype, block):
        return (accumulate(terms, acc_dtype, block) + oracles.f64(b)[:, None]).to(dtype).reshape(ref.shape)

    check_power(emulate, dtype, bound, ref)
    return x, w, b, ref, bound


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", LOW, ids=str)
def test_pointwise_conv_accumulates_in_fp32(dtype, backend):
    device = backend_device(backend)
    x, w, b, ref, bound = _pointwise_problem(dtype)
    err = rel_err(pointwise_conv(x.to(device), w.to(device), b.to(device), "none", backend=backend), ref)
    assert err <= bound, f"relative error {err:.2e} > {bound:.2e}: the GEMM does not accumulate in fp32"


@functools.lru_cache(maxsize=None)
def _channel_sums_problem(dtype):
    torch.manual_seed(0)
    x = make_x((2, 16, 48, 48), dtype, "channels_last", "cpu", offset=1.0)
    ref = oracles.channel_sums(x)
    terms = oracles.f64(x).flatten(2).permute(2, 0, 1)  # [HW, N, C]
    # fp32 results whatever x's dtype: relative error 1e-5 (fp32 accumulation: ~1e-7; 16-bit: > 1e-3).
    check_power(lambda acc_dtype, block: accumulate(terms, acc_dtype, block), dtype, 1e-5, ref)
    return x, ref


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", LOW, ids=str)
def test_channel_sums_accumulate_in_fp32(dtype, backend):
    x, ref = _channel_sums_problem(dtype)
    err = rel_err(channel_sums(x.to(backend_device(backend)), backend=backend), ref)
    assert err <= 1e-5, f"relative error {err:.2e} > 1e-5: the sums do not accumulate in fp32"


@functools.lru_cache(maxsize=None)
def _se_sums_problem(dtype):
    torch.manual_seed(0)
    s = dw_sample(DW(1, 16, 32, 32, 3, 1, 1, (1, 1, 1, 1)), "cpu", dtype, "channels_last", "silu")
    x, weight, bias = s.args
    bias = bias.abs() + 1  # positive outputs: the sums grow pixel by pixel
    out = oracles.dwconv(x, weight, bias, 1, (1, 1, 1, 1), "silu")
    ref = out.sum((2, 3))
    # A backend may sum the fp32 activations or the outputs it rounded to dtype (in fp32): the bound is
    # 8x the error of summing correctly rounded outputs exactly, room for outputs rounded twice (eager:
    # conv, then activation, each in dtype) or by truncation (the Triton interpreter's bf16 casts).
    # A 16-bit accumulator over 1024 pixels: > 30x.
    bound = 8 * rel_err(out.to(dtype).double().sum((2, 3)), ref)
    terms = out.flatten(2).permute(2, 0, 1)  # [OH * OW, N, C]
    check_power(lambda acc_dtype, block: accumulate(terms, acc_dtype, block), dtype, bound, ref)
    return (x, weight, bias), s.kwargs, ref, bound


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", LOW, ids=str)
def test_dwconv_se_sums_accumulate_in_fp32(dtype, backend):
    args, kwargs, ref, bound = _se_sums_problem(dtype)
    device = backend_device(backend)
    _, sums = dwconv_bn_act(*(t.to(device) for t in args), **kwargs, backend=backend)
    err = rel_err(sums, ref)
    assert err <= bound, f"relative error {err:.2e} > {bound:.2e}: the SE sums do not accumulate in fp32"
