"""Handler for lukemelas' efficientnet_pytorch MBConvBlock (and re-implementations with its layout);
efficientnet_pytorch is not imported. Static (fixed for the construction image size) and dynamic
TF SAME padding. -> effkernels.nn.InvertedResidual (same keys; train mode runs the block's forward,
drop connect included)."""
from __future__ import annotations

from torch import nn

from .._common import CONV_ACTIVATIONS, SE_ACTIVATIONS, SE_GATES
from ..nn.blocks import BlockSpec
from ._parts import activation, batchnorm, read_conv, se_fields, wrap
from ._registry import Context, has_layout, register


@register("lukemelas", "MBConvBlock", classes=("efficientnet_pytorch.model.MBConvBlock",),
          layout=has_layout("_depthwise_conv", "_bn1", "_project_conv", "_bn2", "_block_args", "_swish", "has_se",
                            "id_skip"))
def _mbconv_block(block, ctx: Context):
    args = block._block_args
    act = activation(block._swish, "block", CONV_ACTIVATIONS)
    f = {}
    if args.expand_ratio != 1:
        read_conv(block._expand_conv, "expand", "pointwise")
        batchnorm(block._bn0, "expand")
        f.update(expand_conv="_expand_conv", expand_bn="_bn0")
    stride, padding = read_conv(block._depthwise_conv, "depthwise", "depthwise")
    batchnorm(block._bn1, "depthwise")
    read_conv(block._project_conv, "project", "pointwise")
    batchnorm(block._bn2, "project")
    if block.has_se:  # the block's swish, then torch.sigmoid
        f.update(se_fields(block, block._se_reduce, block._se_expand, block._swish, nn.Sigmoid(), "", SE_ACTIVATIONS,
                           SE_GATES))
    # The block's own test: its block_args stride (a list [s] in the first block of a stage, so never == 1 there).
    residual = bool(block.id_skip and args.stride == 1 and args.input_filters == args.output_filters)
    spec = BlockSpec(dw_conv="_depthwise_conv", dw_bn="_bn1", stride=stride, padding=padding, activation=act,
                     proj_conv="_project_conv", proj_bn="_bn2", residual=residual, **f)
    return wrap(block, spec, ctx.backend)
