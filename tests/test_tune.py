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
