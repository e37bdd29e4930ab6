"""Drop-in fused layers: torchvision parameter names, eager math in train mode, fused ops in eval mode.

Every layer here is fused, so none is called "Fused...": each is named for what it computes, in
torchvision's words (docs/CONTRACTS.md, "Layers").
"""
from ._base import StochasticDepth
from .blocks import InvertedResidual
from .layers import (
    ConvBNAct,
    DWConvBNAct,
    FusedMBConv,
    MBConv,
    PointwiseConvBNAct,
    SqueezeExcite,
    make_divisible,
)
from .sequence import BlockSequence

__all__ = ["BlockSequence", "ConvBNAct", "DWConvBNAct", "FusedMBConv", "InvertedResidual", "MBConv", "PointwiseConvBNAct",
           "SqueezeExcite", "StochasticDepth", "make_divisible"]
