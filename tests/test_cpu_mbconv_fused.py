"""The CPU MBConv block kernels (csrc/cpu/mbconv_block.cpp) against a float64 oracle written here: torch convs
in float64 with explicit pads (computed in this file, not by effkernels' padding helper).

Every distinct block shape class of EfficientNet-B0..B7 (expand ratio, kernel, stride, residual), at small odd
and even sizes with TF SAME padding, C_in and C_exp not multiples of 16, N = 1 and 2, both layouts, fp32 / fp16 /
bf16, with and without SE (its activation and gate differ from the block's), on both paths ("fused": expand
inside the depthwise row bands; "unfused") and at 1 and 4 threads (the fused path splits channels and rows
into tasks by the thread count, so both split shapes run).
"""
import math

import pytest
import torch
import torch.nn.functional as F

from effkernels import _ext, scaling
from effkernels._common import ACTIVATIONS, tap_major
from helpers import assert_close_to_ref, backend_unavailable

pytestmark = [pytest.mark.cpu, pytest.mark.skipif(backend_unavailable("cpu") is not None,
                                                  reason=str(backend_unavailable("cpu")))]
ops = torch.ops.effkernels

# (expand ratio, k, stride, residual) of every block of B0..B7 at its paper resolution.
CLASSES = sorted({(b.expand_ratio, b.kernel, b.stride, b.residual)
                  for phi in range(8) for b in scaling.block_shapes(phi, scaling.variant(phi).resolution)})


def _act(t, name):
    return {"none": lambda v: v, "relu": F.relu, "relu6": F.relu6, "silu": F.silu, "hardswish": F.hardswish,
            "sigmoid": torch.sigmoid, "hardsigmoid": F.hardsigmoid}[name](t)


def _same_pads(size, k, stride):
    """TF SAME: output ceil(size / stride), the odd pad at the end."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2, out


def _oracle(x, p, stride, pads, residual, act, se_act, gate):
    top, bottom, left, right = pads
    d = {k: (v.double() if v is not None else None) for k, v in p.items()}
    h = x.double()
    if d["ew"] is not None:
        h = _act(F.conv2d(h, d["ew"][:, :, None, None], d["eb"]), act)
    h = _act(F.conv2d(F.pad(h, (left, right, top, bottom)), d["dw"], d["db"], stride=stride, groups=h.shape[1]), act)
    if d["w1"] is not None:
        s = _act(F.linear(h.mean(dim=(2, 3)), d["w1"], d["b1"]), se_act)
        h = h * _act(F.linear(s, d["w2"], d["b2"]), gate)[:, :, None, None]
    out = F.conv2d(h, d["pw"][:, :, None, None], d["pb"])
    return out + x.double() if residual else out


def _params(c_in, c_exp, c_out, k, se, dtype, gen):
    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(dtype)

    p = dict(ew=None, eb=None, w1=None, b1=None, w2=None, b2=None)
    if c_exp != c_in:
        p.update(ew=rnd(c_exp, c_in, scale=c_in ** -0.5), eb=rnd(c_exp, scale=0.5))
    p.update(dw=rnd(c_exp, 1, k, k, scale=1 / k), db=rnd(c_exp, scale=0.5),
             pw=rnd(c_out, c_exp, scale=c_exp ** -0.5), pb=rnd(c_out, scale=0.5))
    if se:
        s = max(1, c_in // 4)
        p.update(w1=rnd(s, c_exp, scale=c_exp ** -0.5), b1=rnd(s, scale=0.5), w2=rnd(c_exp, s, scale=s ** -0.5),
                 b2=rnd(c_exp, scale=0.5))
    return p


def _poison_heap(nbytes, dtype):
    """Free a NaN-filled block of the output's size and dtype just before the call: the kernels allocate their
    outputs, and the allocator hands such a block back for small sizes, so an element left unwritten reads as
    NaN (best effort: large blocks come from fresh zeroed pages)."""
    t = torch.full((nbytes // torch.empty((), dtype=dtype).element_size() + 1,), float("nan"), dtype=dtype)
    del t


def _run(cls, h, w, n, dtype, channels_last, se, path, threads, act="hardswish", se_act="relu", gate="hardsigmoid",
         seed=0, c_in=None, dw_layout=lambda dw: dw, pack_dtype=None):
    expand, k, stride, residual = cls
    c_in = c_in or (11 if expand == 6 else 20)  # C_exp 66 / 20: not multiples of 16 (nor of 8 for 66)
    c_exp, c_out = c_in * expand, (c_in if residual else 13)
    gen = torch.Generator().manual_seed(seed)
    p = _params(c_in, c_exp, c_out, k, se, dtype, gen)
    x = torch.randn(n, c_in, h, w, generator=gen).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    top, bottom, oh = _same_pads(h, k, stride)
    left, right, ow = _same_pads(w, k, stride)
    def pack(w):  # pack_dtype float32: the fp32 panels, which every input dtype can run on
        return ops.pack_pointwise_weight(w if pack_dtype is None else w.to(pack_dtype))

    args = (x, None if p["ew"] is None else pack(p["ew"]), p["eb"], dw_layout(p["dw"]), p["db"], stride, top, left, oh, ow,
            p["w1"], p["b1"], p["w2"], p["b2"], pack(p["pw"]), p["pb"], residual, ACTIVATIONS[act],
            ACTIVATIONS[se_act], ACTIVATIONS[gate])
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _poison_heap(n * c_out * oh * ow * x.element_size(), dtype)
        out = ops.mbconv_packed(*args, path)
    finally:
        torch.set_num_threads(before)
    ref = _oracle(x, p, stride, (top, bottom, left, right), residual, act, se_act, gate)
    return out, ref


def _cls_id(c):
    return f"e{c[0]}k{c[1]}s{c[2]}{'r' if c[3] else ''}"


# The fused path needs an expand conv: expand-ratio-1 classes run unfused only.
@pytest.mark.parametrize("cls,path", [(c, p) for c in CLASSES for p in ("fused", "unfused") if c[0] != 1 or p == "unfused"],
                         ids=lambda v: _cls_id(v) if isinstance(v, tuple) else v)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("channels_last", [True, False], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("n,se,threads", [(1, True, 4), (2, False, 1), (1, False, 1), (2, True, 4)])
def test_block_classes(cls, path, dtype, channels_last, n, se, threads):
    out, ref = _run(cls, 9, 7, n, dtype, channels_last, se, path, threads)
    assert out.dtype == dtype
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert_close_to_ref(out, ref, dtype)


# What the extension says of this CPU (the fake packs by it too); test_pack_layouts checks the packing agrees.
AMX = backend_unavailable("cpu") is None and _ext._C.cpu_amx_bf16()
NO_AMX = "this CPU (or build) has no AMX: bf16 weights get the fp32 panels, tested everywhere"


@pytest.mark.parametrize("cls,path", [(c, p) for c in CLASSES for p in ("fused", "unfused") if c[0] != 1 or p == "unfused"],
                         ids=lambda v: _cls_id(v) if isinstance(v, tuple) else v)
@pytest.mark.parametrize("c_in,h,w,n,threads", [(11, 9, 7, 2, 4), (32, 6, 11, 1, 1), (40, 14, 13, 1, 2)])
def test_bf16_on_both_packings(cls, path, c_in, h, w, n, threads):
    """A bf16 weight packs as AMX panels where AMX runs (then test_block_classes' bf16 cases run the AMX GEMM)
    and as fp32 panels elsewhere; a bf16 input also runs on fp32 panels (packed from an fp32 weight). Both
    give the oracle's result, with SE (its scale rounded into the AMX GEMM's bf16 input), at K = C_in and
    C_exp not multiples of 32 and exactly 32 / 192, rows in groups of 32 with short last groups."""
    for pack_dtype in (None, torch.float32):
        out, ref = _run(cls, h, w, n, torch.bfloat16, True, True, path, threads, act="silu", se_act="silu",
                        gate="sigmoid", c_in=c_in, pack_dtype=pack_dtype)
        assert_close_to_ref(out, ref, torch.bfloat16)


def test_pack_layouts():
    """pack_pointwise_weight: fp32 panels [ceil(C_out / nr), C_in, nr] for every dtype, except a bf16 weight
    where AMX runs: bf16 [ceil(C_out / 32), ceil(C_in / 32) * 16, 32, 2] with W[c, k] at
    (c // 32, k // 2, c % 32, k % 2), zero past C_out and C_in."""
    nr = _ext._C.cpu_panel_width()
    w = torch.randn(37, 45)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        packed = ops.pack_pointwise_weight(w.to(dtype))
        if dtype == torch.bfloat16 and AMX:
            assert packed.dtype == torch.bfloat16 and packed.shape == (2, 32, 32, 2)
            full = torch.zeros(64, 64, dtype=torch.bfloat16)
            full[:37, :45] = w.to(dtype)
            assert torch.equal(packed, full.view(2, 32, 32, 2).permute(0, 2, 1, 3))
        else:
            assert packed.dtype == torch.float32 and packed.shape == (-(-37 // nr), 45, nr)
            full = torch.zeros(-(-37 // nr) * nr, 45)
            full[:37] = w.to(dtype).float()
            assert torch.equal(packed, full.view(-1, nr, 45).transpose(1, 2))


@pytest.mark.skipif(not AMX, reason=NO_AMX)
def test_amx_panels_refuse_other_dtypes():
    x = torch.randn(1, 45, 5, 5)
    w = torch.randn(37, 45, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="weight: holds AMX panels, which take bf16 inputs: got x Float"):
        ops.pointwise_conv_packed(x, ops.pack_pointwise_weight(w), torch.randn(37), 0, None, None)
    with pytest.raises(RuntimeError, match=r"weight: expected the AMX panels of a \[37, 44\] matrix"):
        ops.pointwise_conv_packed(x[:, :44].bfloat16(), ops.pack_pointwise_weight(w[:, :31]),
                                  torch.randn(37).bfloat16(), 0, None, None)


@pytest.mark.parametrize("cls", [c for c in CLASSES if c[0] == 6], ids=lambda c: f"k{c[1]}s{c[2]}")
@pytest.mark.parametrize("h,w", [(10, 12), (13, 5), (1, 1), (2, 3), (30, 17), (40, 130)])
def test_fused_sizes(cls, h, w):
    """Even sizes (asymmetric SAME pads at stride 2), images smaller than the kernel, and a size with several
    row bands per task split. A task expands its band's input rows in one GEMM when they fit kBandBytes, else
    row by row through a ring: 40x130 takes the ring at 1 thread (bands of 20 output rows), the one GEMM at 3."""
    for threads in (1, 3):
        out, ref = _run(cls, h, w, 1, torch.float32, True, True, "fused", threads, act="silu", se_act="silu",
                        gate="sigmoid")
        assert_close_to_ref(out, ref, torch.float32)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("cls,c_in,h,w,n", [((6, 5, 1, True), 24, 14, 14, 1), ((6, 3, 2, False), 32, 7, 7, 1),
                                            ((6, 5, 1, True), 19, 9, 23, 2), ((6, 3, 1, True), 40, 5, 5, 1),
                                            ((6, 5, 2, False), 24, 56, 50, 1)],
                         ids=["k5-24x14", "k3s2-32x7", "k5-19x9x23-n2", "k3-40x5", "k5s2-24x56x50"])
def test_balanced_task_splits(cls, c_in, h, w, n, threads):
    """At 2-3 threads and few samples, the fused path's tasks (chunks of channels, bands of rows: fused_plan) and
    the GEMMs' (panel groups x row blocks: gemm_split) are the candidate split with the least loaded largest
    thread: uneven channel chunks, several panel groups, one-sample and two-sample splits all run here, on both
    paths, with SE. 56 x 50 at batch 1 takes the row-affine orders (a band of rows a thread in fused_plan, row
    blocks outermost in gemm_split)."""
    for path in ("fused", "unfused"):
        out, ref = _run(cls, h, w, n, torch.float32, True, True, path, threads, c_in=c_in, act="silu",
                        se_act="silu", gate="sigmoid")
        assert_close_to_ref(out, ref, torch.float32)



@pytest.mark.parametrize("path", ["fused", "unfused"])
def test_task_stealing_gives_the_same_result(path):
    """The block kernels hand out their tasks with work stealing (csrc/cpu/parallel.h): which thread runs which
    task changes from call to call, most with more threads than cores (6 here), but every task writes its own
    outputs and the SE partial sums are added in task order, so the result must be bitwise the same on every
    call, and match the oracle. A task run twice by two threads sharing scratch, or one left out, fails here."""
    cls = (6, 3, 1, True)  # k3 s1: the unfused path's depthwise takes dw_direct for fp32 C % 8 == 0
    for seed in range(2):  # C_exp 6 * 24 = 144 (dw_direct), and 6 * 19 = 114 (the ring kernel)
        c_in = 24 if seed == 0 else 19
        first, ref = _run(cls, 31, 29, 2, torch.float32, True, True, path, 6, seed=seed, c_in=c_in, act="silu",
                          se_act="silu", gate="sigmoid")
        assert_close_to_ref(first, ref, torch.float32)
        for _ in range(10):
            out, _ = _run(cls, 31, 29, 2, torch.float32, True, True, path, 6, seed=seed, c_in=c_in, act="silu",
                          se_act="silu", gate="sigmoid")
            assert torch.equal(out, first)

@pytest.mark.parametrize("cls", [c for c in CLASSES if c[0] == 6], ids=lambda c: f"k{c[1]}s{c[2]}")
@pytest.mark.parametrize("path", ["fused", "unfused"])
@pytest.mark.parametrize("c_in", [8, 11])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_tap_major_depthwise_weight(cls, path, c_in, dtype):
    """The depthwise weight as the cpu layers pass it (tap_major: [k, k, C] storage), and a sliced one (no dense
    storage at all): the fused path reads an fp32 tap-major weight in place when C_exp is a multiple of the vector
    width (c_in 8: C_exp 48), and packs every other (c_in 11: C_exp 66; bf16); all give the oracle's result."""
    for layout in (tap_major, lambda dw: torch.stack([dw, dw * 0], -1)[..., 0]):
        out, ref = _run(cls, 9, 7, 1, dtype, True, True, path, 1, act="silu", se_act="silu", gate="sigmoid",
                        c_in=c_in, dw_layout=layout)
        assert_close_to_ref(out, ref, dtype)


def test_auto_and_plain_weights_match_forced_paths():
    """mbconv (plain 1x1 weights, packed per call) and path "auto" give the result of the path
    mbconv_path names."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 11, 9, 9, generator=gen).contiguous(memory_format=torch.channels_last)
    p = _params(11, 66, 11, 3, True, torch.float32, gen)
    geom = (1, 1, 1, 9, 9)
    se = (p["w1"], p["b1"], p["w2"], p["b2"])
    codes = (True, ACTIVATIONS["silu"], ACTIVATIONS["silu"], ACTIVATIONS["sigmoid"])
    path = ops.mbconv_path(2, 11, 9, 9, 66, 3, 1, True)
    assert path in ("fused", "unfused")
    pack = ops.pack_pointwise_weight
    forced = ops.mbconv_packed(x, pack(p["ew"]), p["eb"], p["dw"], p["db"], *geom, *se, pack(p["pw"]), p["pb"],
                               *codes, path)
    auto = ops.mbconv_packed(x, pack(p["ew"]), p["eb"], p["dw"], p["db"], *geom, *se, pack(p["pw"]), p["pb"], *codes)
    plain = ops.mbconv(x, p["ew"], p["eb"], p["dw"], p["db"], *geom, *se, p["pw"], p["pb"], *codes)
    torch.testing.assert_close(auto, forced, rtol=0, atol=0)
    torch.testing.assert_close(plain, forced, rtol=0, atol=0)
    assert ops.mbconv_path(2, 11, 9, 9, 11, 3, 1, False) == "unfused"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("channels_last", [True, False], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("c_in,c_out,hw", [(13, 37, (7, 5)), (320, 1280, (3, 3)), (40, 8, (1, 1)), (64, 70, (9, 11))])
def test_pointwise_conv_packed(dtype, channels_last, c_in, c_out, hw):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, c_in, *hw, generator=gen).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = (torch.randn(c_out, c_in, generator=gen) * c_in ** -0.5).to(dtype)
    b = torch.randn(c_out, generator=gen).to(dtype)
    scale = torch.rand(2, c_in, generator=gen)
    res = torch.randn(2, c_out, *hw, generator=gen).to(dtype)
    out = ops.pointwise_conv_packed(x, ops.pack_pointwise_weight(w), b, ACTIVATIONS["silu"], scale, res)
    xs = x.double() * scale.double()[:, :, None, None]
    ref = F.silu(F.conv2d(xs, w.double()[:, :, None, None], b.double())) + res.double()
    assert out.dtype == dtype
    assert_close_to_ref(out, ref, dtype)


def test_bad_arguments():
    x = torch.randn(1, 11, 9, 9)
    p = _params(11, 66, 13, 3, False, torch.float32, torch.Generator().manual_seed(3))
    pack = ops.pack_pointwise_weight

    def call(ew=pack(p["ew"]), pw=pack(p["pw"]), path="auto", dw=p["dw"], residual=False):
        return ops.mbconv_packed(x, ew, p["eb"], dw, p["db"], 1, 1, 1, 9, 9, None, None, None, None, pw, p["pb"],
                                 residual, 3, 3, 5, path)

    with pytest.raises(RuntimeError, match="expand_w: expected weights from effkernels::pack_pointwise_weight"):
        call(ew=p["ew"])
    with pytest.raises(RuntimeError, match="proj_w: expected weights from effkernels::pack_pointwise_weight"):
        call(pw=pack(p["pw"][:, :65]))
    with pytest.raises(RuntimeError, match="path: expected"):
        call(path="fast")
    with pytest.raises(RuntimeError, match="dw_w: expected an odd kernel size"):
        call(dw=torch.randn(66, 1, 4, 4))
    with pytest.raises(RuntimeError, match="residual: needs an output shaped like x"):
        call(residual=True)
    with pytest.raises(RuntimeError, match="weight: expected a 2-d"):
        pack(torch.randn(3, 4, 1, 1))
    with pytest.raises(RuntimeError, match="fused.*expand_w"):
        ops.mbconv_packed(x, None, None, torch.randn(11, 1, 3, 3), torch.randn(11), 1, 1, 1, 9, 9, None, None,
                          None, None, pack(torch.randn(13, 11)), torch.randn(13), False, 3, 3, 5, "fused")
    with pytest.raises(RuntimeError, match="mbconv_path: expected"):
        ops.mbconv_path(1, 11, 9, 9, 66, 3, 3, True)



# ---------------------------------------------------------------- fakes, layers


def _block_args(path):
    """mbconv_packed's arguments for a small SE block, stride 2 (its opcheck is in test_registration.py)."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 11, 9, 7, generator=gen).contiguous(memory_format=torch.channels_last)
    p = _params(11, 66, 13, 3, True, torch.float32, gen)
    pack = ops.pack_pointwise_weight
    return (x, pack(p["ew"]), p["eb"], p["dw"], p["db"], 2, 0, 0, 5, 4, p["w1"], p["b1"], p["w2"], p["b2"],
            pack(p["pw"]), p["pb"], False, 3, 3, 5, path)


def test_ops_compile_fullgraph():
    """The packed block traces under torch.compile (the fakes give its output's shape and layout) and gives the
    eager result."""
    import effkernels.ops  # noqa: F401

    args = _block_args("fused")
    fn = torch.compile(lambda *a: ops.mbconv_packed(*a), fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(fn(*args), ops.mbconv_packed(*args), rtol=0, atol=0)


def test_mbconv_path_under_fake_mode():
    """mbconv_path takes no tensor, so it answers the same under FakeTensorMode (the compiled layers' case)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    real = ops.mbconv_path(1, 16, 112, 112, 96, 3, 2, True)
    with FakeTensorMode():
        assert ops.mbconv_path(1, 16, 112, 112, 96, 3, 2, True) == real


def test_layers_pack_once_and_record_paths():
    """MBConv and the converted InvertedResidual on the cpu backend: the fold carries the packed 1x1 weights
    (packed at fold time, not per call), cpu_paths records the path per input shape (shown in repr), and
    the output matches the eager backend's."""
    tv = pytest.importorskip("torchvision")
    from effkernels import convert
    from effkernels.nn import InvertedResidual, MBConv

    torch.manual_seed(5)
    layer = MBConv(16, 24, 6, 3, 2, backend="cpu").eval()
    x = torch.randn(1, 16, 13, 11).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = layer(x)
        packed = layer.folded(x)[-1]
        assert packed is not None and packed[0].dim() == 3 and layer(x).equal(out)
        assert layer.folded(x)[-1] is packed  # the cache serves the same packed weights
        ref = layer.forward_fused(x, (*layer.folded(x)[:-1], None))  # plain weights, packed per call
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    key = (1, 16, 13, 11, torch.get_num_threads())
    assert layer.cpu_paths == {key: ops.mbconv_path(1, 16, 13, 11, 96, 3, 2, True)}
    assert f"1x16x13x11@{key[-1]}t: {layer.cpu_paths[key]}" in repr(layer)

    model = tv.models.efficientnet_b0().features[:3].eval()  # stem and 3 blocks: enough, and quick to convert
    fast = convert(model, backend="cpu")
    blocks = [m for m in fast.modules() if isinstance(m, (MBConv, InvertedResidual))]
    assert blocks
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-4)
    assert all(m.cpu_paths for m in blocks)
    assert "cpu paths" in str(fast.effkernels_report)
