"""A fused stand-in for an inverted-residual block of another library (timm, lukemelas,
torchvision MobileNet / MNASNet, a block recognised by its layout), built by effkernels.convert.

The wrapper re-registers the source block's children under their original names, so its
state_dict keys are the source's and a converted model's weights load back into the original
architecture. It also keeps the source block itself outside the module tree (not a child, no
state_dict entries): train mode runs the source block's own forward (its exact eager math, drop
path included) on the shared children; eval mode runs the fused ops on BN-folded weights:
effkernels.ops.mbconv for an MBConv (depthwise conv), fused_mbconv_forward for a Fused-MBConv
(dense k x k expand conv, EfficientNetV2 / EdgeTPU).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..fold import fold_bn
from ._base import FoldedModule, MBConvFolding
from .layers import fused_mbconv_forward


@dataclass(frozen=True, kw_only=True)
class BlockSpec:
    """Where a block's parts live (dotted paths below the block) and how it computes.

    MBConv: dw_conv set, expand_conv (1x1) optional, proj_conv required. Fused-MBConv: dw_conv None,
    expand_conv (dense k x k, carries stride and padding) required, proj_conv optional.
    A conv path may name a mixed conv (timm MixedConv2d: see conv_weight).
    padding: what the fused ops take: an int, "same" (TF SAME) or (top, bottom, left, right).
    se_* are None when the block has no squeeze-excitation.
    """
    stride: int
    padding: Union[int, str, tuple]
    activation: str
    residual: bool
    expand_conv: Optional[str] = None
    expand_bn: Optional[str] = None
    dw_conv: Optional[str] = None
    dw_bn: Optional[str] = None
    proj_conv: Optional[str] = None
    proj_bn: Optional[str] = None
    se_reduce: Optional[str] = None
    se_expand: Optional[str] = None
    se_activation: str = "silu"
    se_gate: str = "sigmoid"


def conv_weight(conv: nn.Module):
    """(weight, bias) of a conv. A mixed conv (timm MixedConv2d: child convs over consecutive channel
    splits, outputs concatenated) becomes the one conv computing the same: depthwise kernels zero-padded
    to the largest size and stacked (exact under symmetric or TF SAME padding when every size is at
    least the stride), 1x1 convs as a block-diagonal 1x1 weight. bias None when no part has one."""
    if isinstance(conv, nn.Conv2d):
        return conv.weight, conv.bias
    parts = list(conv.children())
    k = max(p.weight.shape[-1] for p in parts)
    if all(p.groups == p.in_channels == p.out_channels for p in parts):
        weight = torch.cat([F.pad(p.weight, [(k - p.weight.shape[-1]) // 2] * 4) for p in parts])
    else:
        weight = torch.block_diag(*[p.weight.flatten(1) for p in parts])[:, :, None, None]
    if all(p.bias is None for p in parts):
        return weight, None
    return weight, torch.cat([p.weight.new_zeros(p.out_channels) if p.bias is None else p.bias for p in parts])


class InvertedResidual(MBConvFolding, FoldedModule):
    """Fused inverted residual wrapping `source` (see the module docstring)."""

    def __init__(self, source: nn.Module, spec: BlockSpec, backend: str = "auto"):
        super().__init__()
        self._init_folding(backend)
        if source._parameters or source._buffers:
            raise ValueError(f"source: {type(source).__name__} holds tensors of its own; only its children are re-registered")
        if not (spec.proj_conv if spec.dw_conv else spec.expand_conv):
            raise ValueError(f"spec: an MBConv needs dw_conv and proj_conv, a Fused-MBConv expand_conv; got {spec}")
        for name, child in source.named_children():
            self.add_module(name, child)
        object.__setattr__(self, "_source", source)  # not a child: keeps state_dict keys unchanged
        self.spec = spec
        self.source_class = f"{type(source).__module__}.{type(source).__qualname__}"
        self._cpu_plans: dict = {}  # MBConvFolding._run_mbconv
        self.train(source.training)

    def train(self, mode: bool = True):
        self._source.training = mode  # the source's own flag (lukemelas reads it for drop connect)
        return super().train(mode)

    def _conv_bn(self, conv: Optional[str], bn: Optional[str]):
        if conv is None:
            return None, None
        weight, bias = conv_weight(self.get_submodule(conv))
        return fold_bn(weight, self.get_submodule(bn), bias)

    def _fold(self):
        s = self.spec
        ew, eb = self._conv_bn(s.expand_conv, s.expand_bn)
        pw, pb = self._conv_bn(s.proj_conv, s.proj_bn)
        se = (None,) * 4
        if s.se_reduce is not None:
            r, e = self.get_submodule(s.se_reduce), self.get_submodule(s.se_expand)
            se = (r.weight.flatten(1), _bias(r), e.weight.flatten(1), _bias(e))
        pw = None if pw is None else pw.flatten(1)
        if s.dw_conv is None:
            return (ew, eb, *se, pw, pb)
        dw, db = self._conv_bn(s.dw_conv, s.dw_bn)
        return (None if ew is None else ew.flatten(1), eb, dw, db, *se, pw, pb)

    def _depthwise_index(self):
        return None if self.spec.dw_conv is None else 2

    def _prepare(self, folded, backend):
        return folded if self.spec.dw_conv is None else super()._prepare(folded, backend)

    def forward_eager(self, x, drop_connect_rate=None):
        """drop_connect_rate: lukemelas' per-block drop connect (its EfficientNet passes it)."""
        return self._source(x) if drop_connect_rate is None else self._source(x, drop_connect_rate)

    def forward_fused(self, x, folded, drop_connect_rate=None):
        """drop_connect_rate is ignored: drop connect is the identity in eval mode."""
        s = self.spec
        if s.dw_conv is None:
            return fused_mbconv_forward(x, *folded[:2], s.stride, s.padding, *folded[2:], s.residual, s.activation,
                                        s.se_activation, s.se_gate, self.backend)
        return self._run_mbconv(x, folded)

    def _block_args(self):
        s = self.spec
        return None if s.dw_conv is None else (s.stride, s.padding, s.residual, s.activation, s.se_activation, s.se_gate)

    def extra_repr(self):
        paths = f", cpu_paths: {self.paths_repr()}" if self.cpu_paths else ""
        return f"source={self.source_class}, backend={self.backend!r}{paths}"


def _bias(conv: nn.Module) -> torch.Tensor:
    """An SE conv's bias (zeros when it has none: the fused op always adds one)."""
    return conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.weight.shape[0])
