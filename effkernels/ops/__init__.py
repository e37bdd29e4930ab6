"""The fused ops. Each lives in ops/<op>.py: input checks, backend dispatch, torch.library registration."""
from .activation import activation_  # noqa: F401
from .conv_bn_act import conv_bn_act  # noqa: F401
from .dwconv_bn_act import dwconv_bn_act  # noqa: F401
from .mbconv import mbconv  # noqa: F401
from .pointwise_conv import pointwise_conv  # noqa: F401
from .squeeze_excite import channel_sums, se_excite, se_scale, squeeze_excite  # noqa: F401
