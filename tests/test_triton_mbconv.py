"""The Triton MBConv block's two ways to run its 1x1 convs (triton/mbconv.py): library GEMMs (expand
pre-activation + the depthwise prologue; project into an output the depthwise kernel initialised, with
per-image weights W' = W * s[n]) and the fused Triton GEMMs, every combination against torchvision's block
in float64, the launches each makes, and the rule that picks them."""
import copy

import pytest
import torch

from effkernels import backends, configs
from effkernels.ops.mbconv import mbconv
from helpers import DEVICE, assert_close_to_ref
from op_cases import MB_ACTS
from test_mbconv import _kernels, _params, _torchvision_block

pytestmark = [pytest.mark.usefixtures("on_device"),
              pytest.mark.skipif(not backends.triton_interpreted() and DEVICE.type != "cuda",
                                 reason="triton cannot run here")]

if backends.backends_available()["triton"][0]:
    import effkernels.triton.mbconv as tm

PATHS = [(True, True), (True, False), (False, True), (False, False)]  # (library expand, library project)


@pytest.fixture
def pin_paths(monkeypatch):
    def pin(expand_lib, project_lib):
        def pinned(x, c_exp, c_out, out_h, out_w, se, has_expand, config=None):
            ok = x.is_contiguous(memory_format=torch.channels_last)
            return expand_lib and has_expand and ok, project_lib and ok
        monkeypatch.setattr(tm, "gemm_paths", pinned)
    return pin


# (expand, k, stride, C_in, C_out, H, W, SE): with a residual (stride 1, C_in == C_out) and without, k 5
# stride 2 on an odd map, expand ratio 1, no SE, and C_out above H * W.
BLOCKS = [(6, 3, 1, 16, 16, 7, 8, True), (6, 5, 2, 16, 24, 9, 9, True), (1, 3, 1, 16, 8, 6, 7, True),
          (4, 3, 1, 8, 8, 5, 5, False), (4, 3, 1, 8, 40, 4, 5, True)]


def _run(block_args, dtype, channels_last=True):
    expand, k, stride, c_in, c_out, h, w, se = block_args
    block = _torchvision_block(expand, k, stride, c_in, c_out, MB_ACTS[0])
    p = list(_params(block, dtype, DEVICE))
    if not se:
        p[6:10] = [None] * 4
        block.block = torch.nn.Sequential(*[m for m in block.block if m.__class__.__name__ != "SqueezeExcitation"])
    x = torch.randn(2, c_in, h, w)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = copy.deepcopy(block).double()(x.double())
        act, se_act, gate = MB_ACTS[0]
        return mbconv(x.to(dtype), *p, act, se_act, gate, backend="triton"), ref


# Every path on the first two blocks, then one path per block, rotating (CI time).
_PATH_IDS = ["lib-lib", "lib-triton", "triton-lib", "triton-triton"]
_CASES = ([(p, b) for b in BLOCKS[:2] for p in PATHS] + [(PATHS[i % 4], b) for i, b in enumerate(BLOCKS[2:])])


@pytest.mark.parametrize("paths,block", _CASES, ids=lambda v: _PATH_IDS[PATHS.index(v)] if v in PATHS else
                         "e{}k{}s{}c{}-{}hw{}x{}{}".format(*v[:7], "se" * v[7]))
def test_every_path_matches_torchvision(pin_paths, paths, block):
    pin_paths(*paths)
    out, ref = _run(block, torch.float32)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert_close_to_ref(out, ref, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_library_path_half_precision(pin_paths, dtype):
    pin_paths(True, True)
    for block in BLOCKS[:2]:
        out, ref = _run(block, dtype)
        assert out.dtype == dtype
        assert_close_to_ref(out, ref, dtype)


@pytest.mark.parametrize("paths,expected", [((True, True), ["aten.mm.default", "_dwconv_nhwc_kernel",
                                                              "_se_excite_kernel", "aten.baddbmm_.default"]),
                                             ((True, False), ["aten.mm.default", "_dwconv_nhwc_kernel",
                                                              "_se_excite_kernel", "_pointwise_conv_kernel"]),
                                             ((False, True), ["_pointwise_conv_kernel", "_dwconv_nhwc_kernel",
                                                              "_se_excite_kernel", "aten.baddbmm_.default"])])
def test_launches_per_path(pin_paths, paths, expected):
    """Four device launches on every path, nothing hidden (no copies, fills or casts), no effkernels op
    through the torch dispatcher."""
    pin_paths(*paths)
    block = _torchvision_block(6, 3, 1, 16, 16, MB_ACTS[0])
    p = _params(block, torch.float32, DEVICE)
    x = torch.randn(2, 16, 7, 7).contiguous(memory_format=torch.channels_last)
    launched, hidden, dispatched = _kernels(lambda: mbconv(x, *p, backend="triton"))
    assert launched == expected and hidden == [] and dispatched == [], (launched, hidden, dispatched)


def test_rule():
    """Library GEMMs on dense channels_last blocks, except the project of an SE block with fewer output pixels
    than output channels; everything else on the fused Triton GEMMs."""
    x = torch.randn(2, 16, 14, 14).contiguous(memory_format=torch.channels_last)
    assert tm.gemm_paths(x, 96, 24, 7, 7, True, True) == (True, True)       # 49 pixels >= 24 channels
    assert tm._gemm_rule(("bf16", 128, 49, 192, 1152, 320, True)).kwargs == {"EXPAND_LIB": 1, "PROJECT_LIB": 0}
    assert tm._gemm_rule(("bf16", 128, 49, 192, 1152, 320, False)).kwargs == {"EXPAND_LIB": 1, "PROJECT_LIB": 1}
    assert tm.gemm_paths(x, 16, 24, 7, 7, True, False) == (False, True)     # no expand conv to run
    assert tm.gemm_paths(x.contiguous(), 96, 24, 7, 7, True, True) == (False, False)   # NCHW
    assert tm.gemm_paths(x[:, :, :, 1:], 96, 24, 7, 7, True, True) == (False, False)   # a view: no GEMM view
    assert tm.gemm_paths(x[:, :1].contiguous(memory_format=torch.channels_last), 6, 1, 7, 7, True, True) \
        == (False, False)  # C_in = 1 is not told apart from NCHW


def test_table_entry_overrides_the_rule(tmp_path, monkeypatch):
    """A tuned table entry (the GPU run's verdict) picks the paths, outside the interpreter."""
    import json

    from effkernels.triton import _common

    monkeypatch.setenv("EFFKERNELS_CONFIG_DIR", str(tmp_path))
    monkeypatch.setattr(_common, "triton_interpreted", lambda: False)
    monkeypatch.setattr(_common, "device_name", lambda device: "Test GPU")
    configs.reload()
    key = ["fp32", 2, 49, 16, 96, 24, True]
    table = {"fields": list(tm.PATHS.fields),
             "entries": [{"key": key, "config": {"EXPAND_LIB": 0, "PROJECT_LIB": 0}, "us": 1.0}]}
    (tmp_path / configs.file_name("Test GPU")).write_text(json.dumps(
        {"format": configs.FORMAT, "device": "Test GPU", "kernels": {"mbconv_gemms": table}}))
    try:
        x = torch.randn(2, 16, 7, 7).contiguous(memory_format=torch.channels_last)
        assert tm.gemm_paths(x, 96, 24, 7, 7, True, True) == (False, False)
        assert tm.gemm_paths(x, 96, 24, 7, 7, False, True) == (True, True)  # no entry of that class: the rule
    finally:
        monkeypatch.delenv("EFFKERNELS_CONFIG_DIR")
        configs.reload()
