"""Handlers for torchvision's blocks (torchvision is not imported: classes are matched by name).

- efficientnet_b0..b7 / efficientnet_v2_* MBConv -> effkernels.nn.MBConv (same keys);
  efficientnet_v2_* FusedMBConv -> effkernels.nn.FusedMBConv (same keys). Either falls back to the
  generic InvertedResidual wrapper when its state_dict differs from the native layer's (a conv bias,
  a BN without affine parameters, per-layer BN settings) or when recognised by layout only.
- mobilenet_v2 / mobilenet_v3 InvertedResidual, mnasnet* _InvertedResidual -> InvertedResidual.
- Conv2dNormActivation reached outside a block (stems, heads), and any nn.Sequential of a conv, a
  BatchNorm2d and an optional activation -> PointwiseConvBNAct / ConvBNAct / DWConvBNAct by its conv,
  taking over the source's children (same keys, a conv bias folded too).
"""
from __future__ import annotations

from torch import nn

from .._common import CONV_ACTIVATIONS, SE_ACTIVATIONS, SE_GATES
from ..nn import ConvBNAct, DWConvBNAct, FusedMBConv, MBConv, PointwiseConvBNAct
from ..nn.blocks import BlockSpec
from ..ops.dwconv_bn_act import KERNEL_SIZES
from ._parts import activation, adopt, batchnorm, native, read_conv, same_activation, se_fields, wrap
from ._registry import Context, Unsupported, has_layout, register

_EFF = "torchvision.models.efficientnet"


def _is_cna(m) -> bool:
    """The layout of torchvision's Conv2dNormActivation: Sequential(conv, norm[, activation])."""
    return isinstance(m, nn.Sequential) and len(m) in (2, 3) and isinstance(m[0], nn.Conv2d)


def _cna(seq, what: str):
    """(conv, bn, activation name) of a Conv2dNormActivation."""
    if not _is_cna(seq):
        raise Unsupported(f"{what}: expected a Conv2dNormActivation (conv, norm, activation), got {type(seq).__name__}")
    act = activation(seq[2] if len(seq) == 3 else None, what, CONV_ACTIVATIONS)
    return seq[0], batchnorm(seq[1], what), act


def _has_depthwise(seq) -> bool:
    return any(isinstance(m, nn.Conv2d) and 1 < m.groups == m.in_channels for m in seq.modules())


def _is_se(m) -> bool:
    """torchvision SqueezeExcitation's layout."""
    return all(hasattr(m, a) for a in ("avgpool", "fc1", "activation", "fc2", "scale_activation"))


def _se(se, prefix: str) -> dict:
    if not (isinstance(se.avgpool, nn.AdaptiveAvgPool2d) and se.avgpool.output_size in (1, (1, 1))):
        raise Unsupported(f"SE pooling {se.avgpool}")
    return se_fields(se, se.fc1, se.fc2, se.activation, se.scale_activation, prefix, SE_ACTIVATIONS, SE_GATES)


def _inverted_residual(block, seq_name: str) -> BlockSpec:
    """efficientnet MBConv, mobilenet_v3 InvertedResidual (`block`), mobilenet_v2 InvertedResidual (`conv`)."""
    seq = getattr(block, seq_name)
    names = [n for n, _ in seq.named_children()]
    f = {}
    i = 0
    if len(seq) > 1 and _is_cna(seq[0]) and seq[0][0].groups == 1:  # 1x1 expand (absent at expand ratio 1)
        conv, _, expand_act = _cna(seq[0], "expand")
        read_conv(conv, "expand", "pointwise")
        f.update(expand_conv=f"{seq_name}.0.0", expand_bn=f"{seq_name}.0.1")
        i = 1
    dw_conv, _, act = _cna(seq[i], "depthwise")
    stride, padding = read_conv(dw_conv, "depthwise", "depthwise")
    if "expand_conv" in f:
        act = same_activation(expand_act, act)
    f.update(dw_conv=f"{seq_name}.{i}.0", dw_bn=f"{seq_name}.{i}.1", stride=stride, padding=padding, activation=act)
    i += 1
    if i < len(seq) and _is_se(seq[i]):
        f.update(_se(seq[i], f"{seq_name}.{i}."))
        i += 1
    rest = names[i:]
    if len(rest) == 1:  # Conv2dNormActivation(activation_layer=None)
        proj_conv, _, proj_act = _cna(seq[i], "project")
        f.update(proj_conv=f"{seq_name}.{i}.0", proj_bn=f"{seq_name}.{i}.1")
    elif len(rest) == 2:  # mobilenet_v2: a bare Conv2d and BatchNorm2d
        proj_conv, proj_act = seq[i], "none"
        batchnorm(seq[i + 1], "project")
        f.update(proj_conv=f"{seq_name}.{i}", proj_bn=f"{seq_name}.{i + 1}")
    else:
        raise Unsupported(f"unexpected layout of {seq_name}: {names}")
    if proj_act != "none":
        raise Unsupported(f"activation after the projection ({proj_act})")
    read_conv(proj_conv, "project", "pointwise")
    return BlockSpec(residual=bool(block.use_res_connect), **f)


def _uniform_bn(block):
    """(eps, momentum) shared by every BN of the block, else None (the native layers take one of each)."""
    bns = {(m.eps, m.momentum) for m in block.modules() if isinstance(m, nn.BatchNorm2d)}
    return bns.pop() if len(bns) == 1 else None


def _native_ok(block, spec: BlockSpec, ctx: Context) -> bool:
    """Whether the native layer computes this block: torchvision's own class, its activations, symmetric
    padding, row-mode stochastic depth, one BN setting (the state_dict check is done by `native`)."""
    k = block.get_submodule(spec.dw_conv or spec.expand_conv).kernel_size[0]
    return (not ctx.by_layout and spec.padding == (k - 1) // 2 and block.stochastic_depth.mode == "row"
            and _uniform_bn(block) is not None
            and (spec.se_reduce is None or (spec.activation in SE_ACTIVATIONS and spec.se_activation == spec.activation
                                             and spec.se_gate == "sigmoid")))


def _efficientnet_layout(depthwise: bool):
    base = has_layout("block", "stochastic_depth", "use_res_connect")
    return lambda m: base(m) and isinstance(m.block, nn.Sequential) and _has_depthwise(m.block) == depthwise


@register("torchvision", "EfficientNet MBConv", classes=(f"{_EFF}.MBConv",), layout=_efficientnet_layout(True))
def _mbconv(block, ctx: Context):
    spec = _inverted_residual(block, "block")
    if _native_ok(block, spec, ctx) and spec.se_reduce is not None:
        dw = block.get_submodule(spec.dw_conv)
        in_ch = block.get_submodule(spec.expand_conv).in_channels if spec.expand_conv else dw.in_channels
        eps, momentum = _uniform_bn(block)
        new = native(MBConv(in_ch, block.get_submodule(spec.proj_conv).out_channels, dw.in_channels / in_ch,
                            dw.kernel_size[0], spec.stride, squeeze_channels=block.get_submodule(spec.se_reduce).out_channels,
                            activation=spec.activation, bn_eps=eps, bn_momentum=momentum,
                            stochastic_depth_prob=block.stochastic_depth.p, backend=ctx.backend), block)
        if new is not None:
            return new
    return wrap(block, spec, ctx.backend)


def _fused_spec(block) -> BlockSpec:
    seq = block.block
    conv, _, act = _cna(seq[0], "expand")
    stride, padding = read_conv(conv, "expand", "dense")
    f = dict(expand_conv="block.0.0", expand_bn="block.0.1", stride=stride, padding=padding, activation=act)
    i = 1
    if i < len(seq) and _is_se(seq[i]):
        f.update(_se(seq[i], f"block.{i}."))
        i += 1
    if i < len(seq):
        proj_conv, _, proj_act = _cna(seq[i], "project")
        if proj_act != "none":
            raise Unsupported(f"activation after the projection ({proj_act})")
        read_conv(proj_conv, "project", "pointwise")
        f.update(proj_conv=f"block.{i}.0", proj_bn=f"block.{i}.1")
        i += 1
    if i != len(seq):
        raise Unsupported(f"unexpected layout of block: {[type(m).__name__ for m in seq]}")
    return BlockSpec(residual=bool(block.use_res_connect), **f)


@register("torchvision", "EfficientNet FusedMBConv", classes=(f"{_EFF}.FusedMBConv",), layout=_efficientnet_layout(False))
def _fused_mbconv(block, ctx: Context):
    spec = _fused_spec(block)
    if _native_ok(block, spec, ctx):
        conv = block.get_submodule(spec.expand_conv)
        out_ch = block.get_submodule(spec.proj_conv or spec.expand_conv).out_channels
        squeeze = block.get_submodule(spec.se_reduce).out_channels if spec.se_reduce else 0
        eps, momentum = _uniform_bn(block)
        new = native(FusedMBConv(conv.in_channels, out_ch, conv.out_channels / conv.in_channels, conv.kernel_size[0],
                                 spec.stride, squeeze_channels=squeeze, activation=spec.activation, bn_eps=eps,
                                 bn_momentum=momentum, stochastic_depth_prob=block.stochastic_depth.p,
                                 backend=ctx.backend), block)
        if new is not None:
            return new
    return wrap(block, spec, ctx.backend)


@register("torchvision", "MobileNetV3 InvertedResidual", classes=("torchvision.models.mobilenetv3.InvertedResidual",),
          layout=has_layout("block", "use_res_connect", absent=("stochastic_depth",)))
def _mobilenet_v3(block, ctx: Context):
    return wrap(block, _inverted_residual(block, "block"), ctx.backend)


@register("torchvision", "MobileNetV2 InvertedResidual", classes=("torchvision.models.mobilenetv2.InvertedResidual",),
          layout=has_layout("conv", "use_res_connect"))
def _mobilenet_v2(block, ctx: Context):
    return wrap(block, _inverted_residual(block, "conv"), ctx.backend)


@register("torchvision", "MNASNet _InvertedResidual", classes=("torchvision.models.mnasnet._InvertedResidual",),
          layout=has_layout("layers", "apply_residual"))
def _mnasnet(block, ctx: Context):
    """layers: 1x1 conv, BN, ReLU, depthwise conv, BN, ReLU, 1x1 conv, BN."""
    seq = block.layers
    if not isinstance(seq, nn.Sequential) or len(seq) != 8:
        raise Unsupported(f"unexpected layout of layers: {[type(m).__name__ for m in seq]}")
    read_conv(seq[0], "expand", "pointwise")
    batchnorm(seq[1], "expand")
    stride, padding = read_conv(seq[3], "depthwise", "depthwise")
    batchnorm(seq[4], "depthwise")
    act = same_activation(activation(seq[2], "expand", CONV_ACTIVATIONS), activation(seq[5], "depthwise", CONV_ACTIVATIONS))
    read_conv(seq[6], "project", "pointwise")
    batchnorm(seq[7], "project")
    spec = BlockSpec(expand_conv="layers.0", expand_bn="layers.1", dw_conv="layers.3", dw_bn="layers.4", stride=stride,
                     padding=padding, activation=act, proj_conv="layers.6", proj_bn="layers.7",
                     residual=bool(block.apply_residual))
    return wrap(block, spec, ctx.backend)


def _is_conv_bn_act(m) -> bool:
    return _is_cna(m) and isinstance(m[1], nn.BatchNorm2d)


@register("torchvision", "Conv2dNormActivation", classes=("torchvision.ops.misc.Conv2dNormActivation",),
          layout=_is_conv_bn_act)
def _conv_norm_activation(seq, ctx: Context):
    """Reached outside a block only (a block is replaced or left whole): stems, heads, and any
    Sequential(conv, BatchNorm2d[, activation])."""
    conv, bn, act = _cna(seq, "Conv2dNormActivation")
    if type(bn) is not nn.BatchNorm2d:
        raise Unsupported(f"norm layer {type(bn).__name__} (only a plain BatchNorm2d is folded)")
    if type(conv) is not nn.Conv2d:
        raise Unsupported(f"unknown conv class {type(conv).__module__}.{type(conv).__name__}")
    if conv.padding_mode != "zeros":
        raise Unsupported(f"padding_mode {conv.padding_mode!r}")
    if conv.dilation != (1, 1):
        raise Unsupported(f"dilation {conv.dilation}")
    cin, cout, k = conv.in_channels, conv.out_channels, conv.kernel_size
    kw = {"activation": act, "bn_eps": bn.eps, "bn_momentum": bn.momentum, "backend": ctx.backend}
    if conv.groups == 1:
        if k == (1, 1) and conv.stride == (1, 1) and conv.padding in ((0, 0), "valid", "same"):
            return adopt(PointwiseConvBNAct(cin, cout, **kw), seq)
        # the conv is the source's (ConvBNAct runs F.conv2d with its padding): padding=None builds a placeholder
        return adopt(ConvBNAct(cin, cout, k, conv.stride, None, bias=conv.bias is not None, **kw), seq)
    if conv.groups == cin == cout:
        if (k[0] != k[1] or k[0] not in KERNEL_SIZES or conv.stride not in ((1, 1), (2, 2))
                or conv.padding != ((k[0] - 1) // 2,) * 2):
            raise Unsupported(f"depthwise conv with kernel {k}, stride {conv.stride}, padding {conv.padding} "
                              f"(fused: square k in {list(KERNEL_SIZES)}, stride 1 or 2, padding (k-1)//2)")
        return adopt(DWConvBNAct(cin, k[0], conv.stride[0], **kw), seq)
    raise Unsupported(f"grouped conv (groups={conv.groups}, {cin} -> {cout})")
