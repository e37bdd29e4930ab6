"""effkernels.nn.BlockSequence: its recorded cpu run gives nn.Sequential's output bit for bit, really skips the
block modules, and falls back or records again whenever the recording no longer holds (weights edited, a block
in train mode or on another backend, hooks, a child replaced, grad mode, another shape / dtype / thread count)."""
from collections import OrderedDict

import pytest
import torch
from torch import nn

import effkernels.nn as enn
from effkernels.models import efficientnet
from test_nn import backend_or_skip, randomize_bn_

tv = pytest.importorskip("torchvision.models")
pytestmark = [pytest.mark.cpu, pytest.mark.usefixtures("poisoned")]


def small_net(backend="cpu", dtype=torch.float32):
    """EfficientNet-B0 (16 blocks in nested sequences) with random BN statistics, in eval mode."""
    torch.manual_seed(0)
    return randomize_bn_(efficientnet("b0", num_classes=10, backend=backend)).eval().to(dtype)


def plain(seq, x):
    """What nn.Sequential runs: every child (nested sequences included) called as a module."""
    for m in seq:
        x = plain(m, x) if isinstance(m, enn.BlockSequence) else m(x)
    return x


def block_calls(monkeypatch):
    """A list that grows by one per MBConv module forward."""
    calls = []
    real = enn.MBConv.forward

    def counted(self, x):
        calls.append(self)
        return real(self, x)

    monkeypatch.setattr(enn.MBConv, "forward", counted)
    return calls


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape,layout", [((1, 3, 37, 41), "nhwc"), ((2, 3, 32, 32), "nchw")])
def test_recorded_run_equals_the_module_calls(dtype, shape, layout):
    backend_or_skip("cpu", "mbconv_packed")
    net = small_net(dtype=dtype)
    assert isinstance(net.features, enn.BlockSequence) and isinstance(net.features[1], enn.BlockSequence)
    x = torch.randn(shape).to(dtype)
    if layout == "nhwc":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = plain(net.features, x)
        first, again = net.features(x), net.features(x)  # records, then replays
    assert torch.equal(first, ref) and torch.equal(again, ref)
    assert again.is_contiguous(memory_format=torch.channels_last) == ref.is_contiguous(memory_format=torch.channels_last)


def test_runs_call_no_block_module(monkeypatch):
    backend_or_skip("cpu", "mbconv_packed")
    net = small_net()
    x = torch.randn(1, 3, 33, 33)
    calls = block_calls(monkeypatch)
    with torch.inference_mode():
        net(x)  # records: each block's op called from its packed_call arguments
        net(x)  # replays
    assert calls == [], "a block ran as a module"
    n_blocks = sum(isinstance(m, enn.MBConv) for m in net.modules())
    run = next(iter(net.features._runs.values()))
    assert sum(fold is not None for _, fold, *_ in run.steps) == n_blocks


def test_edits_hooks_modes_and_children_are_seen(monkeypatch):
    backend_or_skip("cpu", "mbconv_packed")
    net, x = small_net(), torch.randn(1, 3, 29, 31)
    calls = block_calls(monkeypatch)
    blocks = [m for m in net.modules() if isinstance(m, enn.MBConv)]
    with torch.no_grad():
        net(x)
        # an in-place weight edit: refolded, the output follows
        blocks[-1].block[-1][0].weight.mul_(2)
        assert torch.equal(net.features(x), plain(net.features, x))
        # a hook on a block: called, in the recorded run's place of the block
        seen = []
        h = blocks[0].register_forward_hook(lambda m, i, o: seen.append(o.shape))
        net(x)
        assert len(seen) == 1
        h.remove()
        # a block in train mode runs its eager math (BN batch statistics): the sequence falls back to module calls
        blocks[1].train()
        calls.clear()
        out = net.features(x)
        assert calls == [blocks[1]]
        assert torch.equal(out, plain(net.features, x))
        blocks[1].eval()
        # a child replaced: the new one runs
        stage, i = next((s, i) for s in net.features if isinstance(s, enn.BlockSequence)
                        for i, b in enumerate(s) if b.use_res_connect and b is not blocks[-1])
        stage[i] = nn.Identity()
        calls.clear()
        out = net.features(x)
        assert calls == []
        assert torch.equal(out, plain(net.features, x))
        # another backend on one block
        blocks[-1].backend = "eager"
        calls.clear()
        out = net.features(x)
        assert calls == [blocks[-1]]
        torch.testing.assert_close(out, plain(net.features, x))
    # grad mode: the plain forward, whose ops refuse parameters that need grad
    with pytest.raises(RuntimeError, match="inference-only"):
        net(x)


def test_threads_and_shapes_record_their_own_runs():
    backend_or_skip("cpu", "mbconv_packed")
    net = small_net()
    threads = torch.get_num_threads()
    try:
        with torch.no_grad():
            for t, shape in ((1, (1, 3, 32, 32)), (2, (1, 3, 32, 32)), (2, (2, 3, 24, 40))):
                torch.set_num_threads(t)
                x = torch.randn(shape)
                assert torch.equal(net.features(x), plain(net.features, x))
    finally:
        torch.set_num_threads(threads)
    assert len(net.features._runs) == 3


def test_global_hooks_and_sequence_hooks_fall_back(monkeypatch):
    backend_or_skip("cpu", "mbconv_packed")
    net, x = small_net(), torch.randn(1, 3, 32, 32)
    calls = block_calls(monkeypatch)
    with torch.no_grad():
        net(x)
        calls.clear()
        h = nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
        try:
            net(x)
        finally:
            h.remove()
        assert len(calls) > 0
        # a hook on the outer sequence: called; it runs as nn.Sequential, its stages still as recorded runs
        seen = []
        h = net.features.register_forward_pre_hook(lambda m, i: seen.append(m))
        out = net.features(x)
        h.remove()
        assert seen == [net.features] and torch.equal(out, plain(net.features, x))


def test_convert_makes_block_sequences_with_the_same_keys():
    m = tv.efficientnet_b0().eval()
    keys = list(m.state_dict())
    hooked = m.features[2]
    hooked.register_forward_hook(lambda mod, i, o: None)
    m.features[1].train()
    fast = enn_convert(m)
    assert type(fast.features) is enn.BlockSequence
    assert type(fast.features[2]) is nn.Sequential  # a sequence with hooks is kept as it is
    assert type(fast.features[1]) is enn.BlockSequence and fast.features[1].training and not fast.features.training
    assert list(fast.state_dict()) == keys


def enn_convert(m):
    from effkernels.convert import convert
    return convert(m, backend="eager")


def test_block_sequence_is_a_sequential():
    seq = enn.BlockSequence(OrderedDict(a=nn.Identity(), b=nn.ReLU()))
    assert isinstance(seq, nn.Sequential) and list(seq.state_dict()) == [] and seq(torch.ones(2)).tolist() == [1, 1]
