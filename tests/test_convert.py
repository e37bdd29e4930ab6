"""effkernels.convert on torchvision / timm / lukemelas models with random weights and non-trivial
BN statistics: eval output against the original model run in float64 (fp32 tolerance: helpers.TOL,
rel 1e-5 / abs 1e-4 over the whole network), state_dict round trip, train mode, bad input."""
import copy

import pytest
import torch
from torch import nn

import effkernels.nn as enn
from effkernels.convert import ConvertReport, convert
from effkernels.nn.blocks import InvertedResidual
from helpers import assert_close_to_ref, run_in_precision
from test_nn import backend_or_skip, randomize_bn_

torchvision = pytest.importorskip("torchvision")
from torchvision.ops.misc import Conv2dNormActivation  # noqa: E402

CNA = "torchvision.ops.misc.Conv2dNormActivation"


def count(model, cls_name, module_prefix):
    return sum(type(m).__name__ == cls_name and type(m).__module__.startswith(module_prefix) for m in model.modules())


def check_eval(model, backend, x):
    """Convert `model` (eval, random BN stats); compare with the float64 original; return the
    converted model. The original must be left untouched (inplace=False)."""
    model = randomize_bn_(model).eval()
    before = [type(m) for m in model.modules()]
    conv = convert(model, backend=backend)
    assert [type(m) for m in model.modules()] == before, "inplace=False modified the source model"
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(x.double())
        out = conv(x)
    assert_close_to_ref(out, ref, torch.float32)
    return model, conv


def check_round_trip(model, conv, x):
    """The converted state_dict loads strictly into the original architecture (the untouched source
    model) and leaves its output exactly as it was: same keys, shapes and values in the same places."""
    with torch.no_grad():
        before = model(x)
        model.load_state_dict(conv.state_dict(), strict=True)
        torch.testing.assert_close(model(x), before, rtol=0, atol=0)


@pytest.mark.parametrize("phi", range(8))
def test_torchvision_efficientnet_b0_b7(phi):
    x = torch.randn(2, 3, 32, 32)
    model, conv = check_eval(getattr(torchvision.models, f"efficientnet_b{phi}")(), "eager", x)
    report = conv.effkernels_report
    n = count(model, "MBConv", "torchvision")
    assert n > 0 and len(report.converted) == n + 2 and not report.skipped  # + stem and head
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
    assert ("features.0", CNA, "effkernels.nn.layers.ConvBNAct") in report.converted
    assert ("features.8", CNA, "effkernels.nn.layers.PointwiseConvBNAct") in report.converted
    assert type(conv.features[0]) is enn.ConvBNAct and type(conv.features[8]) is enn.PointwiseConvBNAct
    assert conv.features[0].backend == conv.features[8].backend == backend
    assert list(conv.state_dict()) == list(model.state_dict())
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
    check_eval(torchvision.models.efficientnet_b0(), backend, torch.randn(1, 3, 32, 32))


def test_torchvision_efficientnet_v2_s():
    """MBConv stages are converted; FusedMBConv (dense k x k conv) is left, with the reason."""
    _, conv = check_eval(torchvision.models.efficientnet_v2_s(), "eager", torch.randn(1, 3, 32, 32))
    report = conv.effkernels_report
    assert report.converted and all("efficientnet.MBConv" in src for _, src, _ in report.converted[1:-1])
    assert report.converted[0] == ("features.0", CNA, "effkernels.nn.layers.ConvBNAct")  # stem
    assert report.converted[-1] == ("features.7", CNA, "effkernels.nn.layers.PointwiseConvBNAct")  # head
    # FusedMBConv is left whole, the Conv2dNormActivation layers inside it included
    assert report.skipped and all("FusedMBConv" in why for _, _, why in report.skipped)
    assert count(conv, "FusedMBConv", "torchvision") == len(report.skipped)
    assert all(type(m) is Conv2dNormActivation for b in conv.modules() if type(b).__name__ == "FusedMBConv"
               for m in b.block)


@pytest.mark.parametrize("name,backend", [("mobilenet_v2", "eager"), ("mobilenet_v3_small", "eager"),
                                          ("mobilenet_v3_large", "eager"), ("mobilenet_v3_small", "triton")])
def test_torchvision_mobilenets(name, backend):
    backend = backend_or_skip(backend)
    x = torch.randn(2, 3, 33, 35)
    model, conv = check_eval(getattr(torchvision.models, name)(), backend, x)
    n = count(model, "InvertedResidual", "torchvision")
    assert n > 0 and len(conv.effkernels_report.converted) == n + 2 and not conv.effkernels_report.skipped
    assert type(conv.features[0]) is enn.ConvBNAct and type(conv.features[-1]) is enn.PointwiseConvBNAct
    assert sum(isinstance(m, InvertedResidual) for m in conv.modules()) == n
    check_round_trip(model, conv, x)


TIMM_CASES = [("efficientnet_b0", "eager", (33, 35)), ("tf_efficientnet_b0", "eager", (33, 35)),
              ("tf_efficientnet_b0", "eager", (32, 32)), ("mobilenetv3_large_100", "eager", (33, 35)),
              ("tf_efficientnet_lite0", "eager", (33, 35)), ("tf_efficientnet_b0", "triton", (33, 35)),
              ("tf_efficientnet_b0", "cpu", (33, 35))]


@pytest.mark.parametrize("name,backend,hw", TIMM_CASES)
def test_timm(name, backend, hw):
    """tf_ variants: TF SAME padding (Conv2dSame at stride 2; asymmetric on even sizes), BN eps 1e-3.
    Under the (slow) Triton interpreter only stages 0-2 are converted (filter_fn)."""
    timm = pytest.importorskip("timm")
    backend = backend_or_skip(backend)
    x = torch.randn(2, 3, *hw)
    model = randomize_bn_(timm.create_model(name, pretrained=False)).eval()
    filter_fn = (lambda m, fqn: fqn < "blocks.3") if backend == "triton" else None
    conv = convert(model, backend=backend, filter_fn=filter_fn)
    with torch.no_grad():
        assert_close_to_ref(conv(x), copy.deepcopy(model).double()(x.double()), torch.float32)
    n = count(model, "InvertedResidual", "timm") + count(model, "DepthwiseSeparableConv", "timm")
    report = conv.effkernels_report
    assert n > 0 and len(report.converted) + len(report.skipped) == n
    assert all(why == "rejected by filter_fn" for _, _, why in report.skipped)
    assert len(report.converted) == (5 if filter_fn else n)  # tf_efficientnet_b0 stages 0-2: 1 + 2 + 2
    check_round_trip(model, conv, x)


@pytest.mark.parametrize("image_size,hw", [(64, (64, 64)), (None, (33, 35))])
def test_lukemelas(image_size, hw):
    """Static same padding (fixed for image_size) and dynamic same padding (input-dependent)."""
    ep = pytest.importorskip("efficientnet_pytorch")
    x = torch.randn(2, 3, *hw)
    model, conv = check_eval(ep.EfficientNet.from_name("efficientnet-b0", image_size=image_size), "eager", x)
    assert len(conv.effkernels_report.converted) == len(model._blocks) and not conv.effkernels_report.skipped
    check_round_trip(model, conv, x)


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
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(x.double())
        out, eager = run_in_precision(conv, model, x, dtype, how)
    assert out.dtype == eager.dtype == dtype
    assert_close_to_ref(out, ref, dtype)
    err = lambda t: ((t.double() - ref).norm() / ref.norm()).item()  # noqa: E731
    assert err(out) <= 2 * err(eager), f"{err(out):.2e} vs eager {err(eager):.2e}"


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
    assert [fqn for fqn, _, _ in report.converted] == ["features.2.0", "features.2.1"]
    assert all(why == "rejected by filter_fn" for _, _, why in report.skipped) and len(report.skipped) == 16
    assert ("MBConv", "features.1.0") in seen
    assert ("Conv2dNormActivation", "features.0") in seen and ("Conv2dNormActivation", "features.8") in seen
    assert isinstance(conv.features[2][0], enn.MBConv) and not isinstance(conv.features[3][0], enn.MBConv)
    assert type(conv.features[0]) is Conv2dNormActivation and type(conv.features[8]) is Conv2dNormActivation
    assert "2 converted, 16 left" in str(report)


def test_unsupported_blocks_are_reported_and_left():
    timm = pytest.importorskip("timm")
    gelu = randomize_bn_(timm.create_model("efficientnet_b0", act_layer=nn.GELU)).eval()
    conv = convert(gelu, backend="eager")
    report = conv.effkernels_report
    assert not report.converted and len(report.skipped) == 16
    assert all("GELU" in why for _, _, why in report.skipped)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), gelu(x), rtol=0, atol=0)

    dilated = randomize_bn_(torchvision.models.mobilenet_v3_large(dilated=True)).eval()
    _, conv = check_eval(dilated, "eager", torch.randn(1, 3, 33, 35))
    reasons = [why for _, _, why in conv.effkernels_report.skipped]
    assert reasons and all("dilation" in why for why in reasons)
    assert conv.effkernels_report.converted


def test_conv_norm_activation_outside_blocks():
    """Top-level Conv2dNormActivation layers: dense (with a conv bias), strided 1x1 and depthwise
    ones are converted; dilated, grouped, non-BN and unsupported-activation ones are left with the
    reason, and a left layer is not looked inside."""
    layers = [
        Conv2dNormActivation(3, 16, 3, 2, bias=True),                                   # 0 dense + bias
        Conv2dNormActivation(16, 16, 3, 1, groups=16, activation_layer=nn.ReLU6),       # 1 depthwise
        Conv2dNormActivation(16, 16, 3, 1, dilation=2),                                 # 2 left: dilation
        Conv2dNormActivation(16, 16, 3, 1, groups=4),                                   # 3 left: grouped
        Conv2dNormActivation(16, 16, 1, activation_layer=nn.GELU, inplace=None),        # 4 left: GELU
        Conv2dNormActivation(16, 16, 3, norm_layer=lambda c: nn.GroupNorm(4, c)),       # 5 left: GroupNorm
        Conv2dNormActivation(16, 24, 1, 2, activation_layer=nn.Hardswish),              # 6 1x1 stride 2: dense
        Conv2dNormActivation(24, 8, 1, activation_layer=None, bias=True),               # 7 pointwise + bias
    ]
    model = nn.Sequential(*layers)
    x = torch.randn(2, 3, 15, 14)
    model, conv = check_eval(model, "eager", x)
    report = conv.effkernels_report
    assert [(fqn, dst.rsplit(".", 1)[1]) for fqn, _, dst in report.converted] == [
        ("0", "ConvBNAct"), ("1", "DWConvBNAct"), ("6", "ConvBNAct"), ("7", "PointwiseConvBNAct")]
    reasons = {fqn: why for fqn, _, why in report.skipped}
    assert list(reasons) == ["2", "3", "4", "5"]
    assert "dilation (2, 2)" in reasons["2"] and "grouped conv (groups=4" in reasons["3"]
    assert "GELU" in reasons["4"] and "GroupNorm" in reasons["5"]
    assert "0.bias" in conv[0].state_dict() and "0.bias" in conv[7].state_dict()
    check_round_trip(model, conv, x)
    model.train(), conv.train()
    torch.testing.assert_close(conv(x), model(x), rtol=0, atol=0)


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


def test_bad_backend_and_device():
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
