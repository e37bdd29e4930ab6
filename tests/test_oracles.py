"""The oracles (tests/oracles.py) against torch's own implementations, on small cases: the depthwise
conv against F.conv2d on the same explicit pads, the activations against torch.nn.functional."""
import pytest
import torch
import torch.nn.functional as F

import oracles
from op_cases import DW_CASES, dw_sample

ACTS = {"relu": F.relu, "relu6": F.relu6, "silu": F.silu, "hardswish": F.hardswish, "sigmoid": torch.sigmoid,
        "hardsigmoid": F.hardsigmoid}


@pytest.fixture
def one_thread():
    """torch's float64 grouped conv opens a parallel region per group: one thread takes milliseconds, two
    on a busy 2-core machine took seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("case", [c for c in DW_CASES if c.c <= 64], ids=str)
def test_dwconv_is_torchs_conv(case, one_thread):
    x, weight, bias = dw_sample(case, "cpu", torch.float64, "nchw").args
    top, bottom, left, right = case.pads
    want = F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, stride=case.stride, groups=case.c)
    torch.testing.assert_close(oracles.dwconv(x, weight, bias, case.stride, case.pads, "none"), want)


@pytest.mark.parametrize("name", sorted(ACTS))
def test_activations_are_torchs(name):
    y = torch.linspace(-10, 10, 2001, dtype=torch.float64)
    torch.testing.assert_close(oracles.act(y, name), ACTS[name](y))
