"""The C++/CUDA extension (torch.ops.effkernels.*) against the float64 reference.

CPU kernels always run (when the extension is built); the same checks run on CUDA when a GPU is
present. Performance is measured elsewhere (benchmarks/), never here.
"""
import functools
import importlib
import os
import pkgutil
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

import effkernels
from effkernels import _ext, reference as R
from effkernels._common import ACTIVATIONS, conv_geometry
from effkernels.fold import fold_bn
from helpers import assert_close_to_ref, poison_

pytestmark = pytest.mark.skipif(not _ext.loaded(), reason=f"extension not built: {_ext.load_error}")
ops = torch.ops.effkernels

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")),
]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
LAYOUTS = ["channels_last", "nchw", "cl_view", "nchw_view"]


@pytest.fixture(autouse=True)
def _need_cuda_kernels(request):
    dev = request.node.callspec.params.get("device") if hasattr(request.node, "callspec") else None
    if dev == "cuda" and not _ext.built_with_cuda():
        pytest.skip("effkernels._C was built without CUDA kernels")


def make_x(shape, layout, dtype, device):
    """A random activation [N, C, H, W] in the given memory layout; *_view are non-contiguous views."""
    n, c, h, w = shape
    if layout == "channels_last":
        x = torch.randn(n, c, h, w).contiguous(memory_format=torch.channels_last)
    elif layout == "nchw":
        x = torch.randn(n, c, h, w)
    elif layout == "cl_view":  # NHWC with padded channel and column strides
        x = torch.randn(n, h, w + 2, c + 3)[:, :, 1 : w + 1, :c].permute(0, 3, 1, 2)
    else:  # NCHW with a padded row stride
        x = torch.randn(n, c, h, w + 3)[..., :w]
    return x.to(device=device, dtype=dtype)


def expect_layout(out, x):
    cl = x.shape[1] > 1 and x.stride(1) == 1
    assert (out.shape[1] > 1 and out.stride(1) == 1) == cl, "output memory format differs from x's"
    fmt = torch.channels_last if cl else torch.contiguous_format
    assert out.is_contiguous(memory_format=fmt)


def poison_allocator(nbytes, device):
    """Outputs are allocated inside the ops, so poison the allocator instead: free a NaN-filled
    block of the output's size right before the call (the caching allocator / malloc reuse it),
    so elements a kernel forgets to write show up as NaN."""
    poison_(torch.empty(max(nbytes // 4, 1), dtype=torch.float32, device=device))


def d64(t):
    return t.detach().to("cpu", torch.float64)


# ---------------------------------------------------------------- dwconv_bn_act

DW_SHAPES = [  # (N, C, H, W, k, stride, padding)
    (2, 37, 17, 17, 3, 1, 1),
    (2, 37, 17, 17, 5, 2, 2),  # stride 2 on odd size
    (1, 37, 16, 16, 5, 2, "same"),  # TF same, asymmetric (even size, stride 2)
    (2, 37, 33, 33, 3, 2, "same"),
    (1, 1155, 7, 7, 5, 1, "same"),
    (1, 1155, 7, 7, 3, 2, 1),
    (2, 16, 17, 16, 7, 2, "same"),  # k = 7: the generic-k path
    (2, 1, 9, 9, 3, 1, 1),  # C = 1
    (0, 37, 7, 7, 3, 1, 1),  # N = 0
    # C a multiple of the CPU vector width: fp32 k <= 3 reads the input in place (dw_direct), the columns
    # against the padding apart
    (2, 32, 17, 17, 3, 1, 1),
    (2, 48, 17, 13, 5, 2, 2),
    (1, 32, 16, 16, 3, 2, "same"),  # no left padding, one right
    (1, 64, 5, 4, 3, 1, 1),  # two columns clear of the padding
    (1, 64, 5, 5, 5, 1, 2),  # k = 5: one column clear of the padding
    (1, 32, 5, 2, 3, 2, "same"),  # W < k: every column touches the padding
    (2, 32, 9, 9, 1, 2, 0),  # k = 1
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", DW_SHAPES, ids=str)
def test_dwconv_bn_act(shape, layout, dtype, device):
    n, c, h, w, k, s, pad = shape
    x = make_x((n, c, h, w), layout, dtype, device)
    wt = (torch.randn(c, 1, k, k) / k).to(device, dtype)
    b = torch.randn(c).to(device, dtype)
    top, left, oh, ow = conv_geometry(h, w, k, s, pad)
    poison_allocator(n * c * oh * ow * x.element_size(), device)
    out, sums = ops.dwconv_bn_act(x, wt, b, s, top, left, oh, ow, ACTIVATIONS["silu"], True)
    ref, ref_sums = R.dwconv_bn_act_ref(d64(x), d64(wt), d64(b), s, pad, "silu", se_sums=True)
    assert_close_to_ref(out, ref, dtype)
    expect_layout(out, x)
    assert sums.dtype == torch.float32
    # Sums add up H*W activations: compare relative to their magnitude.
    assert_close_to_ref(sums, ref_sums, dtype, abs_=TOL_SUMS[dtype] * max(oh * ow, 1))


TOL_SUMS = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
@pytest.mark.parametrize("act", ["none", "relu", "relu6", "silu", "hardswish", "sigmoid", "hardsigmoid"])
def test_dwconv_activations_no_sums(act, layout, device):
    x = make_x((2, 24, 9, 9), layout, torch.float32, device)
    wt, b = torch.randn(24, 1, 3, 3, device=device), torch.randn(24, device=device)
    out, sums = ops.dwconv_bn_act(x, wt, b, 1, 1, 1, 9, 9, ACTIVATIONS[act], False)
    assert sums.numel() == 0
    assert_close_to_ref(out, R.dwconv_bn_act_ref(d64(x), d64(wt), d64(b), 1, 1, act), torch.float32)


@pytest.mark.parametrize("device", DEVICES)
def test_dwconv_fp32_params_with_bf16_input(device):
    x = make_x((2, 40, 11, 11), "channels_last", torch.bfloat16, device)
    wt, b = torch.randn(40, 1, 5, 5, device=device) / 5, torch.randn(40, device=device)
    out, _ = ops.dwconv_bn_act(x, wt, b, 2, 2, 2, 6, 6, ACTIVATIONS["silu"], False)
    assert out.dtype == torch.bfloat16
    assert_close_to_ref(out, R.dwconv_bn_act_ref(d64(x), d64(wt), d64(b), 2, 2, "silu"), torch.bfloat16)


# ---------------------------------------------------------------- squeeze-excitation pieces

SE_SHAPES = [(2, 37, 17, 17), (1, 1155, 7, 7), (3, 96, 33, 33), (2, 1, 5, 5), (0, 37, 7, 7)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SE_SHAPES, ids=str)
def test_channel_sums_and_se_scale(shape, layout, dtype, device):
    x = make_x(shape, layout, dtype, device)
    sums = ops.channel_sums(x)
    assert sums.dtype == torch.float32 and sums.shape == shape[:2]
    hw = shape[2] * shape[3]
    assert_close_to_ref(sums, R.channel_sums_ref(d64(x)), torch.float32, abs_=1e-5 * hw)
    scale = torch.rand(shape[:2], device=device) + 0.5
    poison_allocator(x.numel() * x.element_size(), device)
    out = ops.se_scale(x, scale)
    assert out.dtype == dtype
    expect_layout(out, x)
    assert_close_to_ref(out, R.se_scale_ref(d64(x), d64(scale)), dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n,c,s", [(3, 37, 5), (1, 1155, 48), (0, 37, 5), (2, 8, 1)])
@pytest.mark.parametrize("act,gate", [("silu", "sigmoid"), ("relu", "hardsigmoid")])
def test_se_excite(n, c, s, act, gate, device):
    sums = torch.randn(n, c, device=device) * 10
    w1, b1 = torch.randn(s, c, device=device) / c**0.5, torch.randn(s, device=device)
    w2, b2 = torch.randn(c, s, device=device) / s**0.5, torch.randn(c, device=device)
    out = ops.se_excite(sums, 0.1, w1, b1, w2, b2, ACTIVATIONS[act], ACTIVATIONS[gate])
    ref = R.se_excite_ref(d64(sums), 0.1, d64(w1), d64(b1), d64(w2), d64(b2), act, gate)
    assert out.dtype == torch.float32
    assert_close_to_ref(out, ref, torch.float32)


# ---------------------------------------------------------------- pointwise_conv

PW_SHAPES = [  # (N, C_in, H, W, C_out)
    (2, 37, 9, 9, 20),
    (2, 16, 17, 17, 96),  # expand-like
    (1, 1155, 7, 7, 96),  # HW < C_out: CUDA rescales x instead of folding the scale
    (3, 96, 33, 17, 24),  # several row chunks per sample on the CPU
    (0, 37, 7, 7, 20),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", PW_SHAPES, ids=str)
@pytest.mark.parametrize("with_scale,with_res", [(False, False), (True, True)])
def test_pointwise_conv(shape, layout, dtype, device, with_scale, with_res):
    n, cin, h, w, cout = shape
    x = make_x((n, cin, h, w), layout, dtype, device)
    wt = (torch.randn(cout, cin) / cin**0.5).to(device, dtype)
    b = torch.randn(cout).to(device, dtype)
    scale = torch.rand(n, cin, device=device) + 0.5 if with_scale else None
    res = make_x((n, cout, h, w), "nchw", dtype, device) if with_res else None  # layout may differ from x's
    act = "none" if with_res else "silu"
    poison_allocator(n * cout * h * w * x.element_size(), device)
    out = ops.pointwise_conv(x, wt, b, ACTIVATIONS[act], scale, res)
    ref = R.pointwise_conv_ref(d64(x), d64(wt), d64(b), act, None if scale is None else d64(scale),
                               None if res is None else d64(res))
    expect_layout(out, x)
    assert_close_to_ref(out, ref, dtype)


# ---------------------------------------------------------------- mbconv vs torchvision


def _randomize_(module):
    """Random weights and non-trivial BN statistics (so folding matters)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, (1.0 / (m.weight[0].numel())) ** 0.5)
                if m.bias is not None:
                    m.bias.normal_(0, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return module.eval()


def _mbconv_args(block):
    """Folded parameters of a torchvision MBConv in mbconv's order (fp32)."""
    layers = list(block.block)
    expand = layers.pop(0) if len(layers) == 4 else None
    dw, se, proj = layers

    def conv_bn(cba):
        w, b = fold_bn(cba[0].weight, cba[1])
        return w.float(), b.float()

    ew, eb = conv_bn(expand) if expand is not None else (None, None)
    if ew is not None:
        ew = ew.flatten(1)
    dww, dwb = conv_bn(dw)
    pw, pb = conv_bn(proj)
    return dict(expand=(ew, eb), dw=(dww, dwb), stride=dw[0].stride[0], k=dw[0].kernel_size[0],
                se=(se.fc1.weight.flatten(1).float(), se.fc1.bias.float(), se.fc2.weight.flatten(1).float(),
                    se.fc2.bias.float()),
                proj=(pw.flatten(1), pb), residual=block.use_res_connect)


MB_CASES = [  # (expand, k, stride, C_in, C_out, N, H)
    (1, 3, 1, 32, 16, 2, 17),  # stage 1: no expand
    (6, 3, 2, 16, 24, 2, 17),  # stride 2, odd size
    (6, 5, 2, 24, 40, 1, 16),
    (6, 5, 1, 40, 40, 2, 9),  # residual
    (6, 3, 1, 40, 40, 0, 7),  # N = 0
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
@pytest.mark.parametrize("case", MB_CASES, ids=str)
def test_mbconv_op_vs_torchvision(case, layout, device):
    from torchvision.models.efficientnet import MBConv, MBConvConfig

    e, k, s, cin, cout, n, h = case
    block = MBConv(MBConvConfig(e, k, s, cin, cout, 1), 0.0, functools.partial(nn.BatchNorm2d, eps=1e-3))
    _randomize_(block)
    x = make_x((n, cin, h, h), layout, torch.float32, device)
    with torch.no_grad():
        ref = block.double()(d64(x)) if n else torch.empty(0, cout, (h - 1) // s + 1, (h - 1) // s + 1)
    a = _mbconv_args(block.float())
    dev = lambda t: None if t is None else t.to(device)  # noqa: E731
    top, left, oh, ow = conv_geometry(h, h, a["k"], a["stride"], (a["k"] - 1) // 2)
    out = ops.mbconv(x, dev(a["expand"][0]), dev(a["expand"][1]), dev(a["dw"][0]), dev(a["dw"][1]),
                             a["stride"], top, left, oh, ow, *map(dev, a["se"]), dev(a["proj"][0]), dev(a["proj"][1]),
                             a["residual"], ACTIVATIONS["silu"], ACTIVATIONS["silu"], ACTIVATIONS["sigmoid"])
    expect_layout(out, x)
    assert_close_to_ref(out, ref, torch.float32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mbconv_op_same_padding_vs_reference(dtype, device):
    """TF-same padding (asymmetric at stride 2 on even sizes), no SE, relu, vs mbconv_ref."""
    n, cin, cexp, cout, h, k, s = 2, 24, 144, 40, 16, 5, 2
    x = make_x((n, cin, h, h), "channels_last", dtype, device)
    p = lambda *shape: (torch.randn(*shape) / (shape[-1] ** 0.5)).to(device, dtype)  # noqa: E731
    ew, eb, dww, dwb, pw, pb = p(cexp, cin), p(cexp), p(cexp, 1, k, k), p(cexp), p(cout, cexp), p(cout)
    top, left, oh, ow = conv_geometry(h, h, k, s, "same")
    out = ops.mbconv(x, ew, eb, dww, dwb, s, top, left, oh, ow, None, None, None, None, pw, pb, False,
                             ACTIVATIONS["relu"], ACTIVATIONS["silu"], ACTIVATIONS["sigmoid"])
    ref = R.mbconv_ref(d64(x), d64(ew), d64(eb), d64(dww), d64(dwb), s, "same", None, None, None, None, d64(pw),
                       d64(pb), False, "relu")
    assert_close_to_ref(out, ref, dtype)


# ---------------------------------------------------------------- errors


def _raised_in_child(nodeid):
    """Run one test in a child pytest and assert it passed. On an H200 (torch 2.11, 2026-11-27) the first C++
    error raised by a CUDA call killed the process with a segmentation fault
    (benchmarks/results/2026-11-27-nvidia-h200/NOTES.md); in a child, a crash is this test's failure, with the
    child's output, not the end of the suite. Returns False inside the child, where the test body runs."""
    if os.environ.get("EFFKERNELS_TEST_CHILD"):
        return False
    child = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::{nodeid}"],
        env={**os.environ, "EFFKERNELS_TEST_CHILD": "1"}, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, f"exit {child.returncode}\n{child.stdout[-4000:]}\n{child.stderr[-4000:]}"
    return True


@pytest.mark.parametrize("device", DEVICES)
def test_error_messages(device):
    if device == "cuda" and _raised_in_child("test_error_messages[cuda]"):
        return
    x = torch.randn(2, 8, 9, 9, device=device)
    w, b = torch.randn(8, 1, 3, 3, device=device), torch.randn(8, device=device)
    silu = ACTIVATIONS["silu"]
    with pytest.raises(RuntimeError, match=r"x: expected a 4-d tensor"):
        ops.dwconv_bn_act(x[0], w, b, 1, 1, 1, 9, 9, silu, False)
    with pytest.raises(RuntimeError, match=r"weight: expected shape \[8, 1, k, k\]"):
        ops.dwconv_bn_act(x, w[:4], b, 1, 1, 1, 9, 9, silu, False)
    with pytest.raises(RuntimeError, match=r"weight: expected an odd kernel size"):
        ops.dwconv_bn_act(x, torch.randn(8, 1, 4, 4, device=device), b, 1, 1, 1, 9, 9, silu, False)
    with pytest.raises(RuntimeError, match=r"bias: expected shape \[8\]"):
        ops.dwconv_bn_act(x, w, b[:3], 1, 1, 1, 9, 9, silu, False)
    with pytest.raises(RuntimeError, match=r"stride: expected 1 or 2, got 3"):
        ops.dwconv_bn_act(x, w, b, 3, 1, 1, 3, 3, silu, False)
    with pytest.raises(RuntimeError, match=r"x: expected dtype float32, float16 or bfloat16, got Double"):
        ops.dwconv_bn_act(x.double(), w, b, 1, 1, 1, 9, 9, silu, False)
    with pytest.raises(RuntimeError, match=r"activation: expected an activation code"):
        ops.dwconv_bn_act(x, w, b, 1, 1, 1, 9, 9, 9, False)
    with pytest.raises(RuntimeError, match=r"out_h/out_w: expected a positive output size"):
        ops.dwconv_bn_act(x, w, b, 1, 1, 1, 0, 9, silu, False)
    with pytest.raises(RuntimeError, match=r"scale: expected shape \[2, 8\]"):
        ops.se_scale(x, torch.rand(2, 7, device=device))
    with pytest.raises(RuntimeError, match=r"scale: expected dtype float32"):
        ops.se_scale(x, torch.rand(2, 8, device=device, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"weight: expected shape \[C_out, 8\]"):
        ops.pointwise_conv(x, torch.randn(4, 5, device=device), torch.randn(4, device=device), 0, None, None)
    with pytest.raises(RuntimeError, match=r"residual: expected shape \[2, 4, 9, 9\]"):
        ops.pointwise_conv(x, torch.randn(4, 8, device=device), torch.randn(4, device=device), 0, None, x)
    with pytest.raises(RuntimeError, match=r"w2: expected shape \[8, 3\]"):
        ops.se_excite(torch.randn(2, 8, device=device), 1.0, torch.randn(3, 8, device=device),
                      torch.randn(3, device=device), torch.randn(8, 4, device=device), torch.randn(8, device=device),
                      silu, ACTIVATIONS["sigmoid"])
    with pytest.raises(RuntimeError, match=r"expand_w/expand_b: expected both or neither"):
        ops.mbconv(x, torch.randn(16, 8, device=device), None, w, b, 1, 1, 1, 9, 9, None, None, None, None,
                           torch.randn(8, 8, device=device), b, False, silu, silu, ACTIVATIONS["sigmoid"])
    with pytest.raises(RuntimeError, match=r"residual: needs an output shaped like x"):
        ops.mbconv(x, None, None, w, b, 2, 1, 1, 5, 5, None, None, None, None,
                           torch.randn(8, 8, device=device), b, True, silu, silu, ACTIVATIONS["sigmoid"])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16])
def test_ops_inside_autocast(device, amp_dtype):
    """Inside torch.autocast the kernels keep their own dtypes (their internal GEMMs are not recast)."""
    sums, w1, b1, w2, b2 = (torch.randn(*s, device=device) for s in ((2, 16), (4, 16), (4,), (16, 4), (16,)))
    x = make_x((2, 16, 5, 5), "channels_last", torch.float32, device)
    pw, pb = torch.randn(8, 16, device=device), torch.randn(8, device=device)
    with torch.autocast(device, dtype=amp_dtype):
        scale = ops.se_excite(sums, 0.1, w1, b1, w2, b2, ACTIVATIONS["silu"], ACTIVATIONS["sigmoid"])
        out = ops.pointwise_conv(x, pw, pb, ACTIVATIONS["relu"], None, None)
    assert scale.dtype == torch.float32 and out.dtype == torch.float32
    assert_close_to_ref(scale, R.se_excite_ref(d64(sums), 0.1, d64(w1), d64(b1), d64(w2), d64(b2)), torch.float32)
    assert_close_to_ref(out, R.pointwise_conv_ref(d64(x), d64(pw), d64(pb), "relu"), torch.float32)


@pytest.mark.skipif(sys.platform != "linux", reason="an ELF check")
def test_no_private_cxx_runtime():
    """_C.so must use the process's shared libstdc++, not a copy linked in by -static-libstdc++: with a private
    copy, every C++ exception of ours crashed the process (H200 machine, 2026-11-28; setup.py's -Wl,-lstdc++)."""
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf (binutils) is not installed")
    symbols = subprocess.run([readelf, "-sW", _ext._C.__file__], capture_output=True, text=True, check=True).stdout
    defined = {f[7] for f in (line.split() for line in symbols.splitlines())
               if len(f) >= 8 and f[7] in ("__cxa_throw", "__cxa_begin_catch") and f[6] != "UND"}
    assert not defined, f"{_ext._C.__file__} defines {sorted(defined)}: it was linked with a static libstdc++"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_error_device_mismatch():
    if not _ext.built_with_cuda():
        pytest.skip("effkernels._C was built without CUDA kernels")
    if _raised_in_child("test_error_device_mismatch"):
        return
    x = torch.randn(2, 8, 9, 9, device="cuda")
    with pytest.raises(RuntimeError, match=r"weight: expected a tensor on cuda"):
        ops.dwconv_bn_act(x, torch.randn(8, 1, 3, 3), torch.randn(8, device="cuda"), 1, 1, 1, 9, 9, 3, False)


# ---------------------------------------------------------------- opcheck (schemas, fake kernels)


@functools.lru_cache(maxsize=None)
def _import_ops_modules():
    """The Python fake kernels are registered by the modules of effkernels.ops."""
    for info in pkgutil.iter_modules(effkernels.ops.__path__):
        importlib.import_module(f"effkernels.ops.{info.name}")


def _has_fake(name):
    from torch._library import simple_registry

    return simple_registry.singleton.find(f"effkernels::{name}").fake_impl.kernel is not None


def _opcheck_args(name, device):
    t = lambda *s: torch.randn(*s, device=device)  # noqa: E731
    x = t(2, 8, 9, 9).contiguous(memory_format=torch.channels_last)
    if name == "dwconv_bn_act":
        return (x, t(8, 1, 3, 3), t(8), 2, 1, 1, 5, 5, 3, True)
    if name == "channel_sums":
        return (x,)
    if name == "se_excite":
        return (t(2, 8), 0.1, t(2, 8), t(2), t(8, 2), t(8), 3, 5)
    if name == "se_scale":
        return (x, torch.rand(2, 8, device=device))
    if name == "pointwise_conv":
        return (x, t(8, 8), t(8), 3, torch.rand(2, 8, device=device), t(2, 8, 9, 9))
    return (x, t(16, 8), t(16), t(16, 1, 3, 3), t(16), 1, 1, 1, 9, 9, t(2, 16), t(2), t(16, 2), t(16), t(8, 16), t(8),
            True, 3, 3, 5)  # mbconv


OPS = ["dwconv_bn_act", "channel_sums", "se_excite", "se_scale", "pointwise_conv", "mbconv"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", OPS)
def test_opcheck(name, device):
    _import_ops_modules()
    if not _has_fake(name):
        pytest.skip(f"no fake kernel registered for effkernels::{name} in effkernels.ops yet")
    torch.library.opcheck(getattr(ops, name).default, _opcheck_args(name, device))


def test_cpu_ops_in_inference_mode_multithreaded():
    """ATen calls made from the CPU kernels' worker threads must see the caller's inference mode."""
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.inference_mode():
            x = make_x((2, 16, 33, 33), "channels_last", torch.float32, "cpu")
            w, b = torch.randn(96, 16), torch.randn(96)
            out = ops.pointwise_conv(x, w, b, ACTIVATIONS["silu"], None, None)
        assert_close_to_ref(out, R.pointwise_conv_ref(d64(x), d64(w), d64(b), "silu"), torch.float32)
    finally:
        torch.set_num_threads(old)
