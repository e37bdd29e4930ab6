"""EfficientNet for any phi, state-dict compatible with torchvision's efficientnet_b0..b7.

The blocks are effkernels.nn.MBConv, the layer the fused path uses: in eval mode they run the
fused kernels of `backend`; in train mode, eager PyTorch math. The module tree mirrors
torchvision's (features[0] stem, features[1..7] stages, features[8] head, avgpool,
classifier), so `model.load_state_dict(torchvision_model.state_dict())` works with strict=True.
"""
from __future__ import annotations

import math
from typing import Optional, Union

from torch import nn

from ..nn import BlockSequence, MBConv
from ..scaling import Variant, stage_configs, variant


def _conv_bn_act(cin: int, cout: int, k: int, stride: int, v: Variant) -> nn.Sequential:
    """torchvision's Conv2dNormActivation(..., activation_layer=SiLU) as a plain Sequential."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=False),
        nn.BatchNorm2d(cout, eps=v.bn_eps, momentum=v.bn_momentum),
        nn.SiLU(inplace=True),
    )


class EfficientNet(nn.Module):
    def __init__(self, v: Variant, num_classes: int = 1000, stochastic_depth_prob: float = 0.2,
                 backend: str = "auto", padding: str = "symmetric"):
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
        self.variant = v
        stages = stage_configs(v)
        layers = [_conv_bn_act(3, stages[0].in_channels, 3, 2, v)]
        total = sum(s.layers for s in stages)
        block_id = 0
        for s in stages:
            blocks = []
            for i in range(s.layers):
                blocks.append(MBConv(
                    s.in_channels if i == 0 else s.out_channels, s.out_channels, s.expand_ratio, s.kernel,
                    s.stride if i == 0 else 1, bn_eps=v.bn_eps, bn_momentum=v.bn_momentum, padding=padding,
                    stochastic_depth_prob=stochastic_depth_prob * block_id / total, backend=backend))
                block_id += 1
            layers.append(BlockSequence(*blocks))
        last_in = stages[-1].out_channels
        last_out = 4 * last_in
        layers.append(_conv_bn_act(last_in, last_out, 1, 1, v))
        self.features = BlockSequence(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=v.dropout, inplace=True), nn.Linear(last_out, num_classes))
        self._init_weights()

    def _init_weights(self):
        # torchvision's initialisation, so freshly built models match in distribution.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                r = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -r, r)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x).flatten(1)
        return self.classifier(x)


def efficientnet(name: Optional[str] = None, *, phi: Optional[Union[int, float]] = None, rule: str = "official",
                 num_classes: int = 1000, backend: str = "eager", padding: str = "symmetric",
                 **coefficients) -> EfficientNet:
    """EfficientNet-B0..B7 by name ("b0".."b7") or any phi >= 0 (see effkernels.scaling.variant).

    backend: what the MBConv blocks run in eval mode ("eager" by default: plain PyTorch;
    "auto"/"triton"/"cuda"/"cpu" for the fused kernels). padding: "symmetric" (torchvision)
    or "same" (TF SAME, like timm's tf_ models and lukemelas').
    """
    if (name is None) == (phi is None):
        raise ValueError("name/phi: give exactly one, e.g. efficientnet('b0') or efficientnet(phi=1.5)")
    v = variant(name if name is not None else phi, rule, **coefficients)
    return EfficientNet(v, num_classes=num_classes, backend=backend, padding=padding)


__all__ = ["EfficientNet", "efficientnet"]
