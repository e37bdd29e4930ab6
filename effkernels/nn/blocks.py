"""A fused stand-in for an inverted-residual block of another library (timm, lukemelas,
torchvision MobileNet), built by effkernels.convert.

The wrapper re-registers the source block's children under their original names, so its
state_dict keys are the source's and a converted model's weights load back into the original
architecture. It also keeps the source block itself outside the module tree (not a child, no
state_dict entries): train mode runs the source block's own forward (its exact eager math, drop
path included) on the shared children; eval mode runs effkernels.ops.mbconv on BN-folded weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from torch import nn

from ..fold import fold_bn
from ._base import FoldedModule
from ..ops.mbconv import mbconv


@dataclass(frozen=True)
class BlockSpec:
    """Where an inverted residual's parts live (dotted paths below the block) and how it computes.

    padding: what the fused op takes: an int, "same" (TF SAME) or (top, bottom, left, right).
    expand_* and se_* are None when the block has no expansion / no squeeze-excitation.
    """
    dw_conv: str
    dw_bn: str
    stride: int
    padding: Union[int, str, tuple]
    activation: str
    proj_conv: str
    proj_bn: str
    residual: bool
    expand_conv: Optional[str] = None
    expand_bn: Optional[str] = None
    se_reduce: Optional[str] = None
    se_expand: Optional[str] = None
    se_activation: str = "silu"
    se_gate: str = "sigmoid"


class InvertedResidual(FoldedModule):
    """Fused inverted residual wrapping `source` (see the module docstring)."""

    def __init__(self, source: nn.Module, spec: BlockSpec, backend: str = "auto"):
        super().__init__()
        self._init_folding(backend)
        if source._parameters or source._buffers:
            raise ValueError(f"source: {type(source).__name__} holds tensors of its own; only its children are re-registered")
        for name, child in source.named_children():
            self.add_module(name, child)
        object.__setattr__(self, "_source", source)  # not a child: keeps state_dict keys unchanged
        self.spec = spec
        self.source_class = f"{type(source).__module__}.{type(source).__qualname__}"
        self.train(source.training)

    def train(self, mode: bool = True):
        self._source.training = mode  # the source's own flag (lukemelas reads it for drop connect)
        return super().train(mode)

    def _conv_bn(self, conv: Optional[str], bn: Optional[str]):
        if conv is None:
            return None, None
        c = self.get_submodule(conv)
        return fold_bn(c.weight, self.get_submodule(bn), c.bias)

    def _fold(self):
        s = self.spec
        ew, eb = self._conv_bn(s.expand_conv, s.expand_bn)
        dw, db = self._conv_bn(s.dw_conv, s.dw_bn)
        pw, pb = self._conv_bn(s.proj_conv, s.proj_bn)
        se = (None,) * 4
        if s.se_reduce is not None:
            r, e = self.get_submodule(s.se_reduce), self.get_submodule(s.se_expand)
            se = (r.weight.flatten(1), r.bias, e.weight.flatten(1), e.bias)
        return (None if ew is None else ew.flatten(1), eb, dw, db, *se, pw.flatten(1), pb)

    def forward_eager(self, x, drop_connect_rate=None):
        """drop_connect_rate: lukemelas' per-block drop connect (its EfficientNet passes it)."""
        return self._source(x) if drop_connect_rate is None else self._source(x, drop_connect_rate)

    def forward_fused(self, x, folded, drop_connect_rate=None):
        """drop_connect_rate is ignored: drop connect is the identity in eval mode."""
        s = self.spec
        ew, eb, dw, db, w1, b1, w2, b2, pw, pb = folded
        return mbconv(x, ew, eb, dw, db, s.stride, s.padding, w1, b1, w2, b2, pw, pb, s.residual,
                      activation=s.activation, se_activation=s.se_activation, se_gate=s.se_gate,
                      backend=self.backend)

    def extra_repr(self):
        return f"source={self.source_class}, backend={self.backend!r}"
