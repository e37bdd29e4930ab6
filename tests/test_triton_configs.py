"""Tile choice of the Triton kernels: the per-device config tables (effkernels.configs), the per-kernel pick
(triton/_common.KernelConfigs), every pointwise config run once in the interpreter (the depthwise ones:
test_triton_launchers.py), and the shared activation at its extremes."""
import json
import warnings

import pytest
import torch

from effkernels import backends, configs
from helpers import DEVICE, assert_close_to_ref
import oracles

pytestmark = pytest.mark.skipif(not backends.backends_available()["triton"][0], reason="triton is not importable")

if backends.backends_available()["triton"][0]:
    import triton
    import triton.language as tl

    from effkernels.triton._common import activation

    @triton.jit
    def _activation_kernel(x_ptr, y_ptr, n, ACT: tl.constexpr, BLOCK: tl.constexpr, FAST: tl.constexpr = False):
        i = tl.arange(0, BLOCK)
        tl.store(y_ptr + i, activation(tl.load(x_ptr + i, mask=i < n), ACT, FAST), mask=i < n)

FIELDS = ("dtype", "N", "C", "H", "W", "K", "STRIDE")
CATEGORICAL = ("dtype", "K", "STRIDE")
PARAMS = ("BLOCK_C", "BLOCK_P", "num_warps", "num_stages")


def _entry(key, block_p, us=10.0):
    return {"key": list(key), "config": {"BLOCK_P": block_p, "BLOCK_C": 64, "num_warps": 4, "num_stages": 1},
            "us": us}


def _write(folder, device, kernels, **top):
    data = {"format": configs.FORMAT, "device": device, "torch": "x", "triton": "y", "date": "2026-11-30",
            "kernels": kernels, **top}
    (folder / configs.file_name(device)).write_text(json.dumps(data))


def _lookup(key, device="Test GPU"):
    return configs.lookup(device, "dwconv_nhwc", FIELDS, key, CATEGORICAL, PARAMS)


def test_file_name():
    assert configs.file_name("NVIDIA H200") == "NVIDIA_H200.json"
    assert configs.file_name("NVIDIA A100-SXM4-80GB") == "NVIDIA_A100-SXM4-80GB.json"


def test_exact_nearest_and_fallback(table_dir):
    entries = [_entry(("bf16", 128, 96, 112, 112, 3, 2), 32), _entry(("bf16", 1, 96, 112, 112, 3, 2), 16),
               _entry(("bf16", 128, 1152, 7, 7, 5, 1), 64)]
    _write(table_dir, "Test GPU", {"dwconv_nhwc": {"fields": list(FIELDS), "entries": entries}})
    assert _lookup(("bf16", 128, 96, 112, 112, 3, 2))["BLOCK_P"] == 32                 # exact
    assert _lookup(("bf16", 2, 96, 112, 112, 3, 2))["BLOCK_P"] == 16                   # nearest: batch 2 ~ 1
    assert _lookup(("bf16", 64, 112, 100, 100, 3, 2))["BLOCK_P"] == 32                 # nearest: ~ batch 128
    assert _lookup(("bf16", 128, 96, 112, 112, 5, 2)) is None                          # no entry with k = 5, s 2
    assert _lookup(("fp16", 128, 96, 112, 112, 3, 2)) is None                          # another dtype
    assert _lookup(("bf16", 128, 96, 112, 112, 3, 2), device="Other GPU") is None      # no table for it
    assert configs.lookup("Test GPU", "pointwise_conv", ("dtype",), ("bf16",), ("dtype",), ("BLOCK_M",)) is None


def test_the_picked_config_comes_from_the_table(table_dir, monkeypatch):
    """KernelConfigs.pick: table entry outside the interpreter, heuristic without one, cached per key."""
    from effkernels.triton import _common
    import effkernels.triton.dwconv_bn_act as tri

    monkeypatch.setattr(_common, "triton_interpreted", lambda: False)
    monkeypatch.setattr(_common, "device_name", lambda device: "Test GPU")
    key = ("bf16", 128, 96, 112, 112, 3, 2)
    assert tri.STRIDED.pick(key, "cuda").kwargs == tri._nchw_heuristic(key).kwargs  # no table yet
    _write(table_dir, "Test GPU", {"dwconv_strided": {"fields": list(FIELDS), "entries": [_entry(key, 16)]}})
    assert tri.STRIDED.pick(key, "cuda").kwargs["BLOCK_P"] != 16, "picks are cached until configs.reload()"
    configs.reload()
    cfg = tri.STRIDED.pick(key, "cuda")
    assert cfg.kwargs == {"BLOCK_P": 16, "BLOCK_C": 64} and cfg.num_warps == 4 and cfg.num_stages == 1
    assert tri.STRIDED.pick(key, "cuda") is cfg


@pytest.mark.parametrize("content,why", [
    ("{not json", "malformed"),
    (json.dumps({"format": 99, "kernels": {}}), "malformed"),
    (json.dumps({"format": 1, "kernels": {"dwconv_nhwc": {"fields": ["dtype"], "entries": [{"key": [1, 2]}]}}}),
     "malformed"),
])
def test_malformed_table_warns_once(table_dir, content, why):
    (table_dir / configs.file_name("Test GPU")).write_text(content)
    with pytest.warns(UserWarning, match=why):
        assert _lookup(("bf16", 1, 96, 112, 112, 3, 2)) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _lookup(("bf16", 1, 96, 112, 112, 3, 2)) is None  # read once: no second warning


@pytest.mark.parametrize("kernel_table,why", [
    ({"fields": ["dtype", "C", "H", "W", "K", "STRIDE"], "entries": []}, "keyed by"),   # the key gained N since
    ({"fields": list(FIELDS), "entries": [{"key": ["bf16", 1, 96, 112, 112, 3, 2],
                                           "config": {"BLOCK_Q": 8}}]}, "does not take"),
])
def test_stale_table_warns_once_and_falls_back(table_dir, kernel_table, why):
    _write(table_dir, "Test GPU", {"dwconv_nhwc": kernel_table})
    with pytest.warns(UserWarning, match=why):
        assert _lookup(("bf16", 1, 96, 112, 112, 3, 2)) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _lookup(("bf16", 1, 96, 112, 112, 3, 2)) is None


def test_shipped_tables_parse():
    """Every table committed under effkernels/configs/ is well-formed and keyed as the kernels are today."""
    import pathlib

    from effkernels.triton import dwconv_bn_act, pointwise_conv

    kernels = {k.name: k for k in (dwconv_bn_act.NHWC, dwconv_bn_act.STRIDED, pointwise_conv.TABLE)}
    for path in pathlib.Path(configs.__file__).parent.glob("*.json"):
        parsed = configs._parse(str(path), json.loads(path.read_text()))
        for name, t in parsed.items():
            assert name in kernels, f"{path.name}: unknown kernel {name}"
            assert t["fields"] == kernels[name].fields, f"{path.name}: {name} keyed by {t['fields']}"
            assert all(p in kernels[name].params() for cfg in t["entries"].values() for p in cfg), path.name


@pytest.mark.triton
@pytest.mark.skipif(not backends.triton_interpreted() and DEVICE.type != "cuda", reason="triton cannot run here")
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
def test_every_pointwise_config_runs(layout):
    """Each candidate GEMM tile, pinned, with the scale prologue and the residual epilogue, on a shape with
    several M and N tiles and a K tail (C_in = 40 is not a multiple of BLOCK_K = 32 / 64)."""
    import effkernels.triton.pointwise_conv as tri

    x = torch.randn(2, 40, 9, 15, device=DEVICE, dtype=torch.float16)
    res = torch.randn(2, 72, 9, 15, device=DEVICE, dtype=torch.float16)
    if layout == "channels_last":
        x, res = (t.contiguous(memory_format=torch.channels_last) for t in (x, res))
    w = (torch.randn(72, 40, device=DEVICE) / 6).half()
    b = torch.randn(72, device=DEVICE).half()
    scale = torch.rand(2, 40, device=DEVICE)
    ref = oracles.pointwise_conv(x, w, b, "silu", scale, res)
    for cfg in tri.GPU_CONFIGS:
        out = tri.pointwise_conv(x, w, b, 3, scale, res, config=cfg)
        assert_close_to_ref(out, ref, torch.float16, what=f"out with {cfg}")


@pytest.mark.triton
@pytest.mark.skipif(not backends.triton_interpreted() and DEVICE.type != "cuda", reason="triton cannot run here")
@pytest.mark.parametrize("act", ["silu", "sigmoid"])
def test_fast_activation_extremes(act):
    """The one-exp2, one-fast-reciprocal SiLU / sigmoid against torch, including +-inf, NaN, and |x| where
    exp2 overflows: the same infinities and NaNs as torch, relative error within the fp32 tolerance (1e-5)
    elsewhere (x * log2(e) rounds in fp32, so the error grows as ~|x| * 6e-8 in the tails: 1.7e-6 at -29)."""
    from effkernels._common import ACTIVATIONS

    specials = [float("inf"), float("-inf"), float("nan"), 0.0, -0.0, 88.0, -88.0, 89.0, -89.0, 100.0, -100.0,
                1e30, -1e30, 1e-30, -1e-30]
    x = torch.cat([torch.tensor(specials), torch.linspace(-30, 30, 241)]).to(DEVICE)
    y = torch.empty_like(x)
    _activation_kernel[(1,)](x, y, x.numel(), ACT=ACTIVATIONS[act], BLOCK=512)
    ref = (torch.nn.functional.silu if act == "silu" else torch.sigmoid)(x.double()).cpu()
    y = y.double().cpu()
    assert torch.equal(torch.isnan(y), torch.isnan(ref)), (x.cpu()[torch.isnan(y) != torch.isnan(ref)])
    fin = torch.isfinite(ref)
    assert torch.equal(y[~fin & ~torch.isnan(ref)], ref[~fin & ~torch.isnan(ref)])
    rel = ((y[fin] - ref[fin]).abs() / ref[fin].abs().clamp_min(1e-30))
    assert rel.max() <= 1e-5, (rel.max(), x.cpu()[fin][rel.argmax()])


@pytest.mark.triton
@pytest.mark.skipif(DEVICE.type != "cuda", reason="needs CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_one_mufu_silu_extremes(dtype):
    """The SiLU the kernels apply before fp16/bf16 outputs (activation(..., FAST=True)): x/2 * (1 + tanh(x/2))
    with tanh.approx.f32, inline PTX that only a GPU runs. The same infinities and NaNs as torch (silu(-inf)
    = nan); elsewhere the error is |x|/2 times tanh.approx's, whose maximum relative error was measured at
    1.1e-5 (NVIDIA developer forum, "Hardware-accelerated tanh() on Turing", 2021): at most 6e-6 * |x| + 1e-6
    in fp32, which rounded to fp16 / bf16 stays within the tests' tolerances (helpers.TOL)."""
    from effkernels._common import ACTIVATIONS

    specials = [float("inf"), float("-inf"), float("nan"), 0.0, -0.0, 88.0, -88.0, 89.0, -89.0, 100.0, -100.0,
                1e30, -1e30, 1e-30, -1e-30]
    x = torch.cat([torch.tensor(specials), torch.linspace(-30, 30, 481)]).to(DEVICE)
    y = torch.empty_like(x)
    _activation_kernel[(1,)](x, y, x.numel(), ACT=ACTIVATIONS["silu"], BLOCK=512, FAST=True)
    ref = torch.nn.functional.silu(x.double()).cpu()
    y, x = y.double().cpu(), x.double().cpu()
    assert torch.equal(torch.isnan(y), torch.isnan(ref)), x[torch.isnan(y) != torch.isnan(ref)]
    fin = torch.isfinite(ref)
    assert torch.equal(y[~fin & ~torch.isnan(ref)], ref[~fin & ~torch.isnan(ref)])
    err = (y[fin] - ref[fin]).abs()
    assert (err <= 6e-6 * x[fin].abs() + 1e-6).all(), (err.max(), x[fin][err.argmax()])
    small = fin & (x.abs() < 1e4)  # (1e30 overflows fp16)
    assert_close_to_ref(y[small].to(dtype), ref[small], dtype, what=f"silu rounded to {dtype}")

