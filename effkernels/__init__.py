"""effkernels: fused kernels for EfficientNet-style networks.

    import effkernels
    effkernels.backends_available()          # which of triton / cuda / cpu / eager work here
    fast = effkernels.convert(model)         # swap fused MBConv layers into an existing model
    net = effkernels.models.efficientnet("b0")
"""
from . import models, nn, ops, reference, scaling  # noqa: F401
from .backends import BACKENDS, backends_available  # noqa: F401
from .convert import convert  # noqa: F401
from .fold import fold_bn  # noqa: F401
from .profile import largest_phi, profile  # noqa: F401

__version__ = "0.1.0"
