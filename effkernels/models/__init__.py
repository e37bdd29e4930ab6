"""Models built from effkernels layers."""
from .efficientnet import EfficientNet, efficientnet  # noqa: F401
