"""The tests' own machinery: the oracles (tests/oracles.py) against torch's own implementations on small
cases (the depthwise conv against F.conv2d on the same explicit pads, the activations against
torch.nn.functional), and the poisoning of uninitialised memory (helpers.poisoned_memory)."""
import pytest
import torch
import torch.nn.functional as F

import oracles
from helpers import DEVICE, assert_close_to_ref, poisoned_memory
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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_poisoned_memory_is_nan_in_every_dtype(dtype):
    """Every way the kernels and launchers allocate (at::empty from C++ is aten's empty, as here) comes back
    NaN in the tensor's own dtype, every element; an output with one unwritten element fails the comparison."""
    devices = {torch.device("cpu"), DEVICE}
    before = torch.are_deterministic_algorithms_enabled()
    with poisoned_memory():
        for device in devices:
            x = torch.ones(4, 5, dtype=dtype, device=device)
            for t in (torch.empty(3, 70, dtype=dtype, device=device), torch.empty_like(x), x.new_empty((2, 9)),
                      torch.empty_strided((2, 3), (1, 2), dtype=dtype, device=device),
                      torch.empty((1, 8, 3, 3), dtype=dtype, device=device, memory_format=torch.channels_last),
                      torch.ops.aten.empty.memory_format([5, 7], dtype=dtype, device=device)):
                assert t.dtype == dtype and torch.isnan(t).all(), (t.dtype, t)
            out = torch.empty_like(x)
            out.view(-1)[:-1] = 1  # a "kernel" that forgets the last element
            with pytest.raises(AssertionError):
                assert_close_to_ref(out, torch.ones(4, 5, dtype=torch.float64), dtype)
    assert torch.are_deterministic_algorithms_enabled() == before, "poisoned_memory left deterministic mode changed"
