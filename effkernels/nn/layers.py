"""Drop-in fused layers with torchvision's parameter names.

In train mode every layer runs the exact eager math of its unfolded submodules (conv, BatchNorm
with batch statistics, activation), so it trains like the torchvision layer it replaces; fused
training kernels are not written yet. In eval mode BatchNorm is folded into the convolution once
(cached per device and dtype, see FoldedModule) and the fused op runs with the layer's backend.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._common import CONV_ACTIVATIONS, SE_ACTIVATIONS, SE_GATES, explicit_padding
from ..fold import fold_bn
from ._base import FoldedModule, MBConvFolding, StochasticDepth, activation_module, check_padding
from ..ops.conv_bn_act import conv_bn_act
from ..ops.dwconv_bn_act import dwconv_bn_act
from ..ops.pointwise_conv import pack_cpu, pointwise_conv
from ..ops.squeeze_excite import channel_sums, se_excite, squeeze_excite

__all__ = ["ConvBNAct", "DWConvBNAct", "FusedMBConv", "MBConv", "PointwiseConvBNAct", "SqueezeExcite", "StochasticDepth",
           "fused_mbconv_forward", "make_divisible"]


def make_divisible(v: float, divisor: int = 8) -> int:
    """Channel rounding of torchvision / timm (torchvision.models._utils._make_divisible)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _matrix(w: torch.Tensor) -> torch.Tensor:
    return w.reshape(w.shape[0], -1)


def _pad(x: torch.Tensor, k: int, stride: int, padding) -> torch.Tensor:
    """x zero-padded as a k x k conv with the fused ops' padding ("same": TF SAME) would see it."""
    top, bottom, left, right = explicit_padding(x.shape[2], x.shape[3], k, stride, padding)
    return F.pad(x, (left, right, top, bottom))


class DWConvBNAct(FoldedModule, nn.Sequential):
    """Depthwise k x k conv (no bias) -> BatchNorm -> activation, keys like torchvision's
    Conv2dNormActivation: 0 (conv), 1 (bn), 2 (activation, absent for "none").

    padding: "symmetric" ((k-1)//2 on every side) or "same" (TensorFlow SAME: depends on the input
    size, extra row/column at the bottom/right). Eval mode: effkernels.ops.dwconv_bn_act.
    """

    def __init__(self, channels: int, kernel_size: int, stride: int = 1, *, padding: str = "symmetric",
                 activation: str = "silu", bn_eps: float = 1e-5, bn_momentum: float = 0.1, backend: str = "auto"):
        nn.Sequential.__init__(self)
        self._init_folding(backend)
        self.padding = check_padding(padding)
        if activation != "none":
            act = activation_module(activation, "activation", CONV_ACTIVATIONS)
        self.activation = activation
        self.kernel_size, self.stride = kernel_size, stride
        self.add_module("0", nn.Conv2d(channels, channels, kernel_size, stride,
                                       padding=(kernel_size - 1) // 2 if padding == "symmetric" else 0,
                                       groups=channels, bias=False))
        self.add_module("1", nn.BatchNorm2d(channels, eps=bn_eps, momentum=bn_momentum))
        if activation != "none":
            self.add_module("2", act)

    @property
    def op_padding(self):
        """The padding argument of the fused op."""
        return (self.kernel_size - 1) // 2 if self.padding == "symmetric" else "same"

    def _fold(self):
        return fold_bn(self[0].weight, self[1], self[0].bias)  # bias: a converted conv may have one

    def _depthwise_index(self):
        return 0

    def forward_eager(self, x):
        if self.padding == "same":
            x = _pad(x, self.kernel_size, self.stride, "same")
        return nn.Sequential.forward(self, x)

    def forward_fused(self, x, folded):
        w, b = folded
        return dwconv_bn_act(x, w, b, self.stride, self.op_padding, self.activation, backend=self.backend)


class PointwiseConvBNAct(FoldedModule, nn.Sequential):
    """1x1 conv (no bias) -> BatchNorm -> activation, keys 0 (conv), 1 (bn), 2 (activation, absent
    for "none"). Eval mode: effkernels.ops.pointwise_conv (cpu backend: on the weight packed once)."""

    def __init__(self, in_channels: int, out_channels: int, *, activation: str = "none", bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1, backend: str = "auto"):
        nn.Sequential.__init__(self)
        self._init_folding(backend)
        if activation != "none":
            act = activation_module(activation, "activation", CONV_ACTIVATIONS)
        self.activation = activation
        self.add_module("0", nn.Conv2d(in_channels, out_channels, 1, bias=False))
        self.add_module("1", nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum))
        if activation != "none":
            self.add_module("2", act)

    def _fold(self):
        w, b = fold_bn(self[0].weight, self[1], self[0].bias)  # bias: a converted conv may have one
        return _matrix(w), b

    def _prepare(self, folded, backend):
        # the cpu backend's GEMM on weights packed once (stems' and heads' 1x1s)
        return (*folded, pack_cpu(folded[0]) if backend == "cpu" else None)

    def forward_eager(self, x):
        return nn.Sequential.forward(self, x)

    def forward_fused(self, x, folded):
        w, b, packed = folded
        return pointwise_conv(x, w, b, self.activation, backend=self.backend, packed=packed)


class ConvBNAct(FoldedModule, nn.Sequential):
    """Dense k x k conv (groups 1) -> BatchNorm -> activation, keys like torchvision's
    Conv2dNormActivation: 0 (conv; 0.bias when bias=True), 1 (bn), 2 (activation, absent for "none").
    EfficientNet / MobileNet stems (3x3 stride 2, 3 -> 32) and FusedMBConv's expand conv are this layer.

    In eval mode the layer runs ops.conv_bn_act on the BN-folded weight and bias (folded once and
    cached, see FoldedModule): on the cpu backend a direct kernel with the activation in registers for
    convs with few input channels (stems), otherwise ATen's conv (cuDNN, oneDNN) and the activation
    in place on its output. Either way the separate BatchNorm pass is gone.
    padding: as nn.Conv2d's (default (k - 1) // 2), or "same": TensorFlow SAME as everywhere in
    effkernels (square int kernel and stride; the input is padded per call, extra row/column at the
    bottom/right; the conv itself pads nothing).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=None, *,
                 activation: str = "silu", bias: bool = False, bn_eps: float = 1e-5, bn_momentum: float = 0.1,
                 backend: str = "auto"):
        nn.Sequential.__init__(self)
        self._init_folding(backend)
        if activation != "none":
            act = activation_module(activation, "activation", CONV_ACTIVATIONS)
        self.activation = activation
        self.tf_same = padding == "same"
        if self.tf_same and not (isinstance(kernel_size, int) and isinstance(stride, int)):
            raise ValueError(f"padding: 'same' (TF SAME) takes an int kernel_size and stride, got {kernel_size}, {stride}")
        if padding is None:
            k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
            padding = ((k[0] - 1) // 2, (k[1] - 1) // 2)
        self.add_module("0", nn.Conv2d(in_channels, out_channels, kernel_size, stride, 0 if self.tf_same else padding,
                                       bias=bias))
        self.add_module("1", nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum))
        if activation != "none":
            self.add_module("2", act)

    def _fold(self):
        return fold_bn(self[0].weight, self[1], self[0].bias)

    def forward_eager(self, x):
        if self.tf_same:
            x = _pad(x, self[0].kernel_size[0], self[0].stride[0], "same")
        return nn.Sequential.forward(self, x)

    def forward_fused(self, x, folded):
        w, b = folded
        conv = self[0]
        return conv_bn_act(x, w, b, conv.stride, "same" if self.tf_same else conv.padding, self.activation,
                           self.backend)


class SqueezeExcite(FoldedModule):
    """Squeeze-and-excitation with torchvision's SqueezeExcitation names (avgpool, fc1, fc2,
    activation, scale_activation): x * gate(fc2(act(fc1(mean_hw(x))))).
    Eval mode: effkernels.ops.squeeze_excite."""

    def __init__(self, channels: int, squeeze_channels: int, *, activation: str = "silu", gate: str = "sigmoid",
                 backend: str = "auto"):
        super().__init__()
        self._init_folding(backend)
        self.act_name, self.gate_name = activation, gate
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = activation_module(activation, "activation", SE_ACTIVATIONS)
        self.scale_activation = activation_module(gate, "gate", SE_GATES)

    def _fold(self):
        return _matrix(self.fc1.weight), self.fc1.bias, _matrix(self.fc2.weight), self.fc2.bias

    def forward_eager(self, x):
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x))))) * x

    def forward_fused(self, x, folded):
        return squeeze_excite(x, *folded, self.act_name, self.gate_name, backend=self.backend)


class _ResidualBlock(FoldedModule):
    """What MBConv and FusedMBConv share: argument checks, and their train math (torchvision's):
    block(x), plus x through stochastic depth when stride == 1 and in_channels == out_channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, squeeze_channels: int, activation: str,
                 backend: str):
        super().__init__()
        self._init_folding(backend)
        if stride not in (1, 2):
            raise ValueError(f"stride: expected 1 or 2, got {stride}")
        if squeeze_channels < 0:
            raise ValueError(f"squeeze_channels: expected >= 0 (0: no squeeze-excitation), got {squeeze_channels}")
        self.use_res_connect = stride == 1 and in_channels == out_channels
        self.out_channels = out_channels
        self.activation = activation
        self.has_se = squeeze_channels > 0

    def forward_eager(self, x):
        result = self.block(x)
        if self.use_res_connect:
            result = self.stochastic_depth(result) + x
        return result


class MBConv(MBConvFolding, _ResidualBlock):
    """EfficientNet's MBConv, state-dict compatible with torchvision.models.efficientnet.MBConv.

    block = [expand PointwiseConvBNAct (when the expanded width differs from in_channels)]
            + DWConvBNAct + [SqueezeExcite (absent when squeeze_channels == 0)]
            + project PointwiseConvBNAct(activation="none");
    then x + stochastic_depth(block(x)) when stride == 1 and in_channels == out_channels.
    Expanded width: make_divisible(in_channels * expand_ratio, 8). squeeze_channels defaults to
    max(1, in_channels // 4); the SE uses `activation` and a sigmoid gate.

    Train mode: the eager math of the unfolded submodules (BN batch statistics, stochastic depth).
    Eval mode: one call of effkernels.ops.mbconv with BN folded once and cached (FoldedModule); on the cpu
    backend with the 1x1 weights packed once, `cpu_paths` records the block path taken (MBConvFolding).
    """

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: float, kernel_size: int, stride: int, *,
                 squeeze_channels: int | None = None, activation: str = "silu", padding: str = "symmetric",
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1, stochastic_depth_prob: float = 0.0,
                 backend: str = "auto"):
        if squeeze_channels is None:
            squeeze_channels = max(1, in_channels // 4)
        super().__init__(in_channels, out_channels, stride, squeeze_channels, activation, backend)
        self.has_expand = (expanded := make_divisible(in_channels * expand_ratio, 8)) != in_channels
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum, backend=backend)
        layers = []
        if self.has_expand:
            layers.append(PointwiseConvBNAct(in_channels, expanded, activation=activation, **bn))
        layers.append(DWConvBNAct(expanded, kernel_size, stride, padding=padding, activation=activation, **bn))
        if self.has_se:
            layers.append(SqueezeExcite(expanded, squeeze_channels, activation=activation, backend=backend))
        layers.append(PointwiseConvBNAct(expanded, out_channels, activation="none", **bn))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob)
        self._cpu_plans: dict = {}  # MBConvFolding._run_mbconv

    def _fold(self):
        blocks = list(self.block)
        expand = blocks.pop(0)._fold() if self.has_expand else (None, None)
        dw = blocks.pop(0)._fold()
        se = blocks.pop(0)._fold() if self.has_se else (None,) * 4
        return (*expand, *dw, *se, *blocks.pop(0)._fold())

    def _depthwise_index(self):
        return 2

    def _block_args(self):
        dwl = self.block[1 if self.has_expand else 0]
        return dwl.stride, dwl.op_padding, self.use_res_connect, self.activation, self.activation, "sigmoid"

    def forward_fused(self, x, folded):
        return self._run_mbconv(x, folded)

    def extra_repr(self):
        return f"cpu_paths: {self.paths_repr()}" if self.cpu_paths else ""


def fused_mbconv_forward(x, expand_w, expand_b, stride, padding, se_w1, se_b1, se_w2, se_b2, proj_w, proj_b,
                         residual: bool, activation: str, se_activation: str, se_gate: str, backend: str):
    """EfficientNetV2's Fused-MBConv in eval mode on folded weights (se_* and proj_* may be None):
    the dense k x k expand conv through ops.conv_bn_act, then the SE and the
    projection through the fused ops: channel_sums + se_excite give the SE scale, which pointwise_conv
    applies in its prologue, with the residual added in its epilogue."""
    y = conv_bn_act(x, expand_w, expand_b, stride, padding, activation, backend)
    res = x if residual else None
    if proj_w is None:
        if se_w1 is not None:
            y = squeeze_excite(y, se_w1, se_b1, se_w2, se_b2, se_activation, se_gate, backend=backend)
        return y if res is None else y.add_(res)
    scale = None
    if se_w1 is not None:
        inv_hw = 1.0 / (y.shape[2] * y.shape[3])
        scale = se_excite(channel_sums(y, backend=backend), inv_hw, se_w1, se_b1, se_w2, se_b2, se_activation,
                          se_gate, backend=backend)
    return pointwise_conv(y, proj_w, proj_b, "none", scale=scale, residual=res, backend=backend)


class FusedMBConv(_ResidualBlock):
    """EfficientNetV2's Fused-MBConv, state-dict compatible with torchvision.models.efficientnet.FusedMBConv.

    block = ConvBNAct (k x k, stride, in_channels -> expanded) + [SqueezeExcite]
            + project PointwiseConvBNAct(activation="none")      when expanded != in_channels;
            ConvBNAct (k x k, stride, in_channels -> out_channels) + [SqueezeExcite]   otherwise;
    then x + stochastic_depth(block(x)) when stride == 1 and in_channels == out_channels.
    Expanded width: make_divisible(in_channels * expand_ratio, 8). squeeze_channels: 0 (torchvision's
    block has no SE) or the SE width (activation `activation`, sigmoid gate).

    Train mode: the eager math of the unfolded submodules. Eval mode: fused_mbconv_forward on the BN-folded
    weights (folded once and cached): the dense conv runs in ATen, the SE and the projection in the fused ops.
    """

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: float, kernel_size: int, stride: int, *,
                 squeeze_channels: int = 0, activation: str = "silu", padding: str = "symmetric",
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1, stochastic_depth_prob: float = 0.0,
                 backend: str = "auto"):
        super().__init__(in_channels, out_channels, stride, squeeze_channels, activation, backend)
        self.padding = check_padding(padding)
        self.kernel_size, self.stride = kernel_size, stride
        expanded = make_divisible(in_channels * expand_ratio, 8)
        self.has_project = expanded != in_channels
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum, backend=backend)
        width = expanded if self.has_project else out_channels
        layers = [ConvBNAct(in_channels, width, kernel_size, stride, "same" if padding == "same" else None,
                            activation=activation, **bn)]
        if self.has_se:
            layers.append(SqueezeExcite(width, squeeze_channels, activation=activation, backend=backend))
        if self.has_project:
            layers.append(PointwiseConvBNAct(expanded, out_channels, activation="none", **bn))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob)

    def _fold(self):
        blocks = list(self.block)
        expand = blocks.pop(0)._fold()
        se = blocks.pop(0)._fold() if self.has_se else (None,) * 4
        proj = blocks.pop(0)._fold() if self.has_project else (None, None)
        return (*expand, *se, *proj)

    def forward_fused(self, x, folded):
        padding = (self.kernel_size - 1) // 2 if self.padding == "symmetric" else "same"
        return fused_mbconv_forward(x, *folded[:2], self.stride, padding, *folded[2:], self.use_res_connect,
                                    self.activation, self.activation, "sigmoid", self.backend)
