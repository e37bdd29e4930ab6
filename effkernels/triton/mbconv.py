"""Launchers that chain kernels of the other modules for the Triton MBConv block (ops/mbconv.py).

dw_se is steps 2-3 of the block: the depthwise kernel leaves its SE sums as per-pixel-block partials
([N, P_blocks, C], P_blocks set by the tile it runs) and se_excite reduces them while it takes the mean.
Under torch.compile the pair is one custom op (effkernels_triton::mbconv_dw_se) whose outputs have static
shapes, which the partials' do not. No kernels are defined here.
"""
from __future__ import annotations

from .dwconv_bn_act import dwconv_bn_act_partials
from .squeeze_excite import se_excite


def dw_se(h, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, act, se_w1, se_b1, se_w2, se_b2, se_act, se_gate):
    """(depthwise output, fp32 [N, C] SE scale) in two launches."""
    out, partials = dwconv_bn_act_partials(h, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, act, True)
    return out, se_excite(partials, 1.0 / (out_h * out_w), se_w1, se_b1, se_w2, se_b2, se_act, se_gate)


def aot_variants():
    return []  # no kernels of its own
