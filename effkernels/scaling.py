"""Compound scaling (Tan & Le, 2019) and the EfficientNet-B0..B7 table.

The paper scales a baseline by one coefficient phi:

    depth d = alpha ** phi,  width w = beta ** phi,  resolution r = gamma ** phi
    subject to alpha * beta**2 * gamma**2 ~= 2   (so FLOPs grow ~2x per step of phi)

with alpha=1.2, beta=1.1, gamma=1.15 found by grid search at phi=1. The released B1..B7 do not
follow alpha**phi exactly; they use the OFFICIAL table below (torchvision, timm, the TF
reference). `variant(name_or_phi)` gives either:

- "b0".."b7", or an integer phi 0..7 with rule="official" (the default): the table row;
- any other phi >= 0 (0.5, 8, ...), or rule="compound": the alpha**phi rule.

Rounding (identical to torchvision): channels = make_divisible(c * width, 8); layers per stage
= ceil(n * depth); compound-rule resolution = 224 * gamma**phi rounded to the nearest multiple
of 8 (an exact multiple keeps stride-2 stages free of odd-size surprises as often as possible).

alpha, beta, gamma below 1 raise ValueError; a product alpha*beta^2*gamma^2 more than 10% away
from 2 only warns (UserWarning): it is legal, it just breaks the "2x FLOPs per phi" design rule.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import List, Optional, Union

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15
BASE_RESOLUTION = 224


@dataclass(frozen=True)
class Variant:
    """One member of the family: multipliers and the settings that go with them."""
    name: str
    phi: float
    width: float
    depth: float
    resolution: int
    dropout: float
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1


# torchvision efficientnet_b0..b7 (B5..B7 keep the TF port's BN eps 1e-3, momentum 0.01).
OFFICIAL = {
    "b0": Variant("b0", 0, 1.0, 1.0, 224, 0.2),
    "b1": Variant("b1", 1, 1.0, 1.1, 240, 0.2),
    "b2": Variant("b2", 2, 1.1, 1.2, 260, 0.3),
    "b3": Variant("b3", 3, 1.2, 1.4, 300, 0.3),
    "b4": Variant("b4", 4, 1.4, 1.8, 380, 0.4),
    "b5": Variant("b5", 5, 1.6, 2.2, 456, 0.4, 1e-3, 0.01),
    "b6": Variant("b6", 6, 1.8, 2.6, 528, 0.5, 1e-3, 0.01),
    "b7": Variant("b7", 7, 2.0, 3.1, 600, 0.5, 1e-3, 0.01),
}

# B0's stages, the paper's Table 1: (expand_ratio, kernel, stride, in_channels, out_channels, layers)
B0_STAGES = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]
B0_STEM_CHANNELS = 32


def make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's _make_divisible: round to a multiple of divisor, never below 90% of v."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def scale_channels(c: int, width: float) -> int:
    return make_divisible(c * width, 8)


def scale_depth(n: int, depth: float) -> int:
    return int(math.ceil(n * depth))


def _check_coefficients(alpha: float, beta: float, gamma: float) -> float:
    for name, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not v >= 1.0:
            raise ValueError(f"{name}: expected a coefficient >= 1 (the paper's constraint), got {v}")
    product = alpha * beta ** 2 * gamma ** 2
    if abs(product - 2.0) > 0.2:
        warnings.warn(f"alpha * beta**2 * gamma**2 = {product:.3f} is far from 2: FLOPs will grow "
                      f"~{product:.2f}x per step of phi instead of ~2x", UserWarning, stacklevel=3)
    return product


def flops_factor(alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA) -> float:
    """alpha * beta**2 * gamma**2: the predicted FLOPs growth per step of phi."""
    return _check_coefficients(alpha, beta, gamma)


def compound(phi: float, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA) -> Variant:
    """The alpha**phi rule: depth alpha**phi, width beta**phi, resolution 224 * gamma**phi."""
    _check_phi(phi)
    _check_coefficients(alpha, beta, gamma)
    resolution = int(round(BASE_RESOLUTION * gamma ** phi / 8)) * 8
    dropout = min(0.5, 0.2 + 0.3 * phi / 7)  # the table's 0.2 at B0 .. 0.5 at B7, linearly
    return Variant(f"phi={phi:g}", float(phi), beta ** phi, alpha ** phi, resolution, dropout)


def _check_phi(phi) -> None:
    if isinstance(phi, bool) or not isinstance(phi, (int, float)) or not math.isfinite(phi) or phi < 0:
        raise ValueError(f"phi: expected a finite number >= 0, got {phi!r}")


def variant(name_or_phi: Union[str, float], rule: str = "official", **coefficients) -> Variant:
    """A Variant from "b0".."b7" or a phi. rule="official" uses the table for integer phi 0..7
    and the compound rule otherwise; rule="compound" always uses alpha**phi (coefficients: alpha,
    beta, gamma)."""
    if isinstance(name_or_phi, str):
        key = name_or_phi.lower().replace("efficientnet_", "").replace("efficientnet-", "")
        if key not in OFFICIAL:
            raise ValueError(f"name: expected one of {list(OFFICIAL)}, got {name_or_phi!r}")
        return OFFICIAL[key]
    _check_phi(name_or_phi)
    if rule not in ("official", "compound"):
        raise ValueError(f"rule: expected 'official' or 'compound', got {rule!r}")
    if rule == "official" and not coefficients and float(name_or_phi).is_integer() and name_or_phi <= 7:
        return OFFICIAL[f"b{int(name_or_phi)}"]
    return compound(name_or_phi, **coefficients)


@dataclass(frozen=True)
class StageConfig:
    expand_ratio: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    layers: int


def stage_configs(v: Variant) -> List[StageConfig]:
    """B0's seven stages scaled by v's width and depth (torchvision's rounding)."""
    return [StageConfig(e, k, s, scale_channels(ci, v.width), scale_channels(co, v.width), scale_depth(n, v.depth))
            for e, k, s, ci, co, n in B0_STAGES]


@dataclass(frozen=True)
class BlockShape:
    """One MBConv of a model at a given input resolution."""
    stage: int            # 1..7
    index: int            # position within the stage
    expand_ratio: int
    in_channels: int
    expanded_channels: int
    out_channels: int
    squeeze_channels: int
    kernel: int
    stride: int
    in_hw: int
    out_hw: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


def block_shapes(name_or_phi: Union[str, float], resolution: Optional[int] = None, rule: str = "official") -> List[BlockShape]:
    """Every MBConv of the model, in order, with its input/output spatial size (symmetric padding)."""
    v = variant(name_or_phi, rule)
    hw = v.resolution if resolution is None else resolution
    if not isinstance(hw, int) or hw < 1:
        raise ValueError(f"resolution: expected a positive int, got {resolution!r}")
    hw = (hw + 2 - 3) // 2 + 1  # stem: 3x3 stride 2, padding 1
    out = []
    for stage, cfg in enumerate(stage_configs(v), start=1):
        for i in range(cfg.layers):
            cin = cfg.in_channels if i == 0 else cfg.out_channels
            stride = cfg.stride if i == 0 else 1
            pad = (cfg.kernel - 1) // 2
            out_hw = (hw + 2 * pad - cfg.kernel) // stride + 1
            out.append(BlockShape(stage, i, cfg.expand_ratio, cin, make_divisible(cin * cfg.expand_ratio, 8), cfg.out_channels,
                                  max(1, cin // 4), cfg.kernel, stride, hw, out_hw))
            hw = out_hw
    return out
