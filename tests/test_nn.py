"""effkernels.nn layers against torchvision's (the oracle, run in float64), random weights and
non-trivial BN statistics. Tolerances: tests/helpers.py TOL per dtype (fp32 rel 1e-5 / abs 1e-4)."""
import copy
import subprocess
import sys
from functools import partial

import pytest
import torch
from torch import nn

import effkernels
import effkernels.nn as enn
from helpers import assert_close_to_ref, check_in_precision

tv_eff = pytest.importorskip("torchvision.models.efficientnet")
from torchvision.ops.misc import Conv2dNormActivation, SqueezeExcitation  # noqa: E402


def backend_or_skip(name, op="mbconv"):
    """Skip when `name` cannot run the C++ op `op` (schema name) on CPU tensors here, with the reason."""
    ok, why = effkernels.backends_available()[name]
    if not ok:
        pytest.skip(f"backend {name!r} unavailable: {why}")
    if name == "cpu":
        try:
            has = torch._C._dispatch_has_kernel_for_dispatch_key(f"effkernels::{op}", "CPU")
        except RuntimeError:  # schema not registered
            has = False
        if not has:
            pytest.skip(f"effkernels._C has no CPU kernel for {op}")
    return name


BACKENDS = ["eager", "triton", "cpu"]


def randomize_bn_(model):
    """Non-trivial BN statistics and affine parameters (fresh BNs would fold to the identity)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                for t, lo, hi in ((m.running_mean, -0.5, 0.5), (m.running_var, 0.5, 2.0), (m.weight, 0.5, 1.5),
                                  (m.bias, -0.3, 0.3)):
                    if t is not None:  # affine=False, track_running_stats=False
                        t.uniform_(lo, hi)
    return model


def tv_mbconv(e, k, s, i, o, eps=1e-5, sd=0.0):
    cnf = tv_eff.MBConvConfig(e, k, s, i, o, 1)
    return randomize_bn_(tv_eff.MBConv(cnf, sd, partial(nn.BatchNorm2d, eps=eps)))


def mbconv_pair(e, k, s, i, o, backend):
    """(torchvision MBConv, effkernels MBConv with its weights), both in eval mode."""
    tv = tv_mbconv(e, k, s, i, o).eval()
    ours = enn.MBConv(i, o, e, k, s, backend=backend).eval()
    ours.load_state_dict(tv.state_dict())
    return tv, ours


CONFIGS = [  # (expand, k, stride, in, out): no expand, stride 2, residual, k5 stride 2
    (1, 3, 1, 32, 16),
    (6, 3, 2, 16, 24),
    (6, 5, 1, 40, 40),
    (4, 5, 2, 24, 40),
]


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_mbconv_state_dict_matches_torchvision(cfg, eps):
    e, k, s, i, o = cfg
    tv = tv_mbconv(*cfg, eps=eps)
    ours = enn.MBConv(i, o, e, k, s, bn_eps=eps)
    assert {n: t.shape for n, t in tv.state_dict().items()} == {n: t.shape for n, t in ours.state_dict().items()}
    ours.load_state_dict(tv.state_dict(), strict=True)
    assert ours.use_res_connect == tv.use_res_connect
    tv.load_state_dict(ours.state_dict(), strict=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cfg", CONFIGS)
def test_mbconv_eval_matches_torchvision(cfg, backend):
    backend = backend_or_skip(backend)
    e, k, s, i, o = cfg
    tv, ours = mbconv_pair(*cfg, backend)
    x = torch.randn(2, i, 17, 14)
    with torch.no_grad():
        ref = tv.double()(x.double())
        out = ours(x)
    assert out.dtype == torch.float32
    assert_close_to_ref(out, ref, torch.float32)


def test_mbconv_train_mode_is_torchvision_training_math():
    tv = tv_mbconv(6, 3, 1, 16, 16, sd=0.5).train()
    ours = enn.MBConv(16, 16, 6, 3, 1, stochastic_depth_prob=0.5).train()
    ours.load_state_dict(tv.state_dict())
    x = torch.randn(8, 16, 9, 9)
    xr = x.clone().requires_grad_()
    xo = x.clone().requires_grad_()
    torch.manual_seed(1)
    ref = tv(xr)
    torch.manual_seed(1)
    out = ours(xo)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)  # same ops in the same order
    ref.square().sum().backward()
    out.square().sum().backward()
    torch.testing.assert_close(xo.grad, xr.grad, rtol=0, atol=0)
    for (n, a), b in zip(tv.state_dict().items(), ours.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=n)  # running stats updated alike
    ours.eval()
    with torch.no_grad():  # stochastic depth is the identity in eval
        torch.testing.assert_close(ours(x), ours(x))


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_mbconv_folds_once_and_refolds_on_change(monkeypatch, mode):
    """Built outside inference_mode, the layer's tensors keep version counters, bumped by in-place edits
    and load_state_dict under torch.inference_mode too: it folds once, and again only after a change."""
    tv, ours = mbconv_pair(6, 3, 1, 16, 16, "eager")
    calls = []
    fold = enn.MBConv._fold
    monkeypatch.setattr(enn.MBConv, "_fold", lambda self: calls.append(1) or fold(self))
    x = torch.randn(2, 16, 8, 8)
    with mode():
        ours(x)
        ours(x)
        assert len(calls) == 1, "folded per call"
        tv2 = tv_mbconv(6, 3, 1, 16, 16).eval()  # new weights through load_state_dict
        ours.load_state_dict(tv2.state_dict())
        assert_close_to_ref(ours(x), tv2.double()(x.double()), torch.float32, what="after load_state_dict")
        assert len(calls) == 2
        ours.block[1][1].running_var.mul_(3.0)  # in-place edits of a buffer and of an SE bias
        tv2.block[1][1].running_var.mul_(3.0)
        ours.block[2].fc1.bias.add_(0.25)
        tv2.block[2].fc1.bias.add_(0.25)
        assert_close_to_ref(ours(x), tv2(x.double()), torch.float32, what="after in-place edit")
        assert len(calls) == 3
        assert not any(p.is_inference() for p in ours.parameters())
    with torch.no_grad():
        ours.half()  # .to(dtype) replaces the tensors
        assert_close_to_ref(ours(x.half()), tv2(x.double()), torch.float16, what="after .half()")
        assert len(calls) == 4


@pytest.mark.parametrize("backend", ["eager", "cpu"])
def test_mbconv_refolds_on_replaced_tensors_and_submodules(backend):
    """Tensors and submodules replaced by assignment (new objects, not in-place edits) are seen too: a new
    conv weight Parameter, a new BN buffer, a conv bias going from None to a tensor (the SE conv's), a whole
    new BN module; each forward after a change serves the new weights."""
    backend = backend_or_skip(backend)
    tv, ours = mbconv_pair(6, 3, 1, 16, 16, backend)
    x = torch.randn(2, 16, 8, 8)

    def both(edit):
        for m in (tv, ours):
            edit(m)
        assert_close_to_ref(ours(x), tv.double()(x.double()).float(), torch.float32, what=edit.__doc__)

    with torch.no_grad():
        ours(x)
        w = torch.randn_like(tv.block[0][0].weight)

        def new_weight(m):
            """a new expand conv weight Parameter"""
            m.block[0][0].weight = nn.Parameter(w.clone(), requires_grad=False)

        def new_buffer(m):
            """a new depthwise BN running_var"""
            m.block[1][1].running_var = torch.full_like(m.block[1][1].running_var, 2.5)

        def new_bias(m):
            """a bias on the depthwise conv, None before"""
            m.block[1][0].bias = nn.Parameter(torch.linspace(-1, 1, m.block[1][0].out_channels), requires_grad=False)

        def new_bn(m):
            """a new project BN module"""
            bn = copy.deepcopy(m.block[3][1])
            bn.bias.add_(0.5)
            m.block[3][1] = bn

        for edit in (new_weight, new_buffer, new_bias, new_bn):
            both(edit)
            tv.float()


def test_mbconv_under_inference_mode():
    """Layers built under torch.inference_mode hold inference tensors (no version counter, so an
    in-place edit leaves no trace): they fold on every call, with a warning, and never serve stale
    weights: after load_state_dict, an in-place edit after a forward, or .half()."""
    tv = tv_mbconv(6, 3, 1, 16, 16).eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.inference_mode():
        ours = enn.MBConv(16, 16, 6, 3, 1, backend="eager").eval()
        ours.load_state_dict(tv.state_dict())
        assert all(p.is_inference() for p in ours.parameters())
        with pytest.warns(UserWarning, match="holds inference tensors"):
            assert_close_to_ref(ours(x), tv.double()(x.double()), torch.float32)
        tv2 = tv_mbconv(6, 3, 1, 16, 16).eval()
        ours.load_state_dict(tv2.state_dict())  # in place into the inference tensors
        assert_close_to_ref(ours(x), tv2.double()(x.double()), torch.float32, what="after load_state_dict")
        ours.block[1][1].running_var.mul_(3.0)  # in place, after a forward
        tv2.block[1][1].running_var.mul_(3.0)
        assert_close_to_ref(ours(x), tv2(x.double()), torch.float32, what="after in-place edit")
        ours.half()
        assert_close_to_ref(ours(x.half()), tv2(x.double()), torch.float16, what="after .half()")


@pytest.mark.parametrize("backend", BACKENDS)
def test_mbconv_channels_last(backend):
    backend = backend_or_skip(backend)
    tv, ours = mbconv_pair(6, 3, 1, 24, 24, backend)
    ours.to(memory_format=torch.channels_last)
    x = torch.randn(2, 24, 11, 13).to(memory_format=torch.channels_last)
    with torch.no_grad():
        out = ours(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert_close_to_ref(out, tv.double()(x.double()), torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("how", ["cast", "autocast"])
def test_mbconv_low_precision(dtype, how, backend):
    """Within the dtype's TOL of float64 (DESIGN.md: folded weights are rounded to the activation
    dtype, so under autocast the error can exceed 2x that of eager, whose BN stays in fp32)."""
    backend = backend_or_skip(backend)
    tv, ours = mbconv_pair(6, 3, 1, 24, 24, backend)
    check_in_precision(ours, tv, torch.randn(2, 24, 9, 9), dtype, how)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mbconv_torch_compile(backend):
    backend = backend_or_skip(backend)
    tv, ours = mbconv_pair(4, 3, 1, 16, 16, backend)
    compiled = torch.compile(ours, fullgraph=True)
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        assert_close_to_ref(compiled(x), tv.double()(x.double()), torch.float32)
        tv2 = tv_mbconv(4, 3, 1, 16, 16).eval()
        ours.load_state_dict(tv2.state_dict())  # the compiled model sees the new weights
        assert_close_to_ref(compiled(x), tv2.double()(x.double()), torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding", ["symmetric", "same"])
@pytest.mark.parametrize("k,stride,hw", [(3, 1, (9, 9)), (5, 2, (10, 11)), (3, 2, (8, 8))])
def test_dwconv_bn_act(backend, padding, k, stride, hw):
    """Against torch Conv2d (symmetric) or timm's Conv2dSame (TF SAME), + BN + SiLU, in float64."""
    backend = backend_or_skip(backend, "dwconv_bn_act")
    c = 24
    ours = enn.DWConvBNAct(c, k, stride, padding=padding, backend=backend)
    if padding == "same":
        conv_same = pytest.importorskip("timm.layers").Conv2dSame
        conv = conv_same(c, c, k, stride, groups=c, bias=False)
    else:
        conv = nn.Conv2d(c, c, k, stride, (k - 1) // 2, groups=c, bias=False)
    ref_mod = randomize_bn_(nn.Sequential(conv, nn.BatchNorm2d(c), nn.SiLU()))
    assert list(ref_mod.state_dict()) == list(ours.state_dict())
    ours.load_state_dict(ref_mod.state_dict())
    x = torch.randn(2, c, *hw)
    with torch.no_grad():
        ref = copy.deepcopy(ref_mod).eval().double()(x.double())
        assert_close_to_ref(ours.eval()(x), ref, torch.float32, what="eval")
        # train mode: batch statistics, the same math as the unfolded modules
        torch.testing.assert_close(ours.train()(x), ref_mod.train()(x))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("act,gate", [("silu", "sigmoid"), ("relu", "hardsigmoid")])
def test_squeeze_excite_matches_torchvision(backend, act, gate):
    backend = backend_or_skip(backend, "se_excite")
    acts = {"silu": nn.SiLU, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "hardsigmoid": nn.Hardsigmoid}
    tv = SqueezeExcitation(40, 10, acts[act], acts[gate])
    ours = enn.SqueezeExcite(40, 10, activation=act, gate=gate, backend=backend)
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(3, 40, 7, 5)
    with torch.no_grad():
        assert_close_to_ref(ours.eval()(x), tv.double()(x.double()), torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("act", ["none", "hardswish"])
def test_pointwise_conv_bn_act(backend, act):
    backend = backend_or_skip(backend, "pointwise_conv")
    ours = enn.PointwiseConvBNAct(24, 40, activation=act, backend=backend)
    layers = [nn.Conv2d(24, 40, 1, bias=False), nn.BatchNorm2d(40)] + ([nn.Hardswish()] if act != "none" else [])
    ref_mod = randomize_bn_(nn.Sequential(*layers)).eval()
    ours.load_state_dict(ref_mod.state_dict(), strict=True)
    x = torch.randn(2, 24, 5, 7)
    with torch.no_grad():
        assert_close_to_ref(ours.eval()(x), ref_mod.double()(x.double()), torch.float32)


_ACT_LAYERS = {"none": None, "relu": nn.ReLU, "relu6": nn.ReLU6, "silu": nn.SiLU, "hardswish": nn.Hardswish}


def tv_cna(cin, cout, k, stride, act, bias=False):
    return randomize_bn_(Conv2dNormActivation(cin, cout, k, stride, activation_layer=_ACT_LAYERS[act], bias=bias))


@pytest.mark.parametrize("k,stride,act,cin,cout,hw", [(3, 2, "silu", 3, 32, (17, 16)), (5, 1, "hardswish", 8, 12, (9, 7)),
                                                      (3, 1, "relu6", 4, 8, (6, 6)), (1, 2, "none", 8, 16, (7, 9))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_bn_act_matches_conv2d_norm_activation(k, stride, act, cin, cout, hw, dtype, channels_last):
    """Dense conv (F.conv2d on the folded weight) + in-place activation against torchvision's
    Conv2dNormActivation in float64; same keys; train mode is exactly the eager math."""
    tv = tv_cna(cin, cout, k, stride, act)
    ours = enn.ConvBNAct(cin, cout, k, stride, activation=act, backend="eager")
    assert list(tv.state_dict()) == list(ours.state_dict())
    ours.load_state_dict(tv.state_dict(), strict=True)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    ours.to(dtype=dtype, memory_format=fmt)
    x = torch.randn(2, cin, *hw).to(memory_format=fmt)
    with torch.no_grad():
        out = ours.eval()(x.to(dtype))
        assert out.dtype == dtype
        if channels_last:
            assert out.is_contiguous(memory_format=torch.channels_last)
        assert_close_to_ref(out, copy.deepcopy(tv).eval().double()(x.double()), dtype)
    if dtype == torch.float32:
        ours.train(), tv.to(memory_format=fmt).train()
        torch.testing.assert_close(ours(x), tv(x), rtol=0, atol=0)
        torch.testing.assert_close(ours[1].running_mean, tv[1].running_mean, rtol=0, atol=0)


def test_conv_bn_act_conv_bias_autocast_and_refold():
    """A conv bias is folded too; autocast runs in the autocast dtype; new weights refold."""
    tv = tv_cna(3, 16, 3, 2, "silu", bias=True).eval()
    ours = enn.ConvBNAct(3, 16, 3, 2, bias=True).eval()
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        assert_close_to_ref(ours(x), tv.double()(x.double()), torch.float32)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = ours(x)
        assert out.dtype == torch.bfloat16
        assert_close_to_ref(out, tv(x.double()), torch.bfloat16)
        tv2 = tv_cna(3, 16, 3, 2, "silu", bias=True).eval()
        ours.load_state_dict(tv2.state_dict())
        assert_close_to_ref(ours(x), tv2.double()(x.double()), torch.float32, what="after load_state_dict")


def test_conv_bn_act_torch_compile():
    tv = tv_cna(3, 16, 3, 2, "silu").eval()
    ours = enn.ConvBNAct(3, 16, 3, 2).eval()
    ours.load_state_dict(tv.state_dict())
    compiled = torch.compile(ours, fullgraph=True)
    x = torch.randn(2, 3, 10, 10)
    with torch.no_grad():
        assert_close_to_ref(compiled(x), tv.double()(x.double()), torch.float32)


def tv_fused_mbconv(e, k, s, i, o, sd=0.0):
    return randomize_bn_(tv_eff.FusedMBConv(tv_eff.FusedMBConvConfig(e, k, s, i, o, 1), sd, nn.BatchNorm2d))


FUSED_CONFIGS = [  # (expand, k, stride, in, out): expand 1 (no projection, residual), stride 2, residual
    (1, 3, 1, 24, 24),
    (4, 3, 2, 24, 48),
    (4, 3, 1, 48, 48),
    (1, 3, 2, 16, 24),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cfg", FUSED_CONFIGS)
def test_fused_mbconv_matches_torchvision(cfg, backend):
    """Same keys as torchvision's FusedMBConv; eval output against it in float64; train mode is
    exactly its math (same ops, same stochastic depth draws)."""
    backend = backend_or_skip(backend, "pointwise_conv")
    e, k, s, i, o = cfg
    tv = tv_fused_mbconv(*cfg, sd=0.5).eval()
    ours = enn.FusedMBConv(i, o, e, k, s, stochastic_depth_prob=0.5, backend=backend).eval()
    assert {n: t.shape for n, t in tv.state_dict().items()} == {n: t.shape for n, t in ours.state_dict().items()}
    ours.load_state_dict(tv.state_dict(), strict=True)
    assert ours.use_res_connect == tv.use_res_connect and ours.has_project == (e != 1)
    x = torch.randn(2, i, 11, 10)
    with torch.no_grad():
        assert_close_to_ref(ours(x), copy.deepcopy(tv).double()(x.double()), torch.float32)
    tv.train(), ours.train()
    torch.manual_seed(1)
    ref = tv(x)
    torch.manual_seed(1)
    torch.testing.assert_close(ours(x), ref, rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stride,hw", [(2, (10, 11)), (1, (9, 8))])
def test_fused_mbconv_same_padding_and_se(backend, stride, hw):
    """padding="same" (TF SAME, asymmetric on even sizes at stride 2) with a squeeze-excitation,
    against timm's EdgeResidual (its own Conv2dSame padding) with the same weights."""
    backend = backend_or_skip(backend, "se_excite")
    blocks = pytest.importorskip("timm.models._efficientnet_blocks")
    se_layer = partial(blocks.SqueezeExcite, rd_channels=6, act_layer=nn.SiLU)
    ref = randomize_bn_(blocks.EdgeResidual(16, 16 if stride == 1 else 24, exp_kernel_size=3, stride=stride,
                                            pad_type="same", exp_ratio=4, act_layer=nn.SiLU, se_layer=se_layer)).eval()
    ours = enn.FusedMBConv(16, 16 if stride == 1 else 24, 4, 3, stride, squeeze_channels=6, padding="same",
                           backend=backend).eval()
    names = {"conv_exp": "block.0.0", "bn1": "block.0.1", "se.conv_reduce": "block.1.fc1",
             "se.conv_expand": "block.1.fc2", "conv_pwl": "block.2.0", "bn2": "block.2.1"}
    ours.load_state_dict({names[k.rsplit(".", 1)[0]] + "." + k.rsplit(".", 1)[1]: v
                          for k, v in ref.state_dict().items()}, strict=True)
    x = torch.randn(2, 16, *hw)
    with torch.no_grad():
        assert_close_to_ref(ours(x), copy.deepcopy(ref).double()(x.double()), torch.float32)
        assert_close_to_ref(ours.train()(x), copy.deepcopy(ref).train()(x), torch.float32, what="train")


def test_conv_bn_act_same_padding():
    """ConvBNAct(padding="same") against timm's Conv2dSame + BN + SiLU (stride 2, even and odd sizes)."""
    conv_same = pytest.importorskip("timm.layers").Conv2dSame
    ref = randomize_bn_(nn.Sequential(conv_same(3, 16, 3, 2, bias=False), nn.BatchNorm2d(16), nn.SiLU())).eval()
    ours = enn.ConvBNAct(3, 16, 3, 2, "same").eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    with torch.no_grad():
        for hw in ((10, 10), (11, 8)):
            x = torch.randn(2, 3, *hw)
            assert_close_to_ref(ours(x), copy.deepcopy(ref).double()(x.double()), torch.float32)
            torch.testing.assert_close(ours.train()(x), ref.train()(x))
            ours.eval(), ref.eval()


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="backend"):
        enn.MBConv(16, 16, 6, 3, 1, backend="tpu")
    with pytest.raises(ValueError, match="padding"):
        enn.MBConv(16, 16, 6, 3, 1, padding="valid")
    with pytest.raises(ValueError, match="activation"):
        enn.MBConv(16, 16, 6, 3, 1, activation="gelu")
    with pytest.raises(ValueError, match="stride"):
        enn.MBConv(16, 16, 6, 3, 3)
    with pytest.raises(ValueError, match="stochastic_depth_prob"):
        enn.MBConv(16, 16, 6, 3, 1, stochastic_depth_prob=1.5)
    with pytest.raises(ValueError, match="gate"):
        enn.SqueezeExcite(16, 4, gate="tanh")
    with pytest.raises(ValueError, match="activation"):
        enn.ConvBNAct(3, 16, 3, 2, activation="gelu")
    with pytest.raises(ValueError, match="backend"):
        enn.ConvBNAct(3, 16, 3, 2, backend="tpu")
    with pytest.raises(ValueError, match="padding"):
        enn.ConvBNAct(3, 16, (3, 5), 2, "same")
    with pytest.raises(ValueError, match="stride"):
        enn.FusedMBConv(16, 16, 4, 3, 3)
    with pytest.raises(ValueError, match="squeeze_channels"):
        enn.FusedMBConv(16, 16, 4, 3, 1, squeeze_channels=-1)
    with pytest.raises(ValueError, match="padding"):
        enn.FusedMBConv(16, 16, 4, 3, 1, padding="valid")


def test_unavailable_backend_says_why():
    """An explicit backend that cannot serve CPU tensors here fails at the first eval forward."""
    ok, why = effkernels.backends_available()["cuda"]
    m = enn.MBConv(16, 16, 6, 3, 1, backend="cuda").eval()
    with torch.no_grad(), pytest.raises(ValueError, match="backend: 'cuda'") as e:
        m(torch.randn(1, 16, 5, 5))
    assert (why in str(e.value)) if not ok else ("cannot run on a tensor on cpu" in str(e.value))


def test_nn_does_not_import_torchvision():
    code = "import sys, effkernels.nn; assert 'torchvision' not in sys.modules, 'torchvision imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
