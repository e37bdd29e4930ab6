"""mbconv (a whole MBConv inference forward) on every backend against the float64 oracle and against
torchvision's MBConv, with SE activations that differ from the block's, and how many kernels the
Triton block launches."""
import copy

import pytest
import torch
import torch.nn as nn
from torch._library.custom_ops import OPDEFS
from torch.utils._python_dispatch import TorchDispatchMode
from torchvision.models.efficientnet import MBConv, MBConvConfig

from effkernels._common import ACTIVATIONS, is_channels_last
from effkernels.fold import fold_bn
from effkernels.ops.mbconv import mbconv
from helpers import assert_close_to_ref, backend_device, backend_params, cxx_error_inputs, matrix
from op_cases import DTYPES, MB, MB_ACTS, MB_CASES, check_mbconv, make_x, mb_params, mb_sample, rotate
import oracles

BACKENDS = backend_params()
TRITON = [p for p in BACKENDS if p.values[0] == "triton"]


def _one_combo(i, j, k, n_dtypes, n_layouts):
    """A sampled backend (helpers.sampled) runs each block once (four launches a call in the interpreter): its
    dtype rotating with the case, its layout every third case, so across the cases every dtype meets both layouts."""
    return j == i % n_dtypes and k == (i // n_dtypes) % n_layouts


@pytest.mark.parametrize("i,dtype,layout,backend", matrix([str(tuple(c)) for c in MB_CASES], DTYPES,
                                                          ["channels_last", "nchw"], share=_one_combo))
def test_matches_oracle(i, dtype, layout, backend, poisoned):
    """Every case, dtype and layout; the (block, SE, gate) activations rotate with the case and dtype."""
    acts = rotate(MB_ACTS, i, DTYPES.index(dtype))
    s = mb_sample(MB_CASES[i], backend_device(backend), dtype, layout, acts)
    with torch.no_grad():
        check_mbconv(mbconv(*s.args, **s.kwargs, backend=backend), s)


_EXPAND_CASES = [i for i, c in enumerate(MB_CASES) if c.expand > 1]


@pytest.mark.parametrize("backend", TRITON)
@pytest.mark.parametrize("library_project", [True, False], ids=["library_project", "triton_project"])
@pytest.mark.parametrize("i", _EXPAND_CASES, ids=[str(tuple(MB_CASES[i])) for i in _EXPAND_CASES])
def test_fused_path_matches_oracle(i, library_project, backend, force_path, poisoned):
    """The Triton block on its fused path (expand computed inside the depthwise kernel) with each project GEMM,
    every case with an expand conv (N = 0 and 1 among them): the library project on channels_last (the fused
    kernel initialises its output), the Triton project on both layouts; dtype and activations rotate."""
    from helpers import fused_test_tile

    case = MB_CASES[i]
    dtype = DTYPES[i % len(DTYPES)]
    layout = "channels_last" if library_project or i % 2 else "nchw"
    ran = force_path(fused_test_tile(case.c_in, case.c_in * case.expand), library_project)
    s = mb_sample(case, backend_device(backend), dtype, layout, rotate(MB_ACTS, i, 0))
    with torch.no_grad():
        check_mbconv(mbconv(*s.args, **s.kwargs, backend=backend), s)
    assert ran == ["fused"] + ([3 if case.se else 2] if library_project else []), ran


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("acts", MB_ACTS, ids="/".join)
def test_every_activation_triple(acts, backend, poisoned):
    s = mb_sample(MB(6, 3, 1, 8, 8, 2, 7, 9, 1, (1, 1, 1, 1), True), backend_device(backend), torch.float32,
                  "channels_last", acts)
    s.args[0].mul_(3)  # (the oracle sees it) reach the saturation points of relu6 / hardswish / hardsigmoid
    with torch.no_grad():
        check_mbconv(mbconv(*s.args, **s.kwargs, backend=backend), s)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["cl_view", "nchw_view"])
def test_non_contiguous_input(layout, backend, poisoned):
    s = mb_sample(MB_CASES[3], backend_device(backend), torch.float32, layout, MB_ACTS[1])
    with torch.no_grad():
        check_mbconv(mbconv(*s.args, **s.kwargs, backend=backend), s)


# ---------------------------------------------------------------- vs torchvision (BN folded by effkernels.fold)

_ACT_MODULES = {"none": nn.Identity, "silu": nn.SiLU, "relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.Hardswish,
                "sigmoid": nn.Sigmoid, "hardsigmoid": nn.Hardsigmoid}


def _torchvision_block(expand, k, stride, c_in, c_out, acts):
    """torchvision's MBConv with random BN statistics and the (block, SE, gate) activations `acts`."""
    block = MBConv(MBConvConfig(expand, k, stride, c_in, c_out, 1), 0.0, nn.BatchNorm2d)
    act, se_act, gate = acts
    layers = list(block.block)
    for layer in layers[:-2]:  # expand (when present) and depthwise: conv, BN, activation
        layer[2] = _ACT_MODULES[act]()
    layers[-2].activation, layers[-2].scale_activation = _ACT_MODULES[se_act](), _ACT_MODULES[gate]()
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):  # away from the init values, so folding matters
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
            elif isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.uniform_(-0.5, 0.5)
    return block.eval()


def _params(block, dtype, device):
    """mbconv's arguments after x for a torchvision MBConv: BN folded, 1x1 weights as matrices."""
    layers = list(block.block)

    def conv_bn(layer):
        w, b = fold_bn(layer[0].weight, layer[1])
        return w.detach().to(device, dtype), b.detach().to(device, dtype)

    expand_w = expand_b = None
    if len(layers) == 4:
        expand_w, expand_b = conv_bn(layers.pop(0))
        expand_w = expand_w[:, :, 0, 0]
    dw, se, proj = layers
    dw_w, dw_b = conv_bn(dw)
    proj_w, proj_b = conv_bn(proj)
    k, stride = dw[0].kernel_size[0], dw[0].stride[0]
    se_ws = [t.detach().to(device, dtype) for t in (se.fc1.weight[:, :, 0, 0], se.fc1.bias, se.fc2.weight[:, :, 0, 0],
                                                     se.fc2.bias)]
    return (expand_w, expand_b, dw_w, dw_b, stride, (k - 1) // 2, *se_ws, proj_w[:, :, 0, 0], proj_b,
            block.use_res_connect)


# (expand, k, stride, C_in, C_out, H): residual blocks (stride 1, C_in == C_out) and the rest.
BLOCKS = [
    (1, 3, 1, 16, 16, 9),
    (1, 5, 2, 16, 24, 9),
    (6, 3, 1, 8, 8, 9),
    (6, 5, 1, 8, 16, 7),
    (6, 3, 2, 8, 16, 10),
    (6, 5, 2, 8, 8, 9),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("i", range(len(BLOCKS)), ids=[str(b) for b in BLOCKS])
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
def test_matches_torchvision(i, layout, backend, poisoned):
    acts = rotate(MB_ACTS, i)
    block = _torchvision_block(*BLOCKS[i][:5], acts)
    c_in, h = BLOCKS[i][3], BLOCKS[i][5]
    x = make_x((2, c_in, h, h + 2), torch.float32, layout, "cpu")
    device = backend_device(backend)
    with torch.no_grad():
        ref = copy.deepcopy(block).double()(x.double())
        out = mbconv(x.to(device), *_params(block, torch.float32, device), *acts, backend=backend)
    assert is_channels_last(out) == (layout == "channels_last")
    assert_close_to_ref(out, ref, torch.float32)


@pytest.mark.parametrize("backend", backend_params(("cpu",)))
@pytest.mark.parametrize("dtype,n", [(torch.float32, 3), (torch.bfloat16, 5)], ids=["fp32-3x1", "bf16-3+2"])
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
def test_cpu_batch_chunks(dtype, n, layout, backend, poisoned):
    """The CPU block runs the batch in chunks of about 4 MiB of expanded activations (cpu/mbconv_block.cpp):
    48 x 112 x 112 per sample is 2.4 MiB in fp32 (chunks of 1 sample), 1.2 MiB in bf16 (3 + 2)."""
    s = mb_sample(MB(6, 3, 1, 8, 8, n, 112, 112, 1, (1, 1, 1, 1), True), "cpu", dtype, layout, MB_ACTS[2])
    with torch.no_grad():
        check_mbconv(mbconv(*s.args, **s.kwargs, backend=backend), s)


def test_bad_inputs():
    p = list(mb_params(MB_CASES[3], torch.float32, "cpu"))
    x = torch.randn(2, 8, 9, 9)

    def call(i, value, match, **kw):
        q = list(p)
        q[i] = value
        with pytest.raises(ValueError, match=match):
            mbconv(x, *q, backend="eager", **kw)

    call(0, p[0][:, :5], "expand_w: expected shape")
    call(1, None, "expand_w, expand_b: give both")
    call(2, p[2][:5], "dw_w: expected shape")
    call(3, p[3].half(), "dw_b: expected dtype")
    call(4, 0, "stride: expected a positive int")
    call(5, "full", "padding: expected")
    call(6, None, "se_w1, se_b1, se_w2, se_b2: give all four")
    call(8, p[8][:, :1], "se_w2: expected shape")
    call(10, p[10][:4], "proj_b: expected shape")
    call(12, 1, "residual: expected a bool")
    q = list(p)
    q[4] = 2
    with pytest.raises(ValueError, match="residual: the block maps"):
        mbconv(x, *q, backend="eager")
    with pytest.raises(ValueError, match="se_gate: expected one of"):
        mbconv(x, *p, se_gate="tanh", backend="eager")
    with pytest.raises(ValueError, match="activation: expected one of"):
        mbconv(x, *p, activation="gelu", backend="eager")


@pytest.mark.parametrize("backend", TRITON)
def test_triton_squeeze_limit(backend):
    from effkernels.triton.squeeze_excite import MAX_SQUEEZE

    device = backend_device(backend)
    p = list(mb_params(MB_CASES[3], torch.float32, device))
    p[6], p[7], p[8] = (torch.randn(MAX_SQUEEZE + 1, 48, device=device), torch.randn(MAX_SQUEEZE + 1, device=device),
                        torch.randn(48, MAX_SQUEEZE + 1, device=device))
    with pytest.raises(ValueError, match="se_w1: the Triton SE kernel holds at most"):
        mbconv(torch.randn(1, 8, 5, 5, device=device), *p, backend="triton")


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.values[0] != "eager"])
def test_refuses_autograd(backend):
    device = backend_device(backend)
    p = list(mb_params(MB_CASES[3], torch.float32, device))
    p[9].requires_grad_()
    with pytest.raises(RuntimeError, match="backend='eager'"):
        mbconv(torch.randn(1, 8, 5, 5, device=device), *p, backend=backend)


@pytest.mark.parametrize("device", backend_params(("cpu", "cuda")))
def test_cxx_error_messages(device, request):
    if (inputs := cxx_error_inputs(device, request)) is None:
        return
    ops, x = inputs
    w, b = torch.randn(8, 1, 3, 3, device=device), torch.randn(8, device=device)
    silu, sigmoid = ACTIVATIONS["silu"], ACTIVATIONS["sigmoid"]
    with pytest.raises(RuntimeError, match=r"expand_w/expand_b: expected both or neither"):
        ops.mbconv(x, torch.randn(16, 8, device=device), None, w, b, 1, 1, 1, 9, 9, None,
                                            None, None, None, torch.randn(8, 8, device=device), b, False, silu, silu,
                                            sigmoid)
    with pytest.raises(RuntimeError, match=r"residual: needs an output shaped like x"):
        ops.mbconv(x, None, None, w, b, 2, 1, 1, 5, 5, None, None, None, None,
                                            torch.randn(8, 8, device=device), b, True, silu, silu, sigmoid)


# ---------------------------------------------------------------- what the Triton block launches

# Ops that allocate or reinterpret memory without running a kernel.
_NO_KERNEL = {"empty", "empty_strided", "new_empty", "new_empty_strided", "view", "_unsafe_view", "as_strided",
              "permute", "t", "transpose", "unsqueeze", "squeeze", "select", "slice", "alias", "detach", "expand"}
# Library GEMMs (cuBLAS on a GPU): one device launch each, counted with the Triton launches.
_GEMMS = {"mm", "addmm", "addmm_", "bmm", "baddbmm", "baddbmm_"}


def _kernels(fn):
    """Run fn; return (device launches: triton kernels and library GEMMs, other aten ops that would run a
    device kernel, effkernels ops that went through the torch dispatcher).

    Patches triton's launch entry points and walks into the effkernels_triton custom ops (a
    TorchDispatchMode otherwise sees them as one opaque call), so a zero-fill or copy inside a
    launcher counts too. What the interpreter does inside a launch is not counted.
    """
    import triton.runtime.interpreter as interp
    import triton.runtime.jit as jit

    launched, hidden, dispatched, depth = [], [], [], [0]
    originals = {cls: cls.run for cls in (interp.InterpretedFunction, jit.JITFunction)}

    def patched(cls):
        def run(self, *args, warmup=False, **kwargs):
            if not warmup:
                launched.append(self.fn.__name__)
            depth[0] += 1
            try:
                return originals[cls](self, *args, warmup=warmup, **kwargs)
            finally:
                depth[0] -= 1
        return run

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if depth[0]:
                return func(*args, **kwargs)
            if func.namespace.startswith("effkernels"):
                dispatched.append(str(func))
            if func.namespace == "effkernels_triton":
                with self:  # run the op's Python body under this mode
                    return OPDEFS[func._schema.name]._init_fn(*args, **kwargs)
            if func.overloadpacket.__name__ in _GEMMS:
                launched.append(str(func))
            elif func.overloadpacket.__name__ not in _NO_KERNEL:
                hidden.append(str(func))
            return func(*args, **kwargs)

    try:
        for cls in originals:
            cls.run = patched(cls)
        with torch.no_grad(), Recorder():
            fn()
    finally:
        for cls, run in originals.items():
            cls.run = run
    return launched, hidden, dispatched


LAUNCH_CASES = [  # (expand, se): expected device launches (channels_last: library GEMMs for both 1x1 convs)
    pytest.param(6, True, 4, id="expand6-se"),
    pytest.param(1, True, 3, id="expand1-se"),
    pytest.param(6, False, 3, id="expand6-nose"),
    pytest.param(1, False, 2, id="expand1-nose"),
]


def _launch_block(expand, se, device):
    case = MB(expand, 3, 1, 16, 16, 2, 7, 7, 1, (1, 1, 1, 1), se)
    s = mb_sample(case, device, torch.float32, "channels_last")
    return lambda: mbconv(*s.args, **s.kwargs, backend="triton")


@pytest.mark.parametrize("backend", TRITON)
@pytest.mark.parametrize("expand,se,expected", LAUNCH_CASES)
def test_triton_launches(expand, se, expected, backend):
    """At most 4 device launches per block (3 when expand ratio is 1): expand, dw (+ SE sums), excite,
    project; called eagerly, the launchers directly: no effkernels op enters the torch dispatcher (a
    custom-op hop costs more than the kernel on small layers)."""
    fn = _launch_block(expand, se, backend_device(backend))
    launched, _, dispatched = _kernels(fn)
    assert len(launched) == expected, launched
    assert dispatched == [], dispatched


@pytest.mark.parametrize("backend", TRITON)
@pytest.mark.parametrize("expand,se,expected", LAUNCH_CASES)
def test_no_hidden_kernels(expand, se, expected, backend):
    """Nothing but the Triton launches and library GEMMs runs a kernel: no zero-fills, copies or casts."""
    fn = _launch_block(expand, se, backend_device(backend))
    launched, hidden, _ = _kernels(fn)
    assert len(launched) == expected and hidden == [], (launched, hidden)
