"""The benchmark suite's plumbing on the CPU: options, model-level cases, the provider check, what one
call launches, the ONNX runtimes' export-and-check path, the report with launch and device times
(from synthetic JSON) and a tiny sweep end to end. No timing is asserted."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_cases  # noqa: E402
import bench_config  # noqa: E402
import bench_harness  # noqa: E402
import report  # noqa: E402


def _cfg(**flags):
    return bench_config.from_flags(lambda name: flags.get(name))


# ---------------------------------------------------------------------------------------------
# Options and cases

def test_model_level_options_and_cases():
    cfg = _cfg(**{"model-batch": "8,1", "models": "efficientnet_v2_s", "model-phi": "0,2", "resolution": "32"})
    assert cfg.model_batches == (1, 8) and cfg.models == ("efficientnet_v2_s",)
    cases = bench_cases.model_cases(cfg.model_phis, cfg.model_batches, cfg.models, cfg.resolution)
    assert [c.id for c in cases] == ["b0-32-n1", "b0-32-n8", "b2-32-n1", "b2-32-n8", "v2_s-32-n1", "v2_s-32-n8"]
    assert {c.param("model") for c in cases} == {"efficientnet_b0", "efficientnet_b2", "efficientnet_v2_s"}
    assert cases[-1].phi == bench_config.EXTRA_MODELS["efficientnet_v2_s"][1] and cases[-1].batch == 8
    # the paper resolution per model unless overridden
    paper = bench_cases.model_cases([1], [2], ["tf_efficientnet_b0"], 0)
    assert [(c.id, c.resolution) for c in paper] == [("b1-240-n2", 240), ("tf_b0-224-n2", 224)]
    assert _cfg(models="none").models == ()
    with pytest.raises(ValueError, match="--bench-model-batch"):
        _cfg(**{"model-batch": "0"})
    with pytest.raises(ValueError, match="--bench-models"):
        _cfg(models="resnet50")


def test_providers_per_level_and_pass():
    assert "eager+graph" in bench_config.providers_for("model")
    for level in ("op", "block"):
        assert not set(bench_config.providers_for(level)) & set(bench_config.MODEL_ONLY)
    assert bench_config.split("effkernels-cuda+graph") == ("effkernels-cuda", "graph")
    assert bench_config.tier("effkernels-triton+compile") == 1 and bench_config.tier("effkernels-triton+graph") == 0
    assert bench_config.tier("compile-max-autotune") == 2 and bench_config.tier("openvino") == 0
    cfg = _cfg()
    if cfg.device == "cpu":
        assert "CUDA graphs" in bench_harness.provider_skip_reason("eager+graph", cfg)
        assert "CUDA graphs" in bench_harness.provider_skip_reason("effkernels-cuda+graph", cfg)
        assert bench_harness.provider_skip_reason("eager", cfg) == ""


# ---------------------------------------------------------------------------------------------
# A tiny model-level case (bench_cases.build patched to a small module): check, runtimes, memory skip

class _Tiny(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.SiLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


@pytest.fixture
def tiny_case(monkeypatch):
    case = bench_cases.Case("model", "efficientnet", 0, 16, "tiny-16-n3", "tiny N=3 3x16x16", 3,
                            (("model", "tiny"), ("hw", 16)))
    monkeypatch.setattr(bench_cases, "build", lambda c: (_Tiny(), (c.batch, 3, 16, 16), "torch.nn"))
    bench_harness._last.clear()
    yield case
    bench_harness._last.clear()


def test_a_wrong_provider_fails_and_is_recorded(tiny_case, monkeypatch):
    cfg = _cfg(dtype="fp32")
    with torch.no_grad():
        ready = bench_harness.prepare(tiny_case, "eager", cfg, record_wrong=None)
        assert ready.extra["rel_err"] <= ready.target.tol and ready.extra["batch"] == 3
        assert ready.target.rows == 3  # model level: up to MODEL_CHECK_ROWS images checked
        monkeypatch.setattr(bench_harness, "make_provider",
                            lambda case, p, state, cfg: bench_harness.Built(lambda x: state.module(x) + 1))
        wrong = []
        with pytest.raises(pytest.fail.Exception, match="WRONG"):
            bench_harness.prepare(tiny_case, "eager", cfg, record_wrong=wrong.append)
    assert wrong and wrong[0]["status"] == "wrong" and wrong[0]["rel_err"] > wrong[0]["tol"]


def test_a_model_that_does_not_fit_skips_with_the_estimate(tiny_case, monkeypatch):
    monkeypatch.setattr(bench_harness, "_free_bytes", lambda device: 1000)
    with pytest.raises(pytest.skip.Exception, match=r"GiB .*largest activation.* free"):
        bench_harness.prepare(tiny_case, "eager", _cfg(dtype="fp32"), record_wrong=None)


@pytest.mark.parametrize("runtime", bench_config.RUNTIMES)
def test_runtime_export_and_check(tiny_case, runtime):
    """The ONNX export (opset 17) of the case's module, run by the runtime, checked like every provider."""
    pytest.importorskip("onnx", reason="onnx is not installed (the bench extra)")
    pytest.importorskip(runtime, reason=f"{runtime} is not installed (the bench extra)")
    cfg = _cfg(dtype="fp32")
    if cfg.device != "cpu":
        pytest.skip("the runtimes are timed in CPU sessions")
    with torch.no_grad():
        ready = bench_harness.prepare(tiny_case, runtime, cfg, record_wrong=None)
    assert ready.extra["rel_err"] <= ready.target.tol
    x = ready.ring[0]  # what a runtime user feeds: contiguous fp32 NCHW numpy
    assert type(x).__module__ == "numpy" and x.dtype.name == "float32" and x.flags.c_contiguous
    assert ready.built.fn(ready.ring[1]).shape == (3, 10)
    assert "fp32" in bench_harness.provider_skip_reason(runtime, _cfg(dtype="fp16"))
    if runtime == "onnxruntime":
        assert "fp32" in bench_harness.provider_skip_reason(runtime, _cfg(dtype="bf16"))


def test_kernels_per_call_counts_the_operators_called_from_python():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1)).eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        count, names, what = bench_harness.kernels_per_call(lambda: m(x), "cpu")
    assert count == 3 and dict(map(tuple, names)) == {"aten::conv2d": 2, "aten::relu": 1}
    assert "operators" in what


def test_device_time_on_the_cpu_is_the_launch_time():
    built = bench_harness.Built(lambda x: x)
    assert bench_harness.device_time(built, [torch.zeros(1)], 0.0123, _cfg()) == (0.0123, "CPU: device = launch")


def test_device_time_on_cuda_records_why_there_is_none(monkeypatch):
    """The CUDA branches, with the graph timing faked (effkernels.profile's tests cover graph_time)."""
    import dataclasses
    cfg = dataclasses.replace(_cfg(), device="cuda", case_time=0.05)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    calls = []
    monkeypatch.setattr(bench_harness, "graph_time", lambda fn, ring, launch_s, seconds: calls.append(
        (fn, len(ring), launch_s, seconds)) or 1e-5)
    fn = bench_harness.Built(lambda x: x)
    assert bench_harness.device_time(fn, [1, 2], 1e-4, cfg) == (1e-5, "CUDA graph replay")
    assert calls == [(fn.fn, 2, 1e-4, 0.05)]
    graphed = bench_harness.Built(fn.fn, no_capture="a CUDA graph replay already (launch time shown)")
    assert bench_harness.device_time(graphed, [1], 1e-4, cfg) == (None, graphed.no_capture) and len(calls) == 1

    def fails(*args, **kwargs):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore text")
    monkeypatch.setattr(bench_harness, "graph_time", fails)
    t, note = bench_harness.device_time(fn, [1], 1e-4, cfg)
    assert t is None and note == "capture failed: RuntimeError: CUDA error: operation not permitted when stream is capturing more text"


def test_graphed_copies_the_input_and_replays(monkeypatch):
    log = []

    class Graph:
        def replay(self):
            log.append("replay")

    def capture(body, warmup):
        warmup()
        log.append("capture")
        return Graph(), body()

    monkeypatch.setattr(bench_harness, "capture_graph", capture)
    seen = []
    g = bench_harness.Graphed(lambda x: seen.append(x.clone()) or x * 2, torch.ones(2))
    assert len(seen) == 4 and log == ["capture"]  # three warm-up calls, one captured
    x = torch.full((2,), 5.0)
    assert g(x) is g.y and torch.equal(g.x, x) and log == ["capture", "replay"]


# ---------------------------------------------------------------------------------------------
# The report, from synthetic JSON

def _bench(level, case, provider, launch, device=None, **extra):
    info = dict(level=level, phi=0, case=case, shape=f"shape of {case}", kind="dwconv" if level == "op" else "mbconv",
                provider=provider, status="ok", median_s=launch, device_s=device, gbps=1.0, pct_copy_bw=2.0,
                tflops=0.5, peak_mem_mb=3.0, setup_s=0.1, kernels=2, kernel_names=[["k_a", 1], ["k_b", 1]],
                kernels_what="GPU kernels", batch=8, resolution=224, model=None)
    info.update(extra)
    return {"stats": {"median": launch, "iqr": 0.0}, "extra_info": info}


def _data(device: str, benchmarks, outcomes=()):
    return {"machine_info": {}, "commit_info": {}, "datetime": None, "benchmarks": benchmarks,
            "effkernels": {"device": {"device": device, "name": "test device", "copy_bw_gbps": 100.0},
                           "configs": [{"dtype": "bf16", "layout": "channels_last", "batch": 8,
                                        "model_batches": [1, 8], "mode": "full"}],
                           "outcomes": list(outcomes)}}


def test_report_on_cuda_shows_launch_and_device_times():
    us = 1e-6
    data = _data("cuda", [
        _bench("op", "dw1", "eager", 100 * us, 10 * us),
        _bench("op", "dw1", "effkernels-cuda", 200 * us, 5 * us),
        _bench("op", "dw1", "effkernels-triton", 50 * us, None, device_note="capture failed: RuntimeError: sync"),
        _bench("model", "b0-224-n8", "eager", 8e-3, 4e-3, model="efficientnet_b0", images_per_s=1000.0,
               images_per_s_device=2000.0),
        _bench("model", "b0-224-n8", "eager+graph", 4e-3, None, model="efficientnet_b0", images_per_s=2000.0,
               device_note="a CUDA graph replay already (launch time shown)"),
        _bench("model", "tf_b0-224-n8", "eager", 8e-3, 4e-3, model="tf_efficientnet_b0", images_per_s=1000.0),
        _bench("model", "tf_b0-224-n8", "eager+graph", 1e-3, None, model="tf_efficientnet_b0", images_per_s=8000.0),
    ], outcomes=[dict(level="model", phi=0, case="b0-224-n1", shape="B0 N=1", kind="efficientnet",
                      provider="effkernels-cuda+compile", status="error", reason="torch._dynamo graph break")])
    text = report.render(data)
    assert "| case | provider | launch | device | vs eager (device) | vs eager (launch) |" in text
    # device speedup 10/5 = 2x, launch speedup 100/200 = 0.5x, side by side in the row and the summary
    assert "| shape of dw1 | effkernels-cuda | 200.0 us | 5.0 us | 2.00x | 0.50x |" in text
    assert "| op | effkernels-cuda | 2.00x (0.50x) |" in text
    # no device time: rates marked, the reason listed
    assert "| shape of dw1 | effkernels-triton | 50.0 us | - | - | 2.00x | - | 1.0* |" in text
    assert "effkernels-triton, 1 case(s): capture failed: RuntimeError: sync" in text
    # model level: latency and img/s, device columns, errors shown
    assert "| model | batch | provider | latency | img/s | device latency | img/s (device) |" in text
    assert "| b0 224 px | 8 | eager | 8.000 ms | 1000.0 | 4.000 ms | 2000.0 | 1.00x |" in text
    assert "| b0 224 px | 8 | eager+graph | 4.000 ms | 2000.0 | - | - | 2.00x |" in text
    assert "| tf_b0 224 px | 8 | eager+graph | 1.000 ms | 8000.0 | - | - | 8.00x |" in text
    assert "| model | eager+graph | - (2.00x) |" in text  # the summary's B0 is B0's: tf_b0 stays out of it
    assert "**ERROR**: torch._dynamo graph break" in text
    assert "`k_a` x1" in text  # what one call launches


def test_report_on_the_cpu_has_one_time_column(tmp_path):
    data = _data("cpu", [_bench("block", "blk", "eager", 2e-3, 2e-3, kernels_what="torch operators"),
                         _bench("block", "blk", "effkernels-cpu", 1e-3, 1e-3, kernels_what="torch operators"),
                         _bench("model", "b0-224-n8", "eager", 8e-3, 8e-3, model="efficientnet_b0",
                                images_per_s=1000.0)])
    text = report.render(data)
    assert "| case | provider | time | vs eager | vs compile | GB/s | % copy BW | TFLOP/s | ops | setup s |" in text
    assert "| shape of blk | effkernels-cpu | 1.000 ms | 2.00x |" in text
    assert "device time = launch time" in text and "| device |" not in text
    assert "| model | batch | provider | latency | img/s | vs eager | vs compile | ops | setup s |" in text
    pytest.importorskip("matplotlib")
    assert report.plot(data, str(tmp_path / "plot.png")).startswith("plot:") and (tmp_path / "plot.png").stat().st_size


# ---------------------------------------------------------------------------------------------
# A tiny sweep end to end on the CPU (the model level at 32 px, one op and one block shape)

def test_tiny_cpu_sweep_end_to_end(tmp_path):
    pytest.importorskip("torchvision")
    if torch.cuda.is_available():
        pytest.skip("the sweep would run on the GPU; this test covers the CPU path")
    out = tmp_path / "bench.json"
    env = dict(os.environ, EFFKERNELS_BENCH_THREADS="1")
    env.pop("TRITON_INTERPRET", None)
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only", "-q", "-p", "no:cacheprovider",
           "--bench-phi", "0", "--bench-model-phi", "0", "--bench-resolution", "32", "--bench-batch", "1",
           "--bench-model-batch", "1,2", "--bench-op-shapes", "1", "--bench-blocks", "1", "--bench-case-time", "0.01",
           "--bench-providers", "eager,eager+graph,effkernels-cpu,onnxruntime,openvino",
           "-k", "dw or pw or stage or model", f"--benchmark-json={out}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = report.merge([str(out)])
    timed, outcomes = report.rows_of(data)
    ok = {(r["level"], r["case"], r["provider"]): r for r in timed}
    for key in [("model", "b0-32-n1", "eager"), ("model", "b0-32-n2", "eager"), ("block", None, "eager"),
                ("op", None, "eager")]:
        rows = [r for k, r in ok.items() if k[0] == key[0] and k[2] == key[2] and key[1] in (None, k[1])]
        assert rows, key
        for r in rows:
            assert r["device_s"] == r["median_s"] and r["device_note"] == "CPU: device = launch"
            assert r["kernels"] > 0 and r["kernel_names"]
    model = ok[("model", "b0-32-n2", "eager")]
    assert model["batch"] == 2 and model["images_per_s"] > 0 and model["rel_err"] <= model["tol"]
    skipped = {(o["case"], o["provider"]): o["reason"] for o in outcomes if o["status"] == "skipped"}
    assert "CUDA graphs" in skipped[("b0-32-n1", "eager+graph")]
    for runtime in bench_config.RUNTIMES:  # timed when installed, else skipped with the reason
        row = ok.get(("model", "b0-32-n1", runtime))
        assert row or "not installed" in skipped[("b0-32-n1", runtime)]
    text = report.render(data)
    assert "## model level" in text and "| b0 32 px | 2 | eager |" in text
    json.dumps(data)  # the merged JSON stays serialisable
