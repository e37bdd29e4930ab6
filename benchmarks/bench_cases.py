"""What is benchmarked at each level, for each phi, and the plain-PyTorch module that defines it.

- op:    the stem (torch.nn Conv2d(3, C, 3, stride 2) + BatchNorm2d + SiLU: the dense conv_bn_act op);
         depthwise conv + BN + SiLU over each distinct depthwise layer shape of EfficientNet-B{phi}
         (torch.nn Conv2d(groups=C) + BatchNorm2d + SiLU), and squeeze-excitation alone on the
         depthwise output of the same layers (torch.nn, same layout as torchvision's SqueezeExcitation);
         and the expand / project 1x1 convs of the MBConv blocks ("pointwise": the fused 1x1 GEMM
         against torch.matmul of the same GEMM without the fusion, see PointwiseGemm);
- block: the first MBConv of every stage (torchvision MBConv);
- model: EfficientNet-B{phi} inference (torchvision efficientnet_b{phi}; timm efficientnet_b{phi} when
         torchvision is not installed) at each model batch size, and the extra models chosen
         (bench_config.EXTRA_MODELS: timm tf_efficientnet_b0, torchvision efficientnet_v2_s).
Shapes come from effkernels.scaling.block_shapes at the paper resolution (or --bench-resolution).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn

from bench_config import EXTRA_MODELS
from effkernels import scaling
from effkernels.reference import pointwise_conv_ref


@dataclass(frozen=True)
class Case:
    level: str
    kind: str          # stem | dwconv | se | pointwise | mbconv | efficientnet
    phi: int
    resolution: int
    id: str            # the pytest id and the report's row name
    shape: str         # for people: channels, spatial size, kernel, stride
    batch: int
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
        stem = scaling.scale_channels(32, scaling.variant(phi).width)
        out.append(Case("op", "stem", phi, res, f"b{phi}-stem-{res}-c{stem}",
                        f"stem conv3x3 s2+BN+SiLU N={batch} 3->{stem} {res}x{res}", batch,
                        (("c", stem), ("hw", res), ("eps", eps))))
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
                            f"dwconv+BN+SiLU N={batch} C={c} {b.in_hw}x{b.in_hw} k{b.kernel} s{b.stride}", batch,
                            (("c", c), ("hw", b.in_hw), ("k", b.kernel), ("stride", b.stride), ("eps", eps))))
            out.append(Case("op", "se", phi, res, f"b{phi}-se-c{c}-{b.out_hw}-r{b.squeeze_channels}",
                            f"SE N={batch} C={c} {b.out_hw}x{b.out_hw} squeeze={b.squeeze_channels}", batch,
                            (("c", c), ("hw", b.out_hw), ("s", b.squeeze_channels))))
        out += pointwise_cases(phi, res, batch, max_shapes)
    # one SE case per distinct shape (two depthwise layers can share an output shape)
    return list({c.id: c for c in out}.values())


def pointwise_cases(phi: int, res: int, batch: int, max_shapes: int):
    """The expand and project 1x1 convs of B{phi}'s blocks: distinct shapes, heaviest (GEMM FLOPs)
    first, at most max_shapes of each (0 = all). The eager baseline is the plain GEMM (PointwiseGemm)."""
    expand, project = set(), set()  # (c_in, c_out, hw[, residual]) of each 1x1 conv
    for b in scaling.block_shapes(phi, res):
        if b.expand_ratio != 1:
            expand.add((b.in_channels, b.expanded_channels, b.in_hw))
        project.add((b.expanded_channels, b.out_channels, b.out_hw, b.residual))
    out = []
    for role, shapes in (("expand", expand), ("project", project)):
        keys = sorted(shapes, key=lambda k: (-k[0] * k[1] * k[2] ** 2, k))
        for key in keys[:max_shapes or None]:
            cin, cout, hw = key[:3]
            residual = role == "project" and key[3]
            m = batch * hw * hw
            fused = ("GEMM+bias+SiLU" if role == "expand"
                     else "(x*SE scale) GEMM+bias" + ("+residual" if residual else ""))
            out.append(Case("op", "pointwise", phi, res,
                            f"b{phi}-pw-{role}-{cin}x{hw}-{cout}" + ("-res" if residual else ""),
                            f"pw-{role} N={batch} {cin}->{cout} {hw}x{hw}: fused {fused} vs eager = plain matmul "
                            f"[{m},{cin}]x[{cin},{cout}], no bias/act", batch,
                            (("role", role), ("cin", cin), ("cout", cout), ("hw", hw), ("residual", residual))))
    return out


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
                            f"{b.in_hw}x{b.in_hw} k{b.kernel} s{b.stride} e{b.expand_ratio}", batch,
                            (("cin", b.in_channels), ("cout", b.out_channels), ("expand", b.expand_ratio),
                             ("k", b.kernel), ("stride", b.stride), ("hw", b.in_hw), ("eps", eps))))
    return out


def model_cases(phis, batches, models, resolution: int):
    """EfficientNet-B{phi} for each phi, then each extra model (bench_config.EXTRA_MODELS, ordered with the
    phi of similar cost), at each batch size."""
    named = [(f"efficientnet_b{phi}", f"EfficientNet-B{phi}", phi, _resolution(phi, resolution)) for phi in phis]
    named += [(name, name, EXTRA_MODELS[name][1], resolution or EXTRA_MODELS[name][2]) for name in models]
    return [Case("model", "efficientnet", phi, res, f"{name.replace('efficientnet_', '')}-{res}-n{batch}",
                 f"{label} N={batch} 3x{res}x{res}", batch, (("model", name), ("hw", res)))
            for name, label, phi, res in named for batch in batches]


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


class PointwiseGemm(nn.Module):
    """The pointwise op case: one 1x1 conv of an MBConv block.

    forward() is the eager baseline, and it does LESS work than the fused op: the plain GEMM
    x[N*H*W, C_in] @ weight.t() on the channels_last input viewed as 2-d (no copy), with no bias,
    activation, SE scale or residual; a contiguous (NCHW) input is multiplied as weight @ x[N, C_in, H*W],
    also without a copy. So "vs eager" on these cases reads "how close is the fused GEMM to the
    library's plain GEMM (cuBLAS / oneDNN)".
    fused_reference() is what the fused providers compute, effkernels.reference.pointwise_conv_ref:
    expand: silu(conv1x1(x) + bias); project: conv1x1(x * scale) + bias (+ residual).
    The bias, the SE scale (fp32, [N, C_in], as the op takes it) and the residual are buffers, so the
    baseline's byte count (parameters only) leaves them out; fused_extra_bytes() adds them.
    """

    def __init__(self, role: str, cin: int, cout: int, batch: int, hw: int, residual: bool):
        super().__init__()
        self.activation = "silu" if role == "expand" else "none"
        self.weight = nn.Parameter(torch.randn(cout, cin) / math.sqrt(cin))
        self.register_buffer("bias", torch.randn(cout) * 0.1)
        self.register_buffer("scale", torch.rand(batch, cin) if role == "project" else None)
        self.register_buffer("residual", torch.randn(batch, cout, hw, hw) if residual else None)

    def forward(self, x):
        n, c, h, w = x.shape
        if x.is_contiguous(memory_format=torch.channels_last):
            return torch.matmul(x.permute(0, 2, 3, 1).view(n * h * w, c), self.weight.t())
        return torch.matmul(self.weight, x.view(n, c, h * w))

    def fused_inputs(self, dtype):
        """(weight, bias, scale, residual) as effkernels.ops.pointwise_conv takes them for x of `dtype`."""
        scale = None if self.scale is None else self.scale.float()
        return self.weight.to(dtype), self.bias.to(dtype), scale, self.residual

    def fused_reference(self, x):
        """The fused op's math in x's dtype (called in fp64 for the check, in the run's dtype for the
        eager error that sets the tolerance)."""
        w, b, scale, res = self.fused_inputs(x.dtype)
        if scale is not None and x.dtype == torch.float64:
            scale = scale.double()
        return pointwise_conv_ref(x, w, b, self.activation, scale, None if res is None else res.to(x.dtype))

    def fused_extra_bytes(self, dtype) -> int:
        """Bytes the fused op reads beyond the GEMM's input and weight: bias, fp32 scale, residual."""
        n = self.bias.numel() * dtype.itemsize
        n += 0 if self.scale is None else self.scale.numel() * 4
        return n + (0 if self.residual is None else self.residual.numel() * dtype.itemsize)


@functools.lru_cache(maxsize=None)
def _model_source():
    """(library name, builder(phi) -> nn.Module) for the eager EfficientNet-B{phi}, or (None, reason)."""
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


def _model(name: str, phi: int):
    """(module, source library) of a model-level case."""
    if name not in EXTRA_MODELS:  # efficientnet_b{phi}
        lib, make = _model_source()
        if lib is None:
            raise LookupError(make)
        return make(phi), lib
    lib = EXTRA_MODELS[name][0]
    try:
        if lib == "timm":
            import timm  # noqa: PLC0415
            return timm.create_model(name, pretrained=False), lib
        from torchvision import models  # noqa: PLC0415
        return getattr(models, name)(weights=None), lib
    except ImportError as e:
        raise LookupError(f"{name} comes from {lib}, which is not importable ({e})") from None


def build(case: Case):
    """(module in fp32 eval mode on the CPU, input shape, source library). The caller calibrates it (effkernels.profile.calibrate_bn_).
    Raises LookupError when the library that defines the case is not importable."""
    batch = case.batch
    if case.kind == "stem":
        c = case.param("c")
        m = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c, eps=case.param("eps")), nn.SiLU())
        return m, (batch, 3, case.param("hw"), case.param("hw")), "torch.nn"
    if case.kind == "dwconv":
        c, k = case.param("c"), case.param("k")
        m = nn.Sequential(nn.Conv2d(c, c, k, case.param("stride"), (k - 1) // 2, groups=c, bias=False),
                          nn.BatchNorm2d(c, eps=case.param("eps")), nn.SiLU())
        return m, (batch, c, case.param("hw"), case.param("hw")), "torch.nn"
    if case.kind == "se":
        c = case.param("c")
        return SqueezeExcitation(c, case.param("s")), (batch, c, case.param("hw"), case.param("hw")), "torch.nn"
    if case.kind == "pointwise":
        cin, hw = case.param("cin"), case.param("hw")
        m = PointwiseGemm(case.param("role"), cin, case.param("cout"), batch, hw, case.param("residual"))
        return m, (batch, cin, hw, hw), "torch.matmul (plain GEMM)"
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
        m, lib = _model(case.param("model"), case.phi)
        return m, (batch, 3, case.param("hw"), case.param("hw")), lib
    raise AssertionError(case.kind)
