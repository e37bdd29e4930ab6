"""mbconv (a whole MBConv inference forward) vs torchvision's MBConv in float64, and how many
kernels the Triton block launches."""
import copy

import pytest
import torch
import torch.nn as nn
from torch._library.custom_ops import OPDEFS
from torch.utils._python_dispatch import TorchDispatchMode
from torchvision.models.efficientnet import MBConv, MBConvConfig

from effkernels import reference
from effkernels._common import is_channels_last
from effkernels.fold import fold_bn
from effkernels.ops.mbconv import mbconv
from helpers import backends_for, assert_close_to_ref

pytestmark = pytest.mark.usefixtures("on_device")


BACKENDS = backends_for("mbconv")
HAS_TRITON = "triton" in BACKENDS


def _torchvision_block(expand, k, stride, c_in, c_out):
    block = MBConv(MBConvConfig(expand, k, stride, c_in, c_out, 1), 0.0, nn.BatchNorm2d)
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


def _params(block, dtype):
    """mbconv's arguments after x for a torchvision MBConv: BN folded, 1x1 weights as matrices."""
    layers = list(block.block)

    def conv_bn(layer):
        w, b = fold_bn(layer[0].weight, layer[1])
        return w.to(dtype), b.to(dtype)

    expand_w = expand_b = None
    if len(layers) == 4:
        expand_w, expand_b = conv_bn(layers.pop(0))
        expand_w = expand_w[:, :, 0, 0]
    dw, se, proj = layers
    dw_w, dw_b = conv_bn(dw)
    proj_w, proj_b = conv_bn(proj)
    k, stride = dw[0].kernel_size[0], dw[0].stride[0]
    se_ws = [t.detach().to(dtype) for t in (se.fc1.weight[:, :, 0, 0], se.fc1.bias, se.fc2.weight[:, :, 0, 0],
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
@pytest.mark.parametrize("expand,k,stride,c_in,c_out,h", BLOCKS)
@pytest.mark.parametrize("channels_last", [True, False], ids=["nhwc", "nchw"])
def test_matches_torchvision(backend, expand, k, stride, c_in, c_out, h, channels_last):
    block = _torchvision_block(expand, k, stride, c_in, c_out)
    x = torch.randn(2, c_in, h, h + 2)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = copy.deepcopy(block).double()(x.double())
        out = mbconv(x, *_params(block, torch.float32), backend=backend)
    assert is_channels_last(out) == channels_last
    assert_close_to_ref(out, ref, torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("expand,k,stride,c_in,c_out,h", [BLOCKS[0], BLOCKS[2], BLOCKS[4]])
def test_low_precision(backend, dtype, expand, k, stride, c_in, c_out, h):
    block = _torchvision_block(expand, k, stride, c_in, c_out)
    x = torch.randn(3, c_in, h, h).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = mbconv(x.to(dtype), *_params(block, dtype), backend=backend)
        # The oracle sees the same rounded input and weights, computed in float64.
        ref = reference.mbconv_ref(x.to(dtype).double(), *[p.double() if torch.is_tensor(p) else p
                                                            for p in _params(block, dtype)])
    assert out.dtype == dtype
    assert_close_to_ref(out, ref, dtype)


@pytest.mark.parametrize("dtype,n", [(torch.float32, 3), (torch.bfloat16, 5)], ids=["fp32-3x1", "bf16-3+2"])
@pytest.mark.parametrize("channels_last", [True, False], ids=["nhwc", "nchw"])
def test_cpu_batch_chunks(dtype, n, channels_last):
    """The CPU block runs the batch in chunks of about 4 MiB of expanded activations (mbconv.cpp):
    48 x 112 x 112 per sample is 2.4 MiB in fp32 (chunks of 1 sample), 1.2 MiB in bf16 (3 + 2)."""
    if "cpu" not in BACKENDS:
        pytest.skip("the cpu backend is not built")
    block = _torchvision_block(6, 3, 1, 8, 8)  # residual, SE
    x = torch.randn(n, 8, 112, 112)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    params = _params(block, dtype)
    with torch.no_grad():
        out = mbconv(x.to(dtype), *params, backend="cpu")
        ref = reference.mbconv_ref(x.to(dtype).double(), *[p.double() if torch.is_tensor(p) else p for p in params])
    assert out.dtype == dtype and is_channels_last(out) == channels_last
    assert_close_to_ref(out, ref, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_se_and_same_padding(backend):
    block = _torchvision_block(6, 5, 2, 8, 16)
    p = list(_params(block, torch.float32))
    p[5] = "same"           # TF SAME: asymmetric at stride 2 on an even size
    p[6:10] = [None] * 4    # no SE
    x = torch.randn(2, 8, 10, 10)
    with torch.no_grad():
        out = mbconv(x, *p, activation="relu6", backend=backend)
    ref = reference.mbconv_ref(x.double(), *[t.double() if torch.is_tensor(t) else t for t in p], activation="relu6")
    assert_close_to_ref(out, ref, torch.float32)


def test_bad_inputs():
    block = _torchvision_block(6, 3, 1, 8, 8)
    p = list(_params(block, torch.float32))
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
    call(5, "valid", "padding: expected")
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


@pytest.mark.skipif(not HAS_TRITON, reason="triton cannot run here")
def test_triton_squeeze_limit():
    from effkernels.triton.squeeze_excite import MAX_SQUEEZE

    p = list(_params(_torchvision_block(6, 3, 1, 8, 8), torch.float32))
    p[6], p[7], p[8] = torch.randn(MAX_SQUEEZE + 1, 48), torch.randn(MAX_SQUEEZE + 1), torch.randn(48, MAX_SQUEEZE + 1)
    with pytest.raises(ValueError, match="se_w1: the Triton SE kernel holds at most"):
        mbconv(torch.randn(1, 8, 5, 5), *p, backend="triton")


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "eager"])
def test_refuses_autograd(backend):
    block = _torchvision_block(6, 3, 1, 8, 8)
    p = list(_params(block, torch.float32))
    p[9].requires_grad_()
    with pytest.raises(RuntimeError, match="backend='eager'"):
        mbconv(torch.randn(1, 8, 5, 5), *p, backend=backend)


# Ops that allocate or reinterpret memory without running a kernel.
_NO_KERNEL = {"empty", "empty_strided", "new_empty", "new_empty_strided", "view", "_unsafe_view", "as_strided",
              "permute", "t", "transpose", "unsqueeze", "squeeze", "select", "slice", "alias", "detach", "expand"}


def _kernels(fn):
    """Run fn; return (triton kernels launched, other aten ops that would run a device kernel, effkernels
    ops that went through the torch dispatcher).

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
            if func.overloadpacket.__name__ not in _NO_KERNEL:
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


LAUNCH_CASES = [  # (expand, se): expected Triton launches
    pytest.param(6, True, 4, id="expand6-se"),
    pytest.param(1, True, 3, id="expand1-se"),
    pytest.param(6, False, 3, id="expand6-nose"),
    pytest.param(1, False, 2, id="expand1-nose"),
]


def _launch_block(expand, se):
    block = _torchvision_block(expand, 3, 1, 16, 16)
    p = list(_params(block, torch.float32))
    if not se:
        p[6:10] = [None] * 4
    x = torch.randn(2, 16, 7, 7).contiguous(memory_format=torch.channels_last)
    return lambda: mbconv(x, *p, backend="triton")


@pytest.mark.skipif(not HAS_TRITON, reason="triton cannot run here")
@pytest.mark.parametrize("expand,se,expected", LAUNCH_CASES)
def test_triton_launches(expand, se, expected):
    """At most 4 Triton kernels per block (3 when expand ratio is 1): expand, dw (+ SE sums),
    excite, project (+ scale, residual); called eagerly, the launchers directly: no effkernels op
    enters the torch dispatcher (a custom-op hop costs more than the kernel on small layers)."""
    fn = _launch_block(expand, se)
    launched, _, dispatched = _kernels(fn)
    assert len(launched) == expected, launched
    assert dispatched == [], dispatched


@pytest.mark.skipif(not HAS_TRITON, reason="triton cannot run here")
@pytest.mark.parametrize("expand,se,expected", LAUNCH_CASES)
def test_no_hidden_kernels(expand, se, expected):
    """Nothing but the Triton launches runs a kernel: no zero-fills, copies or casts around them."""
    fn = _launch_block(expand, se)
    launched, hidden, _ = _kernels(fn)
    assert len(launched) == expected and hidden == [], (launched, hidden)


@pytest.mark.skipif(not HAS_TRITON, reason="triton cannot run here")
@pytest.mark.parametrize("channels_last", [True, False], ids=["nhwc", "nchw"])
def test_partial_sums_poisoned(monkeypatch, channels_last):
    """The dw kernel's [N, P_blocks, C] partial sums come uninitialised: NaN-fill them, so a slot the
    dw kernel does not write, or a row se_excite reads that it should not, shows in the output. The
    buffer has exactly the rows of the tile the launcher picked, on every call."""
    import effkernels.triton.dwconv_bn_act as tri

    alloc = tri._empty_partials
    rows = []

    def poisoned(n, r, c, device):
        rows.append(r)
        return alloc(n, r, c, device).fill_(float("nan"))

    monkeypatch.setattr(tri, "_empty_partials", poisoned)
    block = _torchvision_block(6, 3, 1, 16, 16)
    x = torch.randn(2, 16, 11, 13)  # 143 pixels: several pixel blocks of most configs
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    params = _params(block, torch.float32)
    with torch.no_grad():
        ref = copy.deepcopy(block).double()(x.double())
        first = mbconv(x, *params, backend="triton")
        second = mbconv(x, *params, backend="triton")
    table = tri.NHWC if channels_last else tri.STRIDED
    picked = table.pick(("fp32", 2, params[2].shape[0], 11, 13, 3, 1), x.device).kwargs["BLOCK_P"]
    assert rows == [-(-143 // picked)] * 2
    assert_close_to_ref(first, ref, torch.float32)
    assert_close_to_ref(second, ref, torch.float32)


@pytest.mark.skipif(not HAS_TRITON, reason="triton cannot run here")
def test_opcheck_dw_se_op():
    """The custom op torch.compile traces for the dw + SE excite steps: schema and fake kernel."""
    block = _torchvision_block(6, 3, 2, 8, 16)
    p = _params(block, torch.float32)
    h = torch.randn(2, 48, 9, 9).contiguous(memory_format=torch.channels_last)
    torch.library.opcheck(torch.ops.effkernels_triton.mbconv_dw_se.default,
                          (h, p[2], p[3], 2, 1, 1, 5, 5, 3, *p[6:10], 3, 5),
                          test_utils=("test_schema", "test_faketensor"))
