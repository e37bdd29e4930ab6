"""The MBConv block whose expand runs inside the depthwise kernel (triton/mbconv_fused.py), in float64.

Every distinct expand block of B0..B7 (effkernels.scaling.block_shapes) at small sizes through
ops.mbconv with the fused path forced, followed by either project GEMM, every config pinned on the launcher, the path choice (interpreter,
heuristic, tuned table), the launches, the custom op and the cost counts. Under the interpreter the block
takes the unfused path unless told otherwise (tests/test_mbconv.py tests that one).
"""
import json
import math

import pytest
import torch
import triton

import effkernels.triton.mbconv_fused as mf
from effkernels import backends, configs, reference
from effkernels.ops.mbconv import mbconv
from effkernels.scaling import block_shapes
from helpers import DEVICE, assert_close_to_ref, fused_test_tile

pytestmark = [pytest.mark.skipif(not backends.triton_interpreted() and DEVICE.type != "cuda",
                                 reason="triton cannot run here"),
              pytest.mark.usefixtures("on_device")]

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Input sizes per stride, and the TF SAME pads (top, bottom, left, right) of k x k on them, written out:
# stride 1, 7 x 9: (k - 1) / 2 each side; stride 2, 9 x 10 -> 5 x 5: rows pad k - 1 (even split), columns
# pad k - 2, the extra one at the right.
SIZES = {1: (7, 9), 2: (9, 10)}
PADS = {(3, 1): (1, 1, 1, 1), (5, 1): (2, 2, 2, 2), (3, 2): (1, 1, 0, 1), (5, 2): (2, 2, 1, 2)}


def _classes():
    """Every distinct expand block of B0..B7: (k, stride, C_in, C_exp, C_out, squeeze, residual)."""
    seen = {}
    for name in (f"b{i}" for i in range(8)):
        for b in block_shapes(name):
            if b.expand_ratio > 1:
                seen.setdefault((b.kernel, b.stride, b.in_channels, b.expanded_channels, b.out_channels,
                                 b.squeeze_channels, b.residual), None)
    return list(seen)


def _group(cls):
    """What changes the code the fused kernel runs, its masks or its alignment: k, stride, residual, C_in
    within one 64-wide K step, C_in % 16 (Triton's ':16' specialization, VEC), C_exp % 64 (channel tails)."""
    k, stride, c_in, c_exp, _, _, residual = cls
    return k, stride, residual, c_in <= 64, c_in % 16 == 0, c_exp % 64 == 0


def _interpreter_work(cls):
    k, _, c_in, c_exp, c_out, squeeze, _ = cls
    return c_in * c_exp * k * k / 9 + c_exp * c_out + 4 * c_exp * squeeze  # expand taps, project, excite


CLASSES = _classes()
# The interpreter runs the cheapest class of each group (29 of 78: ~4 min of CPU time for all of them);
# a GPU runs every class.
_GROUPS = {}
for _cls in CLASSES:
    _GROUPS.setdefault(_group(_cls), []).append(_cls)
TESTED_CLASSES = CLASSES if DEVICE.type == "cuda" else [min(g, key=_interpreter_work) for g in _GROUPS.values()]


def _block(c_in, c_exp, c_out, squeeze, k, dtype, se=True):
    """mbconv's parameters after x (BN folded), scaled so activations stay O(1): expand_w, expand_b, dw_w,
    dw_b, se_w1, se_b1, se_w2, se_b2, proj_w, proj_b."""
    def rnd(*shape, fan_in=1):
        return (torch.randn(*shape) / math.sqrt(fan_in)).to(dtype)

    se_params = ([rnd(squeeze, c_exp, fan_in=c_exp), rnd(squeeze) * 0.5, rnd(c_exp, squeeze, fan_in=squeeze),
                  rnd(c_exp) * 0.5] if se else [None] * 4)
    return [rnd(c_exp, c_in, fan_in=c_in), rnd(c_exp) * 0.5, rnd(c_exp, 1, k, k, fan_in=k * k), rnd(c_exp) * 0.5,
            *se_params, rnd(c_out, c_exp, fan_in=c_exp), rnd(c_out) * 0.5]


def _double(ts):
    return [t.double().cpu() if torch.is_tensor(t) else t for t in ts]


def _case(i, cls):
    """Per class index, a rotation of what varies: dtype, layout, SE, residual, activations, and on channels_last
    the project GEMM (library or Triton). N = 1 (larger batches: test_every_config, N = 0: the project tests)."""
    k, stride, c_in, c_exp, c_out, squeeze, residual = cls
    acts = [("silu", "relu", "sigmoid"), ("hardswish", "silu", "hardsigmoid"), ("relu6", "relu", "sigmoid"),
            ("silu", "relu", "hardsigmoid"), ("relu", "silu", "sigmoid")]
    channels_last = (i // 3) % 2 == 0
    return dict(dtype=DTYPES[i % 3], channels_last=channels_last, se=i % 4 != 3, residual=residual and i % 5 != 4,
                acts=acts[i % len(acts)], library_project=channels_last and (i // 6) % 2 == 0)


@pytest.mark.parametrize("i,cls", list(enumerate(TESTED_CLASSES)),
                         ids=[f"k{c[0]}s{c[1]}-{c[2]}-{c[3]}-{c[4]}-se{c[5]}{'-res' if c[6] else ''}"
                              for c in TESTED_CLASSES])
def test_block_shape_classes(force_path, poisoned, i, cls):
    """The whole block (fused expand + depthwise + SE partials, excite, project with scale and residual) against
    reference.mbconv_ref in float64, outputs NaN-poisoned. Odd H (and odd or even W), TF SAME padding (the
    oracle gets the pads written out in PADS), stride 2, k 3 and 5, the channels of every distinct expand block
    of B0..B7 (under the interpreter one per group of `_group`, whose members run the same code); the dtype,
    layout, SE, residual, activations and, on channels_last, the project GEMM (library: the fused kernel
    initialises its output, the excite writes W'; or Triton) rotate over the classes (SE's activation is never
    the block's)."""
    k, stride, c_in, c_exp, c_out, squeeze, _ = cls
    case = _case(i, cls)
    dtype, (act, se_act, gate) = case["dtype"], case["acts"]
    ran = force_path(fused_test_tile(c_in, c_exp), case["library_project"])
    h, w = SIZES[stride]
    x = torch.randn(1, c_in, h, w)
    if case["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last)
    x = x.to(dtype)
    params = _block(c_in, c_exp, c_out, squeeze, k, dtype, case["se"])
    args = (*params[:4], stride, "same", *params[4:], case["residual"])
    with torch.no_grad():
        out = mbconv(x, *args, activation=act, se_activation=se_act, se_gate=gate, backend="triton")
    ref_args = _double((*params[:4], stride, PADS[(k, stride)], *params[4:], case["residual"]))
    ref = reference.mbconv_ref(x.double().cpu(), *ref_args, activation=act, se_activation=se_act, se_gate=gate)
    assert out.dtype == dtype and out.shape == (1, c_out, 5 if stride == 2 else h, 5 if stride == 2 else w)
    fmt = torch.channels_last if case["channels_last"] else torch.contiguous_format
    assert out.is_contiguous(memory_format=fmt), "the output does not keep x's memory format"
    assert ran == ["fused"] + ([3 if case["se"] else 2] if case["library_project"] else []), ran
    assert_close_to_ref(out, ref, dtype)


# (N, k, stride, C_in, C_exp, C_out, SE, residual): C not multiples of 16, C_out above and below C_exp's
# channel block, N = 0 and 1.
PROJECT_CASES = [(1, 3, 2, 24, 72, 40, True, False), (2, 5, 1, 20, 120, 20, False, True),
                 (1, 5, 2, 40, 88, 104, False, False), (1, 3, 1, 24, 72, 24, True, True),
                 (0, 3, 2, 24, 72, 40, True, False)]


@pytest.mark.parametrize("library_project", [True, False], ids=["library_project", "triton_project"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("j,case", list(enumerate(PROJECT_CASES)),
                         ids=["n{}k{}s{}-{}-{}-{}{}{}".format(*c[:6], "-se" * c[6], "-res" * c[7])
                              for c in PROJECT_CASES])
def test_fused_then_each_project(force_path, poisoned, library_project, dtype, j, case):
    """Both project GEMMs after the fused kernel, against reference.mbconv_ref in float64, outputs NaN-poisoned:
    the library project (y initialised to proj_b (+ residual) by the fused kernel, W' = proj_w * s[n] from the
    excite, proj_w itself without SE) on channels_last; the Triton project on channels_last and NCHW (the
    library project needs dense channels_last: an NCHW x takes the Triton project whatever the choice)."""
    n, k, stride, c_in, c_exp, c_out, se, residual = case
    channels_last = library_project or j % 2 == 0
    ran = force_path(fused_test_tile(c_in, c_exp), library_project)
    h, w = SIZES[stride]
    x = torch.randn(n, c_in, h, w)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x = x.to(dtype)
    params = _block(c_in, c_exp, c_out, max(1, c_in // 4), k, dtype, se)
    with torch.no_grad():
        out = mbconv(x, *params[:4], stride, "same", *params[4:], residual, backend="triton")
    ref = reference.mbconv_ref(x.double().cpu(), *_double((*params[:4], stride, PADS[(k, stride)], *params[4:],
                                                           residual)))
    assert ran == ["fused"] + ([3 if se else 2] if library_project else []), ran
    assert out.dtype == dtype
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert_close_to_ref(out, ref, dtype)


def _steps_ref(x, params, stride, pads, act, se_act, gate):
    """Steps 1-3 in float64: (depthwise output, SE scale)."""
    we, be, wd, bd, w1, b1, w2, b2 = _double(params[:8])
    e = reference.pointwise_conv_ref(x.double().cpu(), we, be, act)
    out = reference.dwconv_bn_act_ref(e, wd, bd, stride, pads, act)
    hw = out.shape[2] * out.shape[3]
    return out, reference.se_excite_ref(out.sum((2, 3)), 1.0 / hw, w1, b1, w2, b2, se_act, gate)


CONFIGS = mf.FUSED_CONFIGS + [mf.UNFUSED]


@pytest.mark.parametrize("j,config", list(enumerate(CONFIGS)),
                         ids=[f"{c.kwargs}-w{c.num_warps}-s{c.num_stages}" for c in CONFIGS])
def test_every_config(monkeypatch, poisoned, j, config):
    """Each candidate pinned on the launcher: C_in = 40 takes one K step at BLOCK_K = 64 and a loop with a
    tail at 16 / 32; C_exp = 120 leaves a partial channel block at 32 and 64; 17 x 17 at stride 2 -> 81
    outputs: several pixel blocks at every BLOCK_P. The partial sums the fused kernel hands se_excite have
    one row per pixel block, every slot written (NaN-poisoned), and sum to the SE squeeze. The dtypes rotate;
    fp32 only where the tile is an fp32 candidate (mf.fits), bf16 otherwise."""
    dtype = DTYPES[j % 3]
    if dtype == torch.float32 and not mf.is_unfused(config) and not mf.fits(config, "fp32"):
        dtype = torch.bfloat16
    x = torch.randn(2, 40, 17, 17).contiguous(memory_format=torch.channels_last).to(dtype)
    params = _block(40, 120, 24, 10, 3, dtype)
    ref_out, ref_scale = _steps_ref(x, params, 2, 1, "silu", "relu", "sigmoid")
    import effkernels.triton.mbconv as tm

    seen = []
    excite = tm.se_excite
    monkeypatch.setattr(tm, "se_excite", lambda partials, *a: seen.append(partials.clone()) or excite(partials, *a))
    out, scale, y = mf.expand_dw_se(x, *params[:4], 2, 1, 1, 9, 9, 3, *params[4:8], 1, 5, None, None, None,
                                    config=config)
    assert_close_to_ref(out, ref_out, dtype, what=f"out with {config}")
    assert_close_to_ref(scale, ref_scale, torch.float32, what=f"scale with {config}")
    assert y.numel() == 0
    if not mf.is_unfused(config):
        assert len(seen) == 1 and seen[0].shape == (2, triton.cdiv(81, config.kwargs["BLOCK_P"]), 120)
        assert_close_to_ref(seen[0].sum(1), ref_out.sum((2, 3)), dtype, what=f"SE sums with {config}")


def test_nchw_and_views_without_se(force_path, poisoned):
    """The same kernel reads any strides: an NCHW slice of a wider tensor (channel stride != H * W, pixel
    rows not contiguous), tap-major depthwise weights; no SE: the scale slot is empty."""
    from effkernels._common import tap_major

    force_path(mf.FUSED_CONFIGS[4])
    base = torch.randn(1, 30, 11, 14)
    x = base[:, 3:27, :, 1:12]  # [1, 24, 11, 11] view
    params = _block(24, 144, 24, 6, 5, torch.float32, se=False)
    params[2] = tap_major(params[2])  # [k, k, C] storage
    out, scale, _ = mf.expand_dw_se(x, *params[:4], 1, 2, 2, 11, 11, 4, *params[4:8], 1, 5, None, None, None,
                                    config=mf.FUSED_CONFIGS[4])
    ref = reference.dwconv_bn_act_ref(reference.pointwise_conv_ref(x.double(), *_double(params[:2]), "hardswish"),
                                      *_double(params[2:4]), 1, 2, "hardswish")
    assert scale.numel() == 0
    assert_close_to_ref(out, ref, torch.float32)


def test_path_under_the_interpreter():
    """The interpreter's pick is the unfused path, so tests/test_mbconv.py keeps testing that one."""
    if not backends.triton_interpreted():
        pytest.skip("checks the interpreter's pick")
    assert mf.mbconv_path(torch.float32, 2, 16, 96, 9, 9, 3, 2) == "unfused"


@pytest.fixture
def gpu_like(monkeypatch, table_dir):
    """Picks as on a GPU named "Test GPU": its table (in table_dir, empty unless a test writes one), else the
    heuristic."""
    from effkernels.triton import _common

    monkeypatch.setattr(_common, "triton_interpreted", lambda: False)
    monkeypatch.setattr(_common, "device_name", lambda device: "Test GPU")
    return table_dir


def test_heuristic_follows_the_floors(gpu_like):
    """Without a table (floors over mf.ACHIEVED): fused at stride 2 (bf16 SiLU's one MUFU op on k^2 taps per
    output against 4 * stride^2 + 2 bytes per output saved, where the unfused kernels reach ~40% of their
    floor) and at k 3 stride 1 (a near tie on wide maps); unfused where the k^2 recomputed taps dominate
    (k 5 stride 1 on small maps) and, for the same k 3 block, in fp32 (tf32x3 MMAs, the 2-MUFU SiLU);
    blocks without expand or beyond the depthwise limits: unfused."""
    bf16 = torch.bfloat16
    assert mf.mbconv_path(bf16, 128, 16, 96, 112, 112, 3, 2) == "fused"            # B0 stage 2
    assert mf.mbconv_path(bf16, 128, 40, 240, 28, 28, 3, 2) == "fused"             # B0 stage 4
    assert mf.mbconv_path(bf16, 128, 24, 144, 56, 56, 3, 1) == "fused"             # B0 stage 2, 2nd block
    assert mf.mbconv_path(bf16, 128, 24, 144, 56, 56, 5, 2) == "fused"             # B0 stage 3
    assert mf.mbconv_path(bf16, 128, 80, 480, 14, 14, 5, 1) == "unfused"           # B0 stage 5
    assert mf.mbconv_path(bf16, 128, 80, 480, 14, 14, 3, 1) == "fused"             # B0 stage 4, 2nd block
    assert mf.mbconv_path(torch.float32, 128, 80, 480, 14, 14, 3, 1) == "unfused"  # tf32x3, 2-MUFU SiLU
    assert mf.mbconv_path(bf16, 128, 16, None, 112, 112, 3, 1) == "unfused"        # expand ratio 1
    assert mf.mbconv_path(bf16, 128, 16, 96, 112, 112, 9, 1, "relu") == "unfused"  # k 9: the dw op refuses it
    assert mf.TABLE.pick(mf._key(bf16, 128, 16, 96, 112, 112, 3, 2, 3, True), "cuda") is mf.FUSED_CONFIGS[3]
    # fp32: only tiles that fit tf32x3's registers, the heuristic's among them.
    key = mf._key(torch.float32, 128, 16, 96, 112, 112, 3, 2, 3, True)
    assert all(mf.is_unfused(c) or mf.fits(c, "fp32") for c in mf.TABLE.candidates(key))
    assert mf.fits(mf.TABLE.pick(key, "cuda"), "fp32") and not mf.is_unfused(mf.TABLE.pick(key, "cuda"))


def test_silu_costs_one_mufu_op_in_16_bit():
    """The cost model counts the SiLU each output dtype runs: fp16/bf16 outputs take the one-MUFU form
    (tanh.approx), fp32 the exp2 + reciprocal form; activations without MUFU ops cost the same in both."""
    n, c_in, c_exp, h, w, k, s = 8, 24, 144, 56, 56, 3, 1
    outputs = n * h * w * c_exp  # expanded elements = depthwise outputs at stride 1
    for dtype_bytes, silu_mufu in ((2, 1), (4, 2)):
        silu = mf.path_costs(n, c_in, c_exp, h, w, k, s, "silu", dtype_bytes)
        # fused: each output activates its k^2 recomputed taps and itself; unfused: expand and depthwise once each
        assert silu["fused"][0]["mufu"] == outputs * (k * k + 1) * silu_mufu
        assert [kc["mufu"] for kc in silu["unfused"]] == [outputs * silu_mufu] * 2
        relu = mf.path_costs(n, c_in, c_exp, h, w, k, s, "relu", dtype_bytes)
        assert all(kc["mufu"] == 0 for kc in relu["fused"] + relu["unfused"])


def test_the_table_decides(gpu_like):
    """A tuned table (what `python -m effkernels.tune` writes) overrides the heuristic both ways, per shape:
    entries are keyed by TABLE.fields, and "unfused" is a config like the tiles."""
    stage2 = ["bf16", 128, 16, 96, 112, 112, 3, 2, 3, True]
    stage5 = ["bf16", 128, 80, 480, 14, 14, 5, 1, 3, True]
    tile = {"BLOCK_P": 32, "BLOCK_C": 64, "BLOCK_K": 16, "num_warps": 4, "num_stages": 1}
    data = {"format": configs.FORMAT, "device": "Test GPU", "kernels": {mf.TABLE.name: {
        "fields": list(mf.TABLE.fields),
        "entries": [{"key": stage2, "config": {"PATH": "unfused", "num_warps": 4, "num_stages": 1}, "us": 9.0},
                    {"key": stage5, "config": tile, "us": 9.0}]}}}
    (gpu_like / configs.file_name("Test GPU")).write_text(json.dumps(data))
    assert mf.mbconv_path(torch.bfloat16, 128, 16, 96, 112, 112, 3, 2) == "unfused"
    assert mf.mbconv_path(torch.bfloat16, 128, 80, 480, 14, 14, 5, 1) == "fused"
    assert mf.TABLE.pick(tuple(stage5), "cuda").kwargs == {"BLOCK_P": 32, "BLOCK_C": 64, "BLOCK_K": 16}
    # Another batch: the nearest entry of the same class (dtype, k, stride, activation, layout).
    assert mf.mbconv_path(torch.bfloat16, 64, 16, 96, 112, 112, 3, 2) == "unfused"


def _launch_block(se, library_project, force_path):
    force_path(fused_test_tile(16, 96), library_project)
    params = _block(16, 96, 16, 4, 3, torch.float32, se)
    x = torch.randn(2, 16, 7, 7).contiguous(memory_format=torch.channels_last)
    return lambda: mbconv(x, *params[:4], 1, 1, *params[4:], True, backend="triton")


@pytest.mark.parametrize("se,library_project,expected", [
    (True, True, ["_expand_dw_kernel", "_se_excite_kernel", "aten.baddbmm_.default"]),
    (False, True, ["_expand_dw_kernel", "aten.addmm_.default"]),
    (True, False, ["_expand_dw_kernel", "_se_excite_kernel", "_pointwise_conv_kernel"]),
    (False, False, ["_expand_dw_kernel", "_pointwise_conv_kernel"])],
    ids=["se-library_project", "nose-library_project", "se-triton_project", "nose-triton_project"])
def test_fused_block_launches(force_path, se, library_project, expected):
    """The fused block is one launch fewer than the unfused one: expand + depthwise (+ SE partials, + the
    library project's output initialised), excite, project; nothing else runs a kernel (no fill or copy for
    the library project's bias and residual) and, called eagerly, no effkernels op enters the torch
    dispatcher."""
    from test_mbconv import _kernels

    launched, hidden, dispatched = _kernels(_launch_block(se, library_project, force_path))
    assert launched == expected, launched
    assert hidden == [] and dispatched == [], (hidden, dispatched)


@pytest.mark.parametrize("se", [True, False], ids=["se", "nose"])
@pytest.mark.parametrize("project", ["triton", "library", "library-residual"])
def test_opcheck(se, project):
    """The custom op torch.compile traces for the fused steps 1-3: schema and fake kernel, without the project
    weights (Triton project) and with them (library project: W' or an empty se_out, and y)."""
    params = _block(16, 96, 16, 4, 3, torch.float32, se)
    x = torch.randn(2, 16, 9, 9).contiguous(memory_format=torch.channels_last)
    stride, geom = (1, (1, 1, 9, 9)) if project == "library-residual" else (2, (1, 1, 5, 5))
    lib = {"triton": (None, None, None), "library": (*params[8:], None), "library-residual": (*params[8:], x)}[project]
    torch.library.opcheck(torch.ops.effkernels_triton.mbconv_expand_dw_se.default,
                          (x, *params[:4], stride, *geom, 3, *params[4:8], 1, 5, *lib),
                          test_utils=("test_schema", "test_faketensor"))


def test_cost_counts():
    """path_costs against the B0 stage-2 block at batch 128 in bf16 as ../shared/docs/GPU-REVIEW.md §7
    counts it (x 51 MB, h1 308 MB, h2 77 MB), and the recompute factor k^2 * OH * OW / (H * W)."""
    c = mf.path_costs(128, 16, 96, 112, 112, 3, 2)
    x, h1, h2 = 128 * 112 * 112 * 16 * 2, 128 * 112 * 112 * 96 * 2, 128 * 56 * 56 * 96 * 2
    assert (round(x / 1e6), round(h1 / 1e6), round(h2 / 1e6)) == (51, 308, 77)
    assert c["fused"][0]["bytes"] == x + h2
    assert [kc["bytes"] for kc in c["unfused"]] == [x + h1, h1 + h2]
    assert c["fused"][0]["mma_flops"] == 2.25 * c["unfused"][0]["mma_flops"]
    assert c["fused"][0]["mufu"] == 10 * 128 * 56 * 56 * 96  # bf16 SiLU, one MUFU op: 9 taps + the depthwise output
    assert [mf.expand_recompute(112, 112, k, s) for k, s in ((3, 1), (5, 1), (3, 2), (5, 2))] == [9, 25, 2.25, 6.25]
    assert mf.expand_recompute(7, 7, 3, 2) == 9 * 16 / 49  # odd sizes: 4 x 4 outputs
