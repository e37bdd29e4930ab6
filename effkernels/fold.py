"""BatchNorm folding: conv -> BN (eval) becomes one conv with a bias.

Done once per module (when it is converted or its parameters change), never per call.
"""
from __future__ import annotations

import torch


@torch.no_grad()
def fold_bn(weight, bn: torch.nn.BatchNorm2d, conv_bias=None):
    """Return (w, b) with conv(x, w) + b == bn(conv(x, weight) + conv_bias) in eval mode.

    weight: any conv weight with C_out first. Computed in float32 (float64 stays float64) and
    returned in that dtype; callers cast to the activation dtype.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("bn: expected a BatchNorm with running statistics (track_running_stats=True)")
    dt = torch.float64 if weight.dtype == torch.float64 else torch.float32
    inv_std = torch.rsqrt(bn.running_var.to(dt) + bn.eps)
    gamma = bn.weight.to(dt) if bn.weight is not None else torch.ones_like(inv_std)
    beta = bn.bias.to(dt) if bn.bias is not None else torch.zeros_like(inv_std)
    s = gamma * inv_std
    w = weight.to(dt) * s.reshape(-1, *([1] * (weight.dim() - 1)))
    b0 = conv_bias.to(dt) if conv_bias is not None else torch.zeros_like(s)
    b = beta + (b0 - bn.running_mean.to(dt)) * s
    return w, b
