"""effkernels.convert on torchvision / timm / lukemelas models (and re-implementations recognised by
layout) with random weights and non-trivial BN statistics: eval output against the original model
run in float64 (fp32 tolerance: helpers.TOL, rel 1e-5 / abs 1e-4 over the whole network), the
report's converted / left lists, the depthwise convolutions torch still runs (counted by a dispatch
mode, independently of the report) equal to the report's, state_dict round trip, unusual block
settings, refolding after weight changes, train mode, bad arguments."""
import copy

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import effkernels.nn as enn
from effkernels.convert import ConvertReport, convert
from effkernels.convert import _registry
from helpers import assert_close_to_ref, check_in_precision
from test_nn import backend_or_skip, randomize_bn_

torchvision = pytest.importorskip("torchvision")
from torchvision.ops.misc import Conv2dNormActivation  # noqa: E402

CNA = "torchvision.ops.misc.Conv2dNormActivation"
TV_MBCONV = "torchvision.models.efficientnet.MBConv"


class DepthwiseCalls(TorchDispatchMode):
    """Counts the depthwise convolutions torch runs (aten.convolution with groups == input channels > 1)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.convolution.default and 1 < args[8] == args[0].shape[1]:
            self.calls += 1
        return func(*args, **(kwargs or {}))


def count(model, cls_name, module_prefix):
    return sum(type(m).__name__ == cls_name and type(m).__module__.startswith(module_prefix) for m in model.modules())


def check_eval(model, backend, x, **kwargs):
    """Convert `model` (eval, random BN stats); compare with the float64 original; check that the
    depthwise convs torch still runs are the report's (when the backend runs none of its own in torch:
    not "eager"); return (model, converted). The original must be left untouched (inplace=False)."""
    model = randomize_bn_(model).eval()
    before = [type(m) for m in model.modules()]
    conv = convert(model, backend=backend, **kwargs)
    assert [type(m) for m in model.modules()] == before, "inplace=False modified the source model"
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(x.double())
        with DepthwiseCalls() as calls:
            out = conv(x)
    assert_close_to_ref(out, ref, torch.float32)
    report = conv.effkernels_report
    if backend != "eager":
        assert calls.calls == len(report.depthwise), str(report)
    assert not any("could not be read" in e.reason for e in report.left), str(report)
    return model, conv


def check_round_trip(model, conv, x):
    """The converted state_dict loads strictly into the original architecture (the untouched source
    model) and leaves its output exactly as it was: same keys, shapes and values in the same places."""
    assert list(conv.state_dict()) == list(model.state_dict())
    with torch.no_grad():
        before = model(x)
        model.load_state_dict(conv.state_dict(), strict=True)
        torch.testing.assert_close(model(x), before, rtol=0, atol=0)


def forked(model, package="effnet_fork"):
    """`model` with every module of its library re-classed into `package`, as a re-implementation
    under another name would be: same attributes and forward, classes effkernels does not know."""
    lib = type(model).__module__.split(".")[0]
    made = {}
    for m in model.modules():
        cls = type(m)
        if cls.__module__.split(".")[0] == lib:
            if cls not in made:
                made[cls] = type(cls.__name__, (cls,), {"__module__": f"{package}.{cls.__module__.rsplit('.', 1)[-1]}"})
            m.__class__ = made[cls]
    return model


# --- whole models, every family -------------------------------------------------------------------

@pytest.mark.parametrize("phi", range(8))
def test_torchvision_efficientnet_b0_b7(phi):
    x = torch.randn(2, 3, 32, 32)
    model, conv = check_eval(getattr(torchvision.models, f"efficientnet_b{phi}")(), "eager", x)
    report = conv.effkernels_report
    n = count(model, "MBConv", "torchvision")
    assert n > 0 and len(report.converted) == n + 2 and not report.left and not report.depthwise  # + stem, head
    assert count(conv, "MBConv", "torchvision") == 0
    assert sum(isinstance(m, enn.MBConv) for m in conv.modules()) == n
    assert type(conv.features[0]) is enn.ConvBNAct and type(conv.features[-1]) is enn.PointwiseConvBNAct
    check_round_trip(model, conv, x)


@pytest.mark.parametrize("backend", ["eager", "cpu"])
def test_torchvision_efficientnet_b0_stem_and_head(backend):
    """The top-level Conv2dNormActivation layers: the 3x3 stride-2 stem -> ConvBNAct (F.conv2d on the
    folded weight), the 1x1 head -> PointwiseConvBNAct; same keys; train mode is the eager math."""
    backend = backend_or_skip(backend, "pointwise_conv")
    x = torch.randn(2, 3, 32, 32)
    model, conv = check_eval(torchvision.models.efficientnet_b0(), backend, x)
    report = conv.effkernels_report
    assert ("features.0", CNA, "effkernels.nn.layers.ConvBNAct", "by class") in report.converted
    assert ("features.8", CNA, "effkernels.nn.layers.PointwiseConvBNAct", "by class") in report.converted
    assert type(conv.features[0]) is enn.ConvBNAct and type(conv.features[8]) is enn.PointwiseConvBNAct
    assert conv.features[0].backend == conv.features[8].backend == backend
    assert conv.features[0][0].weight is not model.features[0][0].weight  # a deep copy (inplace=False)
    check_round_trip(model, conv, x)
    # the converted stem and head alone, on a channels_last input
    with torch.no_grad():
        for i, shape in ((0, (2, 3, 17, 16)), (8, (2, 320, 3, 5))):
            xi = torch.randn(shape).to(memory_format=torch.channels_last)
            out = conv.features[i](xi)
            assert out.is_contiguous(memory_format=torch.channels_last)
            assert_close_to_ref(out, copy.deepcopy(model.features[i]).double()(xi.double()), torch.float32)
    model.train(), conv.train()
    torch.manual_seed(1)
    ref = model(x)
    torch.manual_seed(1)
    torch.testing.assert_close(conv(x), ref, rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["triton", "cpu"])
def test_torchvision_efficientnet_b0_fused_backends(backend):
    backend = backend_or_skip(backend)
    _, conv = check_eval(torchvision.models.efficientnet_b0(), backend, torch.randn(1, 3, 32, 32))
    assert len(conv.effkernels_report.converted) == 18 and not conv.effkernels_report.depthwise


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_torchvision_efficientnet_v2(backend):
    """MBConv stages -> MBConv, FusedMBConv stages (dense 3x3 expand; expand ratio 1: no projection)
    -> FusedMBConv, all with torchvision's keys. On the (slow) Triton interpreter: the stem and the
    FusedMBConv stages only."""
    backend = backend_or_skip(backend)
    model = torchvision.models.efficientnet_v2_s()
    x = torch.randn(1, 3, 32, 32)
    if backend == "triton":
        model.features = model.features[:3]
        model.classifier[1] = nn.Linear(48, 10)
    model, conv = check_eval(model, backend, x)
    report = conv.effkernels_report
    fused, mb = count(model, "FusedMBConv", "torchvision"), count(model, "MBConv", "torchvision")
    assert fused == (6 if backend == "triton" else 10) and not report.left and not report.depthwise
    assert sum(type(m) is enn.FusedMBConv for m in conv.modules()) == fused
    assert sum(type(m) is enn.MBConv for m in conv.modules()) == mb
    assert len(report.converted) == fused + mb + (1 if backend == "triton" else 2)
    assert not conv.features[1][0].has_project and conv.features[2][0].has_project
    check_round_trip(model, conv, x)


@pytest.mark.parametrize("name,backend", [("mobilenet_v2", "cpu"), ("mobilenet_v3_small", "cpu"),
                                          ("mobilenet_v3_large", "cpu"), ("mobilenet_v3_small", "triton")])
def test_torchvision_mobilenets(name, backend):
    backend = backend_or_skip(backend)
    x = torch.randn(2, 3, 33, 35)
    model, conv = check_eval(getattr(torchvision.models, name)(), backend, x)
    report = conv.effkernels_report
    n = count(model, "InvertedResidual", "torchvision")
    assert n > 0 and len(report.converted) == n + 2 and not report.left and not report.depthwise
    assert type(conv.features[0]) is enn.ConvBNAct and type(conv.features[-1]) is enn.PointwiseConvBNAct
    assert sum(isinstance(m, enn.InvertedResidual) for m in conv.modules()) == n
    check_round_trip(model, conv, x)


def test_torchvision_mnasnet():
    """The inverted residuals are converted; the stem's depthwise conv (bare Conv2d, BN, ReLU in the
    model's own Sequential, no block) still runs in torch and is reported with its path."""
    backend = backend_or_skip("cpu")
    x = torch.randn(2, 3, 33, 35)
    model, conv = check_eval(torchvision.models.mnasnet0_5(), backend, x)
    report = conv.effkernels_report
    n = count(model, "_InvertedResidual", "torchvision")
    assert n == 16 and len(report.converted) == n and not report.left
    assert all(e.source == "torchvision.models.mnasnet._InvertedResidual" for e in report.converted)
    assert [(e.fqn, e.source) for e in report.depthwise] == [("layers.3", "torch.nn.modules.conv.Conv2d")]
    assert "not part of a block effkernels recognises" in report.depthwise[0].reason
    assert "1 depthwise convolutions still run by torch" in str(report) and "layers.3" in str(report)
    check_round_trip(model, conv, x)


TIMM_CASES = [("efficientnet_b0", "cpu", (33, 35)), ("tf_efficientnet_b0", "cpu", (33, 35)),
              ("tf_efficientnet_b0", "cpu", (32, 32)), ("mobilenetv3_large_100", "cpu", (33, 35)),
              ("tf_efficientnet_lite0", "cpu", (33, 35)), ("tf_efficientnetv2_b0", "cpu", (33, 35)),
              ("tf_efficientnet_b0", "triton", (33, 35))]


@pytest.mark.parametrize("name,backend,hw", TIMM_CASES)
def test_timm(name, backend, hw):
    """tf_ variants: TF SAME padding (Conv2dSame at stride 2; asymmetric on even sizes), BN eps 1e-3;
    tf_efficientnetv2: EdgeResidual (Fused-MBConv) stages. Under the (slow) Triton interpreter only
    stages 0-2 are converted (filter_fn)."""
    timm = pytest.importorskip("timm")
    backend = backend_or_skip(backend)
    x = torch.randn(2, 3, *hw)
    filter_fn = (lambda m, fqn: fqn < "blocks.3") if backend == "triton" else None
    model, conv = check_eval(timm.create_model(name, pretrained=False), backend, x, filter_fn=filter_fn)
    n = sum(count(model, c, "timm") for c in ("InvertedResidual", "DepthwiseSeparableConv", "EdgeResidual"))
    report = conv.effkernels_report
    assert n > 0 and len(report.converted) + len(report.left) == n
    assert all(e.reason == "rejected by filter_fn" for e in report.left)
    assert len(report.converted) == (5 if filter_fn else n)  # tf_efficientnet_b0 stages 0-2: 1 + 2 + 2
    assert all(e.reason == "rejected by filter_fn" for e in report.depthwise)
    check_round_trip(model, conv, x)


@pytest.mark.parametrize("name", ["mixnet_s", "tf_mixnet_s"])
def test_timm_mixnet_mixed_kernels(name):
    """MixNet's MixedConv2d: kernels 3/5/7 in one depthwise conv run as one fused op (smaller kernels
    zero-padded to the largest), grouped 1x1 expand/project convs as block-diagonal weights; blocks with
    a kernel 9 or 11 part are left, each of their depthwise parts listed with the reason. tf_: stride-2
    parts pad TF SAME (Conv2dSame), stride-1 parts symmetrically."""
    timm = pytest.importorskip("timm")
    backend = backend_or_skip("cpu")
    x = torch.randn(2, 3, 33, 35)
    model, conv = check_eval(timm.create_model(name, pretrained=False), backend, x)
    report = conv.effkernels_report
    mixed = [e.fqn for e in report.converted if type(conv.get_submodule(e.fqn).conv_dw).__name__ == "MixedConv2d"]
    assert len(mixed) >= 5 and len(report.converted) == 11
    assert [e.fqn for e in report.left] == ["blocks.4.1", "blocks.4.2", "blocks.5.0", "blocks.5.1", "blocks.5.2"]
    assert all("kernel 9" in e.reason for e in report.left)
    left = {e.fqn for e in report.left}
    assert report.depthwise and all(e.fqn.rsplit(".", 2)[0] in left for e in report.depthwise)
    check_round_trip(model, conv, x)


@pytest.mark.parametrize("image_size,hw", [(64, (64, 64)), (None, (33, 35))])
def test_lukemelas(image_size, hw):
    """Static same padding (fixed for image_size) and dynamic same padding (input-dependent)."""
    ep = pytest.importorskip("efficientnet_pytorch")
    backend = backend_or_skip("cpu")
    x = torch.randn(2, 3, *hw)
    model, conv = check_eval(ep.EfficientNet.from_name("efficientnet-b0", image_size=image_size), backend, x)
    report = conv.effkernels_report
    assert len(report.converted) == len(model._blocks) == 16 and not report.left and not report.depthwise
    check_round_trip(model, conv, x)


def _lukemelas():
    return pytest.importorskip("efficientnet_pytorch").EfficientNet.from_name("efficientnet-b0", image_size=64)


@pytest.mark.parametrize("make,lib,blocks", [
    (_lukemelas, "lukemelas MBConvBlock", 16),
    (lambda: torchvision.models.efficientnet_b0(), "torchvision EfficientNet MBConv", 16),
    (lambda: pytest.importorskip("timm").create_model("tf_efficientnet_b0", pretrained=False), "timm InvertedResidual", 15),
])
def test_reimplementations_are_recognised_by_layout(make, lib, blocks):
    """The same models with every class of the library re-classed into another package (what a
    re-implementation or a fork is): recognised by their attributes, converted to the generic
    InvertedResidual wrapper (whose train mode runs their own forward), nothing left in torch."""
    backend = backend_or_skip("cpu")
    x = torch.randn(2, 3, 64, 64)
    model, conv = check_eval(forked(make()), backend, x)
    report = conv.effkernels_report
    by_layout = [e for e in report.converted if e.recognised == f"by layout ({lib})"]
    assert len(by_layout) == blocks and all(e.source.startswith("effnet_fork.") for e in by_layout)
    assert all(isinstance(conv.get_submodule(e.fqn), enn.InvertedResidual) for e in by_layout)
    assert not report.left and not report.depthwise
    assert f"(by layout ({lib}))" in str(report)
    check_round_trip(model, conv, x)
    model.train(), conv.train()
    torch.manual_seed(1)
    ref = model(x)
    torch.manual_seed(1)
    torch.testing.assert_close(conv(x), ref, rtol=0, atol=0)


def test_a_layout_whose_forward_differs_is_left():
    """A block with lukemelas' attributes whose forward computes something else (here: a ReLU on
    the output) is caught by the check of every replacement against its source, and left."""
    model = forked(_lukemelas())
    cls = type(model._blocks[3])
    def forward(self, x, drop_connect_rate=None):
        return cls.forward(self, x, drop_connect_rate).relu()

    model._blocks[3].__class__ = type(cls.__name__, (cls,), {"__module__": "other_fork.model", "forward": forward})
    _, conv = check_eval(model, "eager", torch.randn(1, 3, 64, 64))
    report = conv.effkernels_report
    assert [e.fqn for e in report.left] == ["_blocks.3"] and len(report.converted) == 15
    assert "computes something else" in report.left[0].reason
    assert [e.fqn for e in report.depthwise] == ["_blocks.3._depthwise_conv"]


# --- unusual block settings: left with the reason, or folded; never an exception ------------------

def _edit_b0(edit):
    """torchvision B0 (random BN statistics) with `edit(model)` applied to block features.2.0 (stride 2,
    16 -> 24, no residual): dw = block[1] (conv 0, BN 1, SiLU 2)."""
    model = randomize_bn_(torchvision.models.efficientnet_b0())
    edit(model.features[2][0].block[1])
    return randomize_bn_(model)


def _set(i, make):
    def edit(dw):
        dw[i] = make(dw[0].in_channels)
    return edit


UNUSUAL = {  # name: (edit of the depthwise Conv2dNormActivation, None if converted else the reason's text)
    "dw_bias": (_set(0, lambda c: nn.Conv2d(c, c, 3, 2, 1, groups=c, bias=True)), None),
    "bn_affine_false": (_set(1, lambda c: nn.BatchNorm2d(c, affine=False)), None),
    "dilation": (_set(0, lambda c: nn.Conv2d(c, c, 3, 2, 2, dilation=2, groups=c, bias=False)), "dilation (2, 2)"),
    "reflect_padding": (_set(0, lambda c: nn.Conv2d(c, c, 3, 2, 1, groups=c, bias=False, padding_mode="reflect")),
                        "padding_mode 'reflect'"),
    "non_square_kernel": (_set(0, lambda c: nn.Conv2d(c, c, (3, 5), 2, (1, 2), groups=c, bias=False)),
                          "non-square kernel (3, 5)"),
    "non_square_stride": (_set(0, lambda c: nn.Conv2d(c, c, 3, (2, 1), 1, groups=c, bias=False)),
                          "stride (2, 1)"),
    "kernel_9": (_set(0, lambda c: nn.Conv2d(c, c, 9, 2, 4, groups=c, bias=False)), "kernel 9"),
    "bn_without_running_stats": (_set(1, lambda c: nn.BatchNorm2d(c, track_running_stats=False)),
                                 "without running statistics"),
    "gelu": (_set(2, lambda c: nn.GELU()), "activation GELU"),
    "group_norm": (_set(1, lambda c: nn.GroupNorm(4, c)), "norm layer GroupNorm"),
}


@pytest.mark.parametrize("name", list(UNUSUAL))
def test_unusual_block_settings(name):
    """A block the kernels do not cover is left as it was (reported, its depthwise conv listed) and
    the rest of the model converted; a conv bias or a BN without affine parameters is folded (the
    generic wrapper then, since the native MBConv has no keys for them). Output always the original's."""
    backend = backend_or_skip("cpu")
    edit, reason = UNUSUAL[name]
    model = _edit_b0(edit)
    x = torch.randn(1, 3, 32, 32)
    model, conv = check_eval(model, backend, x)
    report = conv.effkernels_report
    if reason is None:
        assert not report.left and not report.depthwise and len(report.converted) == 18
        assert type(conv.features[2][0]) is enn.InvertedResidual
    else:
        assert [(e.fqn, e.source) for e in report.left] == [("features.2.0", TV_MBCONV)]
        assert reason in report.left[0].reason, report.left[0].reason
        assert [e.fqn for e in report.depthwise] == ["features.2.0.block.1.0"]
        assert report.depthwise[0].reason == report.left[0].reason
        assert len(report.converted) == 17 and type(conv.features[2][0]).__name__ == "MBConv"
        assert conv.features[2][0] is not model.features[2][0]  # left in the copy, not shared
    check_round_trip(model, conv, x)


def test_unsupported_timm_activation_and_dilated_mobilenet():
    timm = pytest.importorskip("timm")
    gelu = randomize_bn_(timm.create_model("efficientnet_b0", act_layer=nn.GELU)).eval()
    conv = convert(gelu, backend="eager")
    report = conv.effkernels_report
    assert not report.converted and len(report.left) == 16 and len(report.depthwise) == 16
    assert all("GELU" in e.reason for e in report.left)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), gelu(x), rtol=0, atol=0)

    dilated = torchvision.models.mobilenet_v3_large(dilated=True)
    _, conv = check_eval(dilated, backend_or_skip("cpu"), torch.randn(1, 3, 33, 35))
    reasons = [e.reason for e in conv.effkernels_report.left]
    assert reasons and all("dilation" in why for why in reasons)
    assert conv.effkernels_report.converted and len(conv.effkernels_report.depthwise) == len(reasons)


def test_a_failing_handler_leaves_the_block():
    """An exception inside a handler (a block that breaks a reader) is reported, never raised."""
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1, groups=4)

        def forward(self, x):
            return self.conv(x)

    key = f"{Boom.__module__}.{Boom.__qualname__}"

    def broken(block, ctx):
        raise RuntimeError("a reader bug")

    _registry.register("test", "Boom", classes=(key,))(broken)
    try:
        model = nn.Sequential(Boom(), nn.ReLU())
        conv = convert(model, backend="eager")
    finally:
        del _registry.HANDLERS[("test", "Boom")], _registry._BY_CLASS[key]
    report = conv.effkernels_report
    assert report.left == [("0", key, "could not be read as test Boom: RuntimeError: a reader bug")]
    assert [e.fqn for e in report.depthwise] == ["0.conv"]
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(conv(x), model(x), rtol=0, atol=0)


def test_conv_norm_activation_outside_blocks():
    """Top-level Conv2dNormActivation layers: dense (with a conv bias; with padding="valid"), strided 1x1 and
    depthwise ones are converted; dilated, grouped, non-BN and unsupported-activation ones are left with the
    reason, and a left layer is not looked inside. A plain Sequential(conv, BN, act) of the same layout
    is recognised too."""
    layers = [
        Conv2dNormActivation(3, 16, 3, 2, bias=True),                                   # 0 dense + bias
        Conv2dNormActivation(16, 16, 3, 1, groups=16, activation_layer=nn.ReLU6),       # 1 depthwise
        Conv2dNormActivation(16, 16, 3, 1, dilation=2),                                 # 2 left: dilation
        Conv2dNormActivation(16, 16, 3, 1, groups=4),                                   # 3 left: grouped
        Conv2dNormActivation(16, 16, 1, activation_layer=nn.GELU, inplace=None),        # 4 left: GELU
        Conv2dNormActivation(16, 16, 3, norm_layer=lambda c: nn.GroupNorm(4, c)),       # 5 left: GroupNorm
        Conv2dNormActivation(16, 24, 1, 2, activation_layer=nn.Hardswish),              # 6 1x1 stride 2: dense
        Conv2dNormActivation(24, 8, 1, activation_layer=None, bias=True),               # 7 pointwise + bias
        nn.Sequential(nn.Conv2d(8, 8, 5, padding=2, groups=8, bias=False), nn.BatchNorm2d(8), nn.SiLU()),  # 8
        Conv2dNormActivation(8, 8, 3, 1, groups=8, dilation=2),                         # 9 left: dilated dw
        nn.Sequential(nn.Conv2d(8, 8, 3, padding="valid", bias=False), nn.BatchNorm2d(8), nn.ReLU()),  # 10
    ]
    model = nn.Sequential(*layers)
    x = torch.randn(2, 3, 15, 14)
    model, conv = check_eval(model, backend_or_skip("cpu", "dwconv_bn_act"), x)
    report = conv.effkernels_report
    assert [(e.fqn, e.replacement.rsplit(".", 1)[1], e.recognised) for e in report.converted] == [
        ("0", "ConvBNAct", "by class"), ("1", "DWConvBNAct", "by class"), ("6", "ConvBNAct", "by class"),
        ("7", "PointwiseConvBNAct", "by class"), ("8", "DWConvBNAct", "by layout (torchvision Conv2dNormActivation)"),
        ("10", "ConvBNAct", "by layout (torchvision Conv2dNormActivation)")]
    reasons = {e.fqn: e.reason for e in report.left}
    assert list(reasons) == ["2", "3", "4", "5", "9"]
    assert "dilation (2, 2)" in reasons["2"] and "grouped conv (groups=4" in reasons["3"]
    assert "GELU" in reasons["4"] and "GroupNorm" in reasons["5"] and "dilation (2, 2)" in reasons["9"]
    assert [(e.fqn, e.reason) for e in report.depthwise] == [("9.0", reasons["9"])]
    assert "0.bias" in conv[0].state_dict() and "0.bias" in conv[7].state_dict()
    check_round_trip(model, conv, x)
    model.train(), conv.train()
    torch.testing.assert_close(conv(x), model(x), rtol=0, atol=0)


# --- never stale: refold after load_state_dict and in-place edits ---------------------------------

def _timm_b0():
    return pytest.importorskip("timm").create_model("efficientnet_b0", pretrained=False)


@pytest.mark.parametrize("make", [torchvision.models.efficientnet_b0, _timm_b0, _lukemelas],
                         ids=["torchvision", "timm", "lukemelas"])
@pytest.mark.parametrize("inference_mode", [False, True])
def test_weights_changed_after_a_forward_are_served(make, inference_mode):
    """A converted model (converted and run under torch.inference_mode or not) serves new weights
    after load_state_dict and after an in-place edit of a BN buffer; the fold cache is reused while
    nothing changes. Under inference_mode the converted copy still holds normal tensors (convert
    copies outside it), whose version counters see the edits."""
    backend = backend_or_skip("cpu")
    source = randomize_bn_(make()).eval()
    x = torch.randn(1, 3, 64, 64)
    mode = torch.inference_mode if inference_mode else torch.no_grad
    with mode():
        conv = convert(source, backend=backend)
        assert_close_to_ref(conv(x), copy.deepcopy(source).double()(x.double()), torch.float32)
        new = randomize_bn_(make()).eval()
        conv.load_state_dict(new.state_dict())
        assert_close_to_ref(conv(x), copy.deepcopy(new).double()(x.double()), torch.float32, what="after load")
        bns = [m for m in conv.modules() if isinstance(m, nn.BatchNorm2d)]
        bns[len(bns) // 2].running_var.mul_(4.0)  # in place, inside a converted block
        bns[len(bns) // 2].bias.add_(0.5)
        edited = [m for m in new.modules() if isinstance(m, nn.BatchNorm2d)][len(bns) // 2]
        edited.running_var.mul_(4.0)
        edited.bias.add_(0.5)
        assert_close_to_ref(conv(x), copy.deepcopy(new).double()(x.double()), torch.float32, what="after edit")
    assert not any(t.is_inference() for t in conv.state_dict().values())


def test_converted_under_inference_mode_inplace_holds_inference_tensors():
    """convert(inplace=True) of a model built under inference_mode keeps its inference tensors, whose
    in-place edits no version counter records: those layers fold on every call (with a warning)."""
    backend = backend_or_skip("cpu")
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        model = randomize_bn_(torchvision.models.mobilenet_v3_small()).eval()
        ref = copy.deepcopy(model).double()
        conv = convert(model, backend=backend, inplace=True)
        assert all(t.is_inference() for t in conv.state_dict().values())
        with pytest.warns(UserWarning, match="inference tensors"):
            assert_close_to_ref(conv(x), ref(x.double()), torch.float32)
        for m in (conv, ref):  # the same edit (same path) in both, after a forward
            m.features[4].block[1][1].running_mean.add_(1.0)
        assert_close_to_ref(conv(x), ref(x.double()), torch.float32, what="after in-place edit")


# --- the rest ------------------------------------------------------------------------------------

def test_channels_last():
    model = randomize_bn_(torchvision.models.efficientnet_b0()).eval()
    conv = convert(model, backend="eager").to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last)
    layouts = []
    for m in conv.modules():
        if isinstance(m, enn.MBConv):
            m.register_forward_hook(lambda mod, i, o: layouts.append(o.is_contiguous(memory_format=torch.channels_last)))
    with torch.no_grad():
        assert_close_to_ref(conv(x), copy.deepcopy(model).double()(x.double()), torch.float32)
    assert layouts and all(layouts), "a fused block lost the channels_last layout"


@pytest.mark.parametrize("dtype,how", [(torch.float16, "cast"), (torch.bfloat16, "autocast")])
def test_low_precision(dtype, how):
    """Within TOL[dtype] of float64 and within 2x the error of the original model in that precision."""
    model = randomize_bn_(torchvision.models.efficientnet_b0()).eval()
    conv = convert(model, backend="eager")
    err_out, err_eager = check_in_precision(conv, model, torch.randn(2, 3, 32, 32), dtype, how)
    assert err_out <= 2 * err_eager, f"{err_out:.2e} vs eager {err_eager:.2e}"


def test_half_model_is_converted():
    """A model already in float16 converts (each replacement is checked in float32) and runs."""
    model = randomize_bn_(torchvision.models.mobilenet_v3_small()).eval()
    conv = convert(model.half(), backend="eager")
    assert len(conv.effkernels_report.converted) == 13 and not conv.effkernels_report.left
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert_close_to_ref(conv(x.half()), copy.deepcopy(model).double()(x.double()), torch.float16)


def _make_train_model(which):
    if which == "torchvision":
        return torchvision.models.efficientnet_b0(stochastic_depth_prob=0.5)
    if which == "timm":
        return pytest.importorskip("timm").create_model("efficientnet_b0", drop_path_rate=0.5)
    ep = pytest.importorskip("efficientnet_pytorch")
    return ep.EfficientNet.from_name("efficientnet-b0", image_size=None, drop_connect_rate=0.5)


@pytest.mark.parametrize("which", ["torchvision", "timm", "lukemelas"])
def test_train_mode_runs_the_original_math(which):
    """A converted model in train mode computes exactly what the source does (batch-stat BN, drop
    path / stochastic depth with the same random draws), trains, and then folds the new stats."""
    model = randomize_bn_(_make_train_model(which)).train()
    conv = convert(model, backend="eager")
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(1)
    ref = model(x)
    torch.manual_seed(1)
    out = conv(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    out.square().sum().backward()
    ref.square().sum().backward()
    for (n, a), b in zip(model.named_parameters(), conv.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=0, msg=n)
    model.eval(), conv.eval()
    with torch.no_grad():
        assert_close_to_ref(conv(x), copy.deepcopy(model).double()(x.double()), torch.float32, what="eval after train")


def test_filter_fn_and_inplace():
    model = randomize_bn_(torchvision.models.efficientnet_b0()).eval()
    seen = []

    def only_stage_2(module, fqn):
        seen.append((type(module).__name__, fqn))
        return fqn.startswith("features.2.")

    conv = convert(model, backend="eager", inplace=True, filter_fn=only_stage_2)
    assert conv is model
    report = conv.effkernels_report
    assert isinstance(report, ConvertReport)
    assert [e.fqn for e in report.converted] == ["features.2.0", "features.2.1"]
    assert all(e.reason == "rejected by filter_fn" for e in report.left) and len(report.left) == 16
    assert len(report.depthwise) == 14 and all(e.reason == "rejected by filter_fn" for e in report.depthwise)
    assert ("MBConv", "features.1.0") in seen
    assert ("Conv2dNormActivation", "features.0") in seen and ("Conv2dNormActivation", "features.8") in seen
    assert isinstance(conv.features[2][0], enn.MBConv) and not isinstance(conv.features[3][0], enn.MBConv)
    assert type(conv.features[0]) is Conv2dNormActivation and type(conv.features[8]) is Conv2dNormActivation
    assert "2 converted, 16 left, 14 depthwise convolutions still run by torch" in str(report)


def test_converting_twice_changes_nothing():
    model = randomize_bn_(torchvision.models.mobilenet_v2()).eval()
    once = convert(model, backend="eager")
    twice = convert(once, backend="eager")
    report = twice.effkernels_report
    assert not report.converted and not report.left and not report.depthwise
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(twice(x), once(x), rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["eager", "cpu"])
def test_torch_compile_converted(backend):
    backend = backend_or_skip(backend)
    model = randomize_bn_(torchvision.models.mobilenet_v3_small().features[1:4]).eval()  # 3 blocks: compile is slow
    conv = convert(model, backend=backend)
    assert len(conv.effkernels_report.converted) == 3
    compiled = torch.compile(conv, fullgraph=True)
    x = torch.randn(2, 16, 16, 16)
    with torch.no_grad():
        assert_close_to_ref(compiled(x), copy.deepcopy(model).double()(x.double()), torch.float32)


def test_bad_arguments():
    """Only bad arguments to convert() itself raise, each naming the argument."""
    model = torchvision.models.mobilenet_v3_small()
    with pytest.raises(ValueError, match="backend: expected 'auto' or one of"):
        convert(model, backend="tensorrt")
    with pytest.raises(ValueError, match="backend: 'cuda'") as e:
        convert(model, backend="cuda")  # unavailable here (says how to build it), or cannot serve the CPU
    assert "build" in str(e.value) or "cannot run on a tensor on cpu" in str(e.value)
    with pytest.raises(ValueError, match="cannot run on a tensor on meta"):
        convert(model.to("meta"), backend="triton")
    with pytest.raises(TypeError, match="model"):
        convert(torch.randn(3))
    with pytest.raises(TypeError, match="inplace"):
        convert(model, backend="eager", inplace="yes")
    with pytest.raises(TypeError, match="filter_fn"):
        convert(model, backend="eager", filter_fn="features.1")


def test_handlers_one_module_per_library():
    """Every handler comes from its library's module and is keyed by (library, block type)."""
    modules = {"torchvision": "effkernels.convert.torchvision", "timm": "effkernels.convert.timm",
               "lukemelas": "effkernels.convert.lukemelas"}
    assert {lib for lib, _ in _registry.HANDLERS} == set(modules)
    for (lib, block), handler in _registry.HANDLERS.items():
        assert handler.convert.__module__ == modules[lib] and (handler.classes or handler.layout)
