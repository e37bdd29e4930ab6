"""Property-based tests: random cases of every op on every backend this machine runs, against the
float64 oracle. Bounded for CI (tens of examples per op and backend, small shapes: the Triton
kernels run in the interpreter here) and reproducible (derandomize: the same examples every run).
The cases have the form of tests/op_cases.py's tables; TF "same" pads are derived here from the
TensorFlow definition, independently of effkernels."""
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from effkernels.ops import channel_sums, dwconv_bn_act, mbconv, pointwise_conv, se_excite, se_scale, squeeze_excite
from helpers import backend_device, backend_params, interpreted, poisoned_memory
from op_cases import (CONV_ACTS, DTYPES, DW, LAYOUTS, MB, MB_ACTS, PW, SE_PAIRS, Excite, check_channel_sums,
                      check_dwconv_bn_act, check_mbconv, check_pointwise_conv, check_same_shape, check_se_excite,
                      channel_sums_sample, dw_sample, mb_sample, pw_sample, se_excite_sample, se_scale_sample,
                      squeeze_excite_sample)

BACKENDS = backend_params()


def fuzz(examples, backend):
    """`examples` random cases, a third of them (at least 6) in the Triton interpreter (0.1-2 s a call)."""
    n = max(6, examples // 3) if interpreted(backend) else examples
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def same_pads(size, k, stride):
    """TensorFlow SAME along one axis: (before, after), the odd pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


@st.composite
def padding_and_pads(draw, h, w, k, stride):
    """(what the op gets, the oracle's (top, bottom, left, right)): default, an int, "same" or a tuple."""
    kind = draw(st.sampled_from(["default", "int", "same", "tuple"]))
    if kind == "default":
        return None, ((k - 1) // 2,) * 4
    if kind == "int":
        p = draw(st.integers(0, k // 2))
        return p, (p,) * 4
    if kind == "same":
        return "same", same_pads(h, k, stride) + same_pads(w, k, stride)
    pads = tuple(draw(st.integers(0, k - 1)) for _ in range(4))
    return pads, pads


def fits(h, w, k, stride, pads):
    return h + pads[0] + pads[1] >= k and w + pads[2] + pads[3] >= k


shapes = st.tuples(st.integers(0, 3), st.integers(1, 80), st.integers(1, 12), st.integers(1, 12))
dtypes = st.sampled_from(DTYPES)
layouts = st.sampled_from(LAYOUTS)


@st.composite
def dw_cases(draw):
    n, c, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 70)), draw(st.integers(1, 12)), draw(st.integers(1, 12))
    k, stride = draw(st.sampled_from([1, 3, 5, 7])), draw(st.sampled_from([1, 2]))
    padding, pads = draw(padding_and_pads(h, w, k, stride))
    if not fits(h, w, k, stride, pads):  # too small for the kernel: widen the image
        h, w = h + k, w + k
        if padding == "same":
            pads = same_pads(h, k, stride) + same_pads(w, k, stride)
    return DW(n, c, h, w, k, stride, padding, pads)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dwconv_bn_act(backend):
    @fuzz(45, backend)
    @given(case=dw_cases(), dtype=dtypes, layout=layouts, act=st.sampled_from(CONV_ACTS), se_sums=st.booleans())
    def run(case, dtype, layout, act, se_sums):
        with poisoned_memory():
            s = dw_sample(case, backend_device(backend), dtype, layout, act, se_sums)
            check_dwconv_bn_act(dwconv_bn_act(*s.args, **s.kwargs, backend=backend), s)

    run()


@pytest.mark.parametrize("backend", BACKENDS)
def test_channel_sums_and_se_scale(backend):
    @fuzz(20, backend)
    @given(shape=shapes, dtype=dtypes, layout=layouts)
    def run(shape, dtype, layout):
        with poisoned_memory():
            s = channel_sums_sample(shape, backend_device(backend), dtype, layout)
            check_channel_sums(channel_sums(*s.args, backend=backend), s)
            s = se_scale_sample(shape, backend_device(backend), dtype, layout)
            check_same_shape(se_scale(*s.args, backend=backend), s)

    run()


@pytest.mark.parametrize("backend", BACKENDS)
def test_se_excite(backend):
    @fuzz(20, backend)
    @given(case=st.builds(Excite, st.integers(0, 3), st.integers(1, 200), st.integers(1, 64)), w_dtype=dtypes,
           pair=st.sampled_from(SE_PAIRS))
    def run(case, w_dtype, pair):
        with poisoned_memory():
            s = se_excite_sample(case, backend_device(backend), w_dtype, *pair)
            check_se_excite(se_excite(*s.args, **s.kwargs, backend=backend), s)

    run()


@pytest.mark.parametrize("backend", BACKENDS)
def test_squeeze_excite(backend):
    @fuzz(15, backend)
    @given(shape=shapes, squeeze=st.integers(1, 32), dtype=dtypes, layout=layouts, pair=st.sampled_from(SE_PAIRS))
    def run(shape, squeeze, dtype, layout, pair):
        with poisoned_memory():
            s = squeeze_excite_sample(shape, backend_device(backend), dtype, layout, *pair, s=squeeze)
            check_same_shape(squeeze_excite(*s.args, **s.kwargs, backend=backend), s)

    run()


@pytest.mark.parametrize("backend", BACKENDS)
def test_pointwise_conv(backend):
    @fuzz(20, backend)
    @given(case=st.builds(PW, st.integers(0, 3), st.integers(1, 80), st.integers(1, 80), st.integers(1, 9),
                          st.integers(1, 9)),
           dtype=dtypes, layout=layouts, act=st.sampled_from(CONV_ACTS), with_scale=st.booleans(),
           with_res=st.booleans())
    def run(case, dtype, layout, act, with_scale, with_res):
        with poisoned_memory():
            s = pw_sample(case, backend_device(backend), dtype, layout, act, with_scale, with_res)
            check_pointwise_conv(pointwise_conv(*s.args, backend=backend), s)

    run()


@st.composite
def mb_cases(draw):
    expand, k, stride = draw(st.sampled_from([1, 2, 4, 6])), draw(st.sampled_from([3, 5])), draw(st.sampled_from([1, 2]))
    c_in, c_out = draw(st.integers(1, 24)), draw(st.sampled_from([None, *range(1, 25)]))
    h, w = draw(st.integers(k, 10)), draw(st.integers(k, 10))
    if draw(st.booleans()):
        padding, pads = "same", same_pads(h, k, stride) + same_pads(w, k, stride)
    else:
        padding = (k - 1) // 2
        pads = (padding,) * 4
    return MB(expand, k, stride, c_in, c_in if c_out is None else c_out, draw(st.integers(1, 2)), h, w, padding,
              pads, draw(st.booleans()))


@pytest.mark.parametrize("backend", BACKENDS)
def test_mbconv(backend):
    @fuzz(12, backend)
    @given(case=mb_cases(), dtype=dtypes, layout=st.sampled_from(["channels_last", "nchw"]),
           acts=st.sampled_from(MB_ACTS))
    def run(case, dtype, layout, acts):
        with poisoned_memory(), torch.no_grad():
            s = mb_sample(case, backend_device(backend), dtype, layout, acts)
            check_mbconv(mbconv(*s.args, **s.kwargs, backend=backend), s)

    run()
