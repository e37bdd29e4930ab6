"""Drop-in fused layers: torchvision parameter names, eager math in train mode, fused ops in eval mode."""
from ._base import StochasticDepth
from .layers import (
    ConvBNAct,
    FusedDWConvBNAct,
    MBConv,
    PointwiseConvBNAct,
    SqueezeExcite,
    make_divisible,
)

__all__ = ["ConvBNAct", "FusedDWConvBNAct", "MBConv", "PointwiseConvBNAct", "SqueezeExcite", "StochasticDepth",
           "make_divisible"]
