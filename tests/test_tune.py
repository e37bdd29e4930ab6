"""The tuner's plumbing (python -m effkernels.tune), in the Triton interpreter on one tiny MBConv block: the keys
it records are the ones the launchers ask for, every kernel can be timed, a two-config space is timed and its
winner written to a table that effkernels.configs reads back and the kernel then picks. Timing on the CPU is
wall clock (a check of the plumbing, not a measurement); the winner is decided by an injected timer."""
import json

import pytest
import torch

from effkernels import backends, configs
from effkernels.scaling import BlockShape

pytestmark = pytest.mark.skipif(not (backends.backends_available()["triton"][0] and backends.triton_interpreted()),
                                reason="runs the Triton kernels in the interpreter (no GPU: tests/conftest.py)")

# Stage-2-like block, tiny: 8 -> 16 -> 8 channels on a 6x6 map, k3, SE, residual.
TINY = BlockShape(stage=2, index=1, expand_ratio=2, in_channels=8, expanded_channels=16, out_channels=8,
                  squeeze_channels=2, kernel=3, stride=1, in_hw=6, out_hw=6)


@pytest.fixture
def tune(monkeypatch):
    from effkernels import tune

    monkeypatch.setattr(tune, "distinct_blocks", lambda model, resolution=None: [TINY])
    return tune


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def test_every_kernel_has_a_runner(tune):
    tables = tune.kernels()
    assert tables, "no KernelConfigs found in effkernels.triton"
    assert not [n for n, t in tables.items() if t.make_runner is None], "kernels without @<table>.runner"


def test_runners_ask_for_the_recorded_key(tune):
    """Each key recorded from the block rebuilds, through its kernel's runner, inputs for which the launcher asks
    for that same key; and two configs of it compute the same output."""
    tables = tune.kernels()
    keys = tune.model_keys("tiny", 1, torch.float32, torch.channels_last, "cpu", tables)
    names = {n for n, _ in keys}
    assert {"dwconv_nhwc", "pointwise_conv"} <= names, keys  # the MBConv's depthwise and its two 1x1 GEMMs
    assert len(keys) == len(set(keys)) and all(len(k) == len(tables[n].fields) for n, k in keys)
    for name, key in keys:
        run = tables[name].make_runner(key, "cpu")
        with tune.recording(tables) as seen:
            reference = _first(run(None))
        assert list(seen) == [(name, key)]
        other = tables[name].all_configs()[1]
        torch.testing.assert_close(_first(run(other)), reference)


def test_tune_two_configs_write_and_pick(tune, table_dir, monkeypatch):
    from effkernels.triton import _common

    tables = tune.kernels()
    name, key = tune.model_keys("tiny", 1, torch.float32, torch.channels_last, "cpu", tables)[0]
    table = tables[name]
    first, second = table.all_configs()[:2]
    monkeypatch.setattr(table, "candidates", lambda key: [first, second])
    monkeypatch.setattr(table, "heuristic", lambda key: first)

    timed = []

    def timer(calls):  # runs the calls for real (wall clock), then says the second config is twice as fast
        assert tune.wall_time_us(calls, trials=1) > 0
        timed.append(len(calls))
        return 100.0 if len(timed) % 2 else 50.0

    results = tune.tune(["tiny"], [1], ["fp32"], ["channels_last"], "cpu", [name], timer=timer)
    keys = list(results[name])
    assert key in keys and results["_left"] == []
    assert timed == [1, 1] * len(keys), "two configs timed per key (no ring on the CPU; the heuristic is the first)"
    path = tune.write_table(results, "cpu")
    assert path == str(table_dir / "cpu.json")

    data = json.loads((table_dir / "cpu.json").read_text())
    assert data["device"] == "cpu" and data["torch"] == torch.__version__ and data["triton"] and data["date"]
    assert list(data["kernels"]) == [name]
    entries = data["kernels"][name]["entries"]
    assert [tuple(e["key"]) for e in entries] == keys
    assert all(e["us"] == 50.0 and e["heuristic_us"] == 100.0 and e["config"] == tune.config_dict(second)
               for e in entries)

    monkeypatch.setattr(_common, "triton_interpreted", lambda: False)  # pick from tables, as on a GPU
    assert tune.config_dict(table.pick(key, "cpu")) == tune.config_dict(second)
    assert tune.config_dict(table.pick(key[:1] + (2,) + key[2:], "cpu")) == tune.config_dict(second)  # nearest


def test_merge_keeps_other_keys_and_budget_stops(tune, table_dir):
    entry = {"key": ["fp32", 1, 16, 6, 6, 3, 1], "config": {"BLOCK_P": 32, "BLOCK_C": 64, "num_warps": 4,
                                                              "num_stages": 1}, "us": 1.0}
    fields = list(tune.kernels()["dwconv_nhwc"].fields)
    configs.write(str(table_dir / "cpu.json"), "cpu", {"dwconv_nhwc": {"fields": fields, "entries": [entry]}},
                  {"torch": "old", "triton": "old"})
    results = tune.tune(["tiny"], [1, 2], ["fp32"], ["channels_last"], "cpu", budget=1e-9)
    assert results["_left"] == [("tiny", 1, "fp32", "channels_last"), ("tiny", 2, "fp32", "channels_last")]
    results["dwconv_nhwc"][("fp32", 4, 16, 6, 6, 3, 1)] = {"config": entry["config"], "us": 2.0, "failed": {}}
    tune.write_table(results, "cpu")
    data = json.loads((table_dir / "cpu.json").read_text())
    assert [e["key"][1] for e in data["kernels"]["dwconv_nhwc"]["entries"]] == [1, 4]
    assert data["torch"] == torch.__version__
    assert "the budget ended before: tiny 1 fp32 channels_last" in tune.summary(results)


def test_list(tune, capsys):
    assert tune.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in tune.kernels():
        assert out.count(f"{name}: key") == 1
    assert "CUDA kernels" in out


def test_device_time_with_stand_ins_for_cuda(tune, monkeypatch):
    """device_time_us's bookkeeping (warm-up, passes per graph, replays, per-call division) with stand-ins for
    CUDA graphs, streams and events on a fake clock; the GPU check runs the real thing."""
    import contextlib
    import types

    clock, capturing = [0.0], []

    class Graph:
        def __init__(self):
            self.launches = []

        def replay(self):
            for fn in self.launches:
                fn(replay=True)

    class Event:
        def __init__(self, enable_timing=False):
            self.t = None

        def record(self):
            self.t = clock[0]

        def synchronize(self):
            pass

        def elapsed_time(self, end):
            return end.t - self.t

    @contextlib.contextmanager
    def graph(g):
        capturing.append(g)
        yield
        capturing.pop()

    cuda = types.SimpleNamespace(CUDAGraph=Graph, graph=graph, Event=Event, synchronize=lambda: None,
                                 Stream=lambda: types.SimpleNamespace(wait_stream=lambda s: None),
                                 stream=lambda s: contextlib.nullcontext(), current_stream=lambda: None)
    monkeypatch.setattr(tune.torch, "cuda", cuda)
    graphs = []

    def kernel(replay=False):  # 4 us on the device per launch
        if capturing and not replay:
            capturing[-1].launches.append(kernel)
            if capturing[-1] not in graphs:
                graphs.append(capturing[-1])
        else:
            clock[0] += 0.004

    assert tune.device_time_us([kernel] * 3, rep_ms=2.0) == pytest.approx(4.0)
    assert [len(g.launches) for g in graphs] == [3, 3 * 84]  # one pass, then passes for ~1 ms per replay


def test_ring_exceeds_twice_the_l2(tune, monkeypatch):
    import types

    allocated = [0]

    def make_runner(key, device):
        allocated[0] += 3 << 20  # 3 MiB of inputs per set
        return lambda config: None

    props = types.SimpleNamespace(L2_cache_size=50 << 20)
    monkeypatch.setattr(tune.torch.cuda, "memory_allocated", lambda device: allocated[0])
    monkeypatch.setattr(tune.torch.cuda, "get_device_properties", lambda device: props)
    runs = tune._ring(types.SimpleNamespace(make_runner=make_runner), None, torch.device("cuda"))
    assert len(runs) == 34  # ceil(2 * 50 / 3) sets of 3 MiB
