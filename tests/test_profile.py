import math
import sys

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from effkernels.__main__ import main
from effkernels.models import efficientnet
from effkernels.profile import largest_phi, profile, scaling_candidates

tv_models = pytest.importorskip("torchvision.models")


def test_hand_count_of_one_conv_and_linear():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, groups=1, bias=False), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, 10))
    p = profile(model, 8, batch=2)
    conv_macs = 2 * 8 * 4 * 4 * 3 * 3 * 3       # N * C_out * H_out * W_out * C_in * k * k
    lin_macs = 2 * 10 * 128
    assert p.flops == 2 * (conv_macs + lin_macs)
    assert p.params == 8 * 3 * 9 + 128 * 10 + 10
    # outputs: conv [2,8,4,4], flatten [2,128], linear [2,10], float32
    assert p.activation_bytes == 4 * (2 * 8 * 16 + 2 * 128 + 2 * 10)
    assert p.memory_bytes == p.param_bytes + p.activation_bytes == 4 * p.params + p.activation_bytes


def test_depthwise_conv_counts_per_group():
    model = nn.Sequential(nn.Conv2d(3, 16, 1), nn.Conv2d(16, 16, 5, padding=2, groups=16))
    assert profile(model, 7).flops == 2 * (16 * 7 * 7 * 3 + 16 * 7 * 7 * 25)


def test_matches_torch_flop_counter_on_efficientnet_b0():
    model = tv_models.efficientnet_b0().eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert profile(model, 64).flops == counter.get_total_flops()


def test_efficientnet_b0_numbers():
    p = profile(tv_models.efficientnet_b0(), 224)
    assert p.params == 5_288_548
    # the paper's 0.39B "FLOPS" are multiply-adds; we count 2 x MACs
    assert 0.38e9 < p.flops / 2 < 0.41e9


def test_bad_arguments():
    with pytest.raises(ValueError, match="resolution"):
        profile(nn.Conv2d(3, 3, 1), 0)
    with pytest.raises(ValueError, match="batch"):
        profile(nn.Conv2d(3, 3, 1), 8, batch=0)


def test_batch_one_counts_half_of_batch_two_even_on_a_1x1_map():
    # train-mode BatchNorm would reject one value per channel; the count is per image anyway
    model = nn.Sequential(nn.Conv2d(3, 8, 4, stride=4), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 2))
    one, two = profile(model, 4, batch=1), profile(model, 4, batch=2)
    assert (2 * one.flops, 2 * one.activation_bytes, 2 * one.largest_activation_bytes) == \
        (two.flops, two.activation_bytes, two.largest_activation_bytes)
    assert one.flops == 2 * (8 * 3 * 16 + 8 * 2) and one.largest_activation_bytes == 4 * 8


# Latency-aware scaling (issue 13, point 5): the logic only; no timing is asserted.
_SMALL = dict(step=0.5, max_phi=1.0, resolution=32, device="cpu")


def test_largest_phi_with_a_latency_budget_nothing_meets():
    assert largest_phi(math.inf, math.inf, latency_s=1e-9, **_SMALL) is None


def test_largest_phi_with_a_generous_latency_budget_gives_the_flops_and_memory_answer():
    with torch.device("meta"):
        half = efficientnet(phi=0.5, rule="compound")
    p = profile(half, 32)
    plain = largest_phi(p.flops, p.memory_bytes, **_SMALL)
    timed = largest_phi(p.flops, p.memory_bytes, latency_s=1e6, **_SMALL)
    assert plain.phi == timed.phi == 0.5 and timed.profile == plain.profile == p
    assert plain.latency_s is None and timed.latency_s > 0
    with pytest.raises(ValueError, match="latency_s"):
        largest_phi(1e9, 1e9, latency_s=0, **_SMALL)


def test_the_search_stops_at_the_first_miss_and_times_only_what_fits(monkeypatch):
    prof = sys.modules["effkernels.profile"]  # the package's `profile` attribute is the function
    timed = []

    def fake(phi, resolution, batch, rule, dtype, device, backend, seconds, **coefficients):
        timed.append((phi, resolution, batch, device, backend))
        return 0.1 * (1 + phi)  # seconds, growing with phi

    monkeypatch.setattr(prof, "measure_latency", fake)
    with torch.device("meta"):
        one = efficientnet(phi=1.0, rule="compound")
    p = profile(one, 32, batch=4)
    seen = list(scaling_candidates(p.flops, math.inf, batch=4, latency_s=0.17, backend="eager", **dict(_SMALL, max_phi=3)))
    # phi 0 and 0.5 meet 0.17 s, 1.0 misses it; the search stops there (phi 1.5 would miss the FLOPs)
    assert [(c.choice.phi, c.misses) for c in seen] == [(0.0, ""), (0.5, ""), (1.0, "latency")]
    assert [c.choice.latency_s for c in seen] == pytest.approx([0.1, 0.15, 0.2])
    assert timed == [(0.0, 32, 4, "cpu", "eager"), (0.5, 32, 4, "cpu", "eager"), (1.0, 32, 4, "cpu", "eager")]
    best = largest_phi(p.flops, math.inf, batch=4, latency_s=0.17, backend="eager", **dict(_SMALL, max_phi=3))
    assert best.phi == 0.5 and best.latency_s == pytest.approx(0.15)
    # a FLOPs miss is not timed
    timed.clear()
    seen = list(scaling_candidates(p.flops, math.inf, batch=4, latency_s=10.0, **dict(_SMALL, max_phi=3)))
    assert [(c.choice.phi, c.misses) for c in seen][-1] == (1.5, "flops") and seen[-1].choice.latency_s is None
    assert [t[0] for t in timed] == [0.0, 0.5, 1.0]


def test_scaling_command_prints_the_search(capsys):
    assert main(["scaling", "--latency-ms", "1e9", "--gflops", "100", "--resolution", "32", "--max-phi", "0",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "| phi | resolution | GFLOPs | memory MB | latency ms | misses |" in out
    assert "| 0 | 32 | 0.0" in out and "largest phi meeting every target: 0 (32 px)" in out


# The CUDA-graph timing's control flow, on the CPU with torch.cuda's graph, stream and event API faked:
# it runs for real only on a GPU, where a bug costs a rare GPU run.

class _FakeCuda:
    """Records what graph_time / capture_graph do with torch.cuda; each replay "takes" 2 ms."""

    def __init__(self, monkeypatch, end_error=None):
        self.log, test = [], self

        class Graph:
            def capture_begin(self):
                test.log.append("begin")

            def capture_end(self):
                test.log.append("end")
                if end_error:
                    raise end_error

            def replay(self):
                test.log.append("replay")

        class Stream:
            def wait_stream(self, other):
                pass

            def synchronize(self):
                test.log.append("sync")

        class Event:
            def __init__(self, enable_timing=False):
                pass

            def record(self):
                pass

            def synchronize(self):
                pass

            def elapsed_time(self, end):
                return 2.0

        import contextlib
        monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
        monkeypatch.setattr(torch.cuda, "Stream", Stream)
        monkeypatch.setattr(torch.cuda, "Event", Event)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda: Stream())

        @contextlib.contextmanager
        def stream(s):
            test.log.append("on side stream")
            try:
                yield
            finally:
                test.log.append("back")

        monkeypatch.setattr(torch.cuda, "stream", stream)


def test_graph_calls_sizes_the_graph():
    from effkernels.profile import GRAPH_MAX_CALLS, graph_calls
    assert graph_calls(10, 1e-3) == 10            # every input once: 10 ms is within 2..20 ms
    assert graph_calls(256, 1e-3) == 20           # 256 ms is too long: 20 ms of calls
    assert graph_calls(3, 1e-4) == 20             # 0.3 ms is too short: 2 ms of calls, cycling the inputs
    assert graph_calls(3, 1.0) == 1               # one call over 20 ms: one
    assert graph_calls(1, 0.0) == GRAPH_MAX_CALLS


def test_graph_time_warms_up_then_captures_then_replays(monkeypatch):
    from effkernels.profile import graph_time
    fake = _FakeCuda(monkeypatch)
    seen = []
    inputs = ["a", "b", "c"]
    t = graph_time(lambda x: fake.log.append(f"fn {x}") or seen.append(x), inputs, call_s=1e-3, seconds=0.0)
    # warm-up on the side stream, capture of every input once, back on the caller's stream, then replays
    assert fake.log[:9] == ["on side stream", "fn a", "fn b", "fn c", "sync", "begin", "fn a", "fn b", "fn c"]
    assert fake.log[9:11] == ["end", "back"] and set(fake.log[11:]) == {"replay"} and len(fake.log[11:]) == 6
    assert t == pytest.approx(2e-3 / 3)           # replay time / calls per graph


def test_capture_raises_the_first_error_and_still_ends_the_capture(monkeypatch):
    from effkernels.profile import capture_graph
    fake = _FakeCuda(monkeypatch, end_error=RuntimeError("capture invalidated"))

    def body():
        raise RuntimeError("operation not permitted when stream is capturing")

    with pytest.raises(RuntimeError, match="not permitted"):
        capture_graph(body)
    assert fake.log == ["on side stream", "sync", "begin", "end", "back"]
    with pytest.raises(RuntimeError, match="invalidated"):  # body fine, end fails: that error
        capture_graph(lambda: None)


def test_calibrate_bn_keeps_activations_normalised_and_restores_the_module():
    from effkernels.profile import calibrate_bn_
    with torch.device("cpu"):
        model = efficientnet(phi=0, rule="compound")
    momenta = [m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    calibrate_bn_(model, torch.randn(2, 3, 64, 64))
    assert not model.training
    assert [m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)] == momenta
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert 1e-2 < out.abs().mean() < 1e3  # with the default statistics B0's logits are ~1e-14
