"""What is benchmarked at each level, for each phi, and the plain-PyTorch module that defines it.

- op:    depthwise conv + BN + SiLU over each distinct depthwise layer shape of EfficientNet-B{phi}
         (torch.nn Conv2d(groups=C) + BatchNorm2d + SiLU), and squeeze-excitation alone on the
         depthwise output of the same layers (torch.nn, same layout as torchvision's SqueezeExcitation);
- block: the first MBConv of every stage (torchvision MBConv);
- model: EfficientNet-B{phi} inference (torchvision efficientnet_b{phi}; timm efficientnet_b{phi} when
         torchvision is not installed).
Shapes come from effkernels.scaling.block_shapes at the paper resolution (or --bench-resolution).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from effkernels import scaling


@dataclass(frozen=True)
class Case:
    level: str
    kind: str          # dwconv | se | mbconv | efficientnet
    phi: int
    resolution: int
    id: str            # the pytest id and the report's row name
    shape: str         # for people: channels, spatial size, kernel, stride
    params: tuple = ()  # (key, value) pairs the module builder reads

    def param(self, key):
        return dict(self.params)[key]


def _resolution(phi: int, override: int) -> int:
    return override or scaling.variant(phi).resolution


def op_cases(phis, batch: int, max_shapes: int, resolution: int):
    out = []
    for phi in phis:
        res = _resolution(phi, resolution)
        eps = scaling.variant(phi).bn_eps
        seen, shapes = set(), []
        for b in scaling.block_shapes(phi, res):
            key = (b.expanded_channels, b.in_hw, b.kernel, b.stride)
            if key not in seen:
                seen.add(key)
                shapes.append(b)
        # heaviest first: the layers that dominate the model's time are the ones worth timing
        shapes.sort(key=lambda b: -b.expanded_channels * (b.in_hw ** 2 + b.out_hw ** 2))
        for b in shapes[:max_shapes or None]:
            c = b.expanded_channels
            out.append(Case("op", "dwconv", phi, res, f"b{phi}-dw-c{c}-{b.in_hw}-k{b.kernel}s{b.stride}",
                            f"dwconv+BN+SiLU N={batch} C={c} {b.in_hw}x{b.in_hw} k{b.kernel} s{b.stride}",
                            (("c", c), ("hw", b.in_hw), ("k", b.kernel), ("stride", b.stride), ("eps", eps))))
            out.append(Case("op", "se", phi, res, f"b{phi}-se-c{c}-{b.out_hw}-r{b.squeeze_channels}",
                            f"SE N={batch} C={c} {b.out_hw}x{b.out_hw} squeeze={b.squeeze_channels}",
                            (("c", c), ("hw", b.out_hw), ("s", b.squeeze_channels))))
    # one SE case per distinct shape (two depthwise layers can share an output shape)
    return list({c.id: c for c in out}.values())


def block_cases(phis, batch: int, max_blocks: int, resolution: int):
    out = []
    for phi in phis:
        res = _resolution(phi, resolution)
        eps = scaling.variant(phi).bn_eps
        firsts = [b for b in scaling.block_shapes(phi, res) if b.index == 0]
        firsts.sort(key=lambda b: -b.expanded_channels * b.in_hw ** 2)
        for b in firsts[:max_blocks or None]:
            out.append(Case("block", "mbconv", phi, res,
                            f"b{phi}-stage{b.stage}-{b.in_channels}x{b.in_hw}-e{b.expand_ratio}k{b.kernel}s{b.stride}-{b.out_channels}",
                            f"MBConv stage {b.stage} N={batch} {b.in_channels}->{b.expanded_channels}->{b.out_channels} "
                            f"{b.in_hw}x{b.in_hw} k{b.kernel} s{b.stride} e{b.expand_ratio}",
                            (("cin", b.in_channels), ("cout", b.out_channels), ("expand", b.expand_ratio),
                             ("k", b.kernel), ("stride", b.stride), ("hw", b.in_hw), ("eps", eps))))
    return out


def model_cases(phis, batch: int, resolution: int):
    out = []
    for phi in phis:
        res = _resolution(phi, resolution)
        out.append(Case("model", "efficientnet", phi, res, f"b{phi}-{res}",
                        f"EfficientNet-B{phi} N={batch} 3x{res}x{res}", (("hw", res),)))
    return out


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation (SiLU, sigmoid gate) in torch.nn alone, so the op level
    needs no torchvision."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.SiLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x):
        return x * self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))


@functools.lru_cache(maxsize=None)
def _model_source():
    """(library name, builder(phi) -> nn.Module) for the eager EfficientNet, or (None, reason)."""
    try:
        from torchvision.models import efficientnet as tv  # noqa: PLC0415
        return "torchvision", lambda phi: getattr(tv, f"efficientnet_b{phi}")(weights=None)
    except ImportError as e:
        tv_error = e
    try:
        import timm  # noqa: PLC0415
        return "timm", lambda phi: timm.create_model(f"efficientnet_b{phi}", pretrained=False)
    except ImportError as e:
        return None, f"neither torchvision ({tv_error}) nor timm ({e}) is importable"


def build(case: Case, batch: int):
    """(module in fp32 eval mode on the CPU, input shape, source library). The caller calibrates it."""
    if case.kind == "dwconv":
        c, k = case.param("c"), case.param("k")
        m = nn.Sequential(nn.Conv2d(c, c, k, case.param("stride"), (k - 1) // 2, groups=c, bias=False),
                          nn.BatchNorm2d(c, eps=case.param("eps")), nn.SiLU())
        return m, (batch, c, case.param("hw"), case.param("hw")), "torch.nn"
    if case.kind == "se":
        c = case.param("c")
        return SqueezeExcitation(c, case.param("s")), (batch, c, case.param("hw"), case.param("hw")), "torch.nn"
    if case.kind == "mbconv":
        try:
            from torchvision.models.efficientnet import MBConv, MBConvConfig  # noqa: PLC0415
        except ImportError as e:
            raise LookupError(f"the block level's eager baseline is torchvision's MBConv: torchvision is not importable ({e})")
        cnf = MBConvConfig(case.param("expand"), case.param("k"), case.param("stride"), case.param("cin"),
                           case.param("cout"), 1)
        m = MBConv(cnf, 0.0, functools.partial(nn.BatchNorm2d, eps=case.param("eps")))
        return m, (batch, case.param("cin"), case.param("hw"), case.param("hw")), "torchvision"
    if case.kind == "efficientnet":
        lib, make = _model_source()
        if lib is None:
            raise LookupError(make)
        return make(case.phi), (batch, 3, case.param("hw"), case.param("hw")), lib
    raise AssertionError(case.kind)


@torch.no_grad()
def calibrate_bn_(module: nn.Module, x: torch.Tensor) -> None:
    """Give every BatchNorm non-trivial affine parameters and the running statistics of one batch,
    so BN folding is exercised and activations stay normalised through deep models."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_(0.0, 0.1)
        bn.momentum = 1.0
    module.train()
    module(x)
    module.eval()
    for bn in bns:
        bn.momentum = 0.1
