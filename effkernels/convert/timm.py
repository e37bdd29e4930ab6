"""Handlers for timm's EfficientNet-family blocks (efficientnet_*, tf_efficientnet_*, efficientnetv2_*,
mobilenetv3_*, mixnet_*, mnasnet_* ...); timm is not imported: classes are matched by name.

InvertedResidual and DepthwiseSeparableConv (MBConv), EdgeResidual (Fused-MBConv: dense k x k expand)
-> effkernels.nn.InvertedResidual, which keeps the block's children (same keys) and runs its forward
in train mode. MixNet's MixedConv2d (per-group kernel sizes) is one conv of the largest kernel, its
smaller kernels zero-padded (exact); a kernel the fused op lacks (9, 11) leaves the block.
CondConvResidual and UniversalInvertedResidual are left, with the reason.
"""
from __future__ import annotations

from torch import nn

from .._common import CONV_ACTIVATIONS, SE_ACTIVATIONS, SE_GATES
from ..nn.blocks import BlockSpec
from ._parts import bn_act, read_conv, same_activation, se_fields, wrap
from ._registry import Context, Unsupported, has_layout, register

_MODULES = ("timm.models._efficientnet_blocks", "timm.models.efficientnet_blocks")  # timm >= 0.9, older


def _classes(name: str):
    return tuple(f"{m}.{name}" for m in _MODULES)


def _common(block) -> dict:
    """Checks shared by timm's blocks; the SE's BlockSpec fields."""
    if getattr(block, "conv_s2d", None) is not None:
        raise Unsupported("space-to-depth stem (conv_s2d)")
    aa = getattr(block, "aa", None)
    if aa is not None and not isinstance(aa, nn.Identity):
        raise Unsupported(f"anti-aliasing layer {type(aa).__name__}")
    drop = block.drop_path
    if not (isinstance(drop, nn.Identity) or type(drop).__name__ == "DropPath"):
        raise Unsupported(f"unknown drop path {type(drop).__name__}")
    if isinstance(block.se, nn.Identity):
        return {}
    s = block.se
    if not all(hasattr(s, a) for a in ("conv_reduce", "act1", "conv_expand", "gate")):
        raise Unsupported(f"SE module {type(s).__name__}")
    return se_fields(s, s.conv_reduce, s.conv_expand, s.act1, s.gate, "se.", SE_ACTIVATIONS, SE_GATES)


def _no_project_act(bn, what: str) -> None:
    if bn_act(bn, what, CONV_ACTIVATIONS) != "none":
        raise Unsupported(f"activation after the {what} conv")


@register("timm", "InvertedResidual", classes=_classes("InvertedResidual"),
          layout=has_layout("conv_pw", "bn1", "conv_dw", "bn2", "se", "conv_pwl", "bn3", "drop_path", "has_skip"))
def _inverted_residual(block, ctx: Context):
    se = _common(block)
    read_conv(block.conv_pw, "expand", "pointwise")
    stride, padding = read_conv(block.conv_dw, "depthwise", "depthwise")
    read_conv(block.conv_pwl, "project", "pointwise")
    act = same_activation(bn_act(block.bn1, "expand", CONV_ACTIVATIONS), bn_act(block.bn2, "depthwise", CONV_ACTIVATIONS))
    _no_project_act(block.bn3, "project")
    spec = BlockSpec(expand_conv="conv_pw", expand_bn="bn1", dw_conv="conv_dw", dw_bn="bn2", stride=stride,
                     padding=padding, activation=act, proj_conv="conv_pwl", proj_bn="bn3",
                     residual=bool(block.has_skip), **se)
    return wrap(block, spec, ctx.backend)


def _conv_then_project(block, ctx: Context, conv: str, role: str):
    """timm's two-conv blocks: `conv` (depthwise, or a dense expand), bn1 (+ activation), SE, 1x1 conv, bn2."""
    se = _common(block)
    what = "depthwise" if role == "depthwise" else "expand"
    stride, padding = read_conv(getattr(block, conv), what, role)
    proj = "conv_pw" if role == "depthwise" else "conv_pwl"
    read_conv(getattr(block, proj), "project", "pointwise")
    act = bn_act(block.bn1, what, CONV_ACTIVATIONS)
    _no_project_act(block.bn2, "project")
    first = dict(dw_conv=conv, dw_bn="bn1") if role == "depthwise" else dict(expand_conv=conv, expand_bn="bn1")
    spec = BlockSpec(**first, stride=stride, padding=padding, activation=act, proj_conv=proj, proj_bn="bn2",
                     residual=bool(block.has_skip), **se)
    return wrap(block, spec, ctx.backend)


@register("timm", "DepthwiseSeparableConv", classes=_classes("DepthwiseSeparableConv"),
          layout=has_layout("conv_dw", "bn1", "se", "conv_pw", "bn2", "drop_path", "has_skip", absent=("conv_pwl",)))
def _depthwise_separable(block, ctx: Context):
    return _conv_then_project(block, ctx, "conv_dw", "depthwise")


@register("timm", "EdgeResidual", classes=_classes("EdgeResidual"),
          layout=has_layout("conv_exp", "bn1", "se", "conv_pwl", "bn2", "drop_path", "has_skip"))
def _edge_residual(block, ctx: Context):
    """EfficientNetV2 / EdgeTPU Fused-MBConv: dense k x k expand, BN + act, SE, 1x1 project, BN."""
    return _conv_then_project(block, ctx, "conv_exp", "dense")


@register("timm", "CondConvResidual", classes=_classes("CondConvResidual"))
def _cond_conv(block, ctx: Context):
    raise Unsupported("CondConvResidual: per-sample expert weights (CondConv), no fused op")


@register("timm", "UniversalInvertedResidual", classes=_classes("UniversalInvertedResidual"))
def _universal(block, ctx: Context):
    raise Unsupported("UniversalInvertedResidual (MobileNetV4): no fused op for this block type")
