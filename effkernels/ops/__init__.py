"""The fused ops. Each lives in ops/<op>.py: input checks, backend dispatch, torch.library registration."""
from .dwconv_bn_act import dwconv_bn_act  # noqa: F401
