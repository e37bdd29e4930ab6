"""effkernels.convert: swap fused layers into an existing model, instance by instance.

    fast = effkernels.convert(model.eval())
    print(fast.effkernels_report)          # what was converted, what was left and why

Recognised blocks (matched by class, the libraries are not imported here):
- torchvision efficientnet_b0..b7 / efficientnet_v2_* MBConv -> effkernels.nn.MBConv (same keys);
  FusedMBConv is left: its dense k x k conv has no fused op (cuDNN / oneDNN already serve it).
- torchvision mobilenet_v2 / mobilenet_v3 InvertedResidual, timm InvertedResidual and
  DepthwiseSeparableConv (efficientnet_*, tf_efficientnet_*, mobilenetv3_* ...), lukemelas
  efficientnet_pytorch MBConvBlock -> effkernels.nn.InvertedResidual, which keeps the
  source's submodules under their names (same keys) and runs the source's forward in train mode.
- torchvision Conv2dNormActivation (conv + BatchNorm2d + activation) reached outside a block: the
  stems and heads of efficientnet_*, efficientnet_v2_*, mobilenet_v2 / v3. It keeps the source's
  children (same keys, a conv bias is folded too) and becomes, by its conv:
  1x1 stride 1 no padding -> effkernels.nn.PointwiseConvBNAct (the pointwise_conv op);
  dense k x k (groups 1; the 3x3 stride-2 stems) -> effkernels.nn.ConvBNAct (F.conv2d on the
  BN-folded weight, then the activation in place: no custom kernel, ATen runs the dense conv on
  every backend); depthwise (groups == channels, k in 1/3/5/7, stride 1/2, padding (k-1)//2) ->
  effkernels.nn.DWConvBNAct. Left: dilation, other groups, a norm other than a plain
  BatchNorm2d with running statistics, an activation other than relu/relu6/silu/hardswish/none.
  Those inside a converted or left block are not visited (the block is replaced or left whole).
  timm's conv_stem/bn1/conv_head/bn2 and lukemelas' _conv_stem/_bn0/_conv_head/_bn1 are separate
  attributes of the model, not one module: they are left (fusing them would change state_dict keys).
A block is left as it is, with the reason in the report, when something has no fused
equivalent: an activation other than relu/relu6/silu/hardswish (SE: relu/silu, gate
sigmoid/hardsigmoid), different expand and depthwise activations, a grouped or dilated conv,
anti-aliasing, space-to-depth, a BatchNorm without running statistics, an unknown conv class.

Train mode: converted layers run the eager math of their unfolded submodules (the exact
training computation of the source), so a converted model can still be trained or fine-tuned;
eval mode runs the fused ops with BN folded once.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from ._common import CONV_ACTIVATIONS, SE_ACTIVATIONS, SE_GATES
from .backends import resolve
from .nn import ConvBNAct, DWConvBNAct, MBConv, PointwiseConvBNAct, make_divisible
from .nn._base import check_backend
from .nn.blocks import BlockSpec, InvertedResidual
from .ops.dwconv_bn_act import KERNEL_SIZES as _DW_KERNEL_SIZES

__all__ = ["convert", "ConvertReport"]


@dataclass
class ConvertReport:
    """What convert() did. converted: (fqn, source class, replacement class);
    skipped: (fqn, source class, reason). Also set as `effkernels_report` on the returned model."""
    backend: str
    converted: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    def __str__(self):
        lines = [f"effkernels.convert (backend={self.backend!r}): {len(self.converted)} converted, "
                 f"{len(self.skipped)} left"]
        lines += [f"  converted {fqn or '<root>'}: {src} -> {dst}" for fqn, src, dst in self.converted]
        lines += [f"  left      {fqn or '<root>'}: {src}: {why}" for fqn, src, why in self.skipped]
        return "\n".join(lines)


class _Unsupported(Exception):
    """Raised while reading a block that has no fused equivalent; the message is the report's reason."""


# Activation classes of torch.nn, timm and efficientnet_pytorch, by class name.
_ACT_BY_CLASS = {
    "Identity": "none", "ReLU": "relu", "ReLU6": "relu6", "SiLU": "silu", "Swish": "silu", "SwishMe": "silu",
    "MemoryEfficientSwish": "silu", "Hardswish": "hardswish", "HardSwish": "hardswish",
    "HardSwishMe": "hardswish", "Sigmoid": "sigmoid", "Hardsigmoid": "hardsigmoid",
    "HardSigmoid": "hardsigmoid", "HardSigmoidMe": "hardsigmoid",
}
_ACT_LIBS = ("torch.nn.", "timm.", "efficientnet_pytorch.")


def _lib(m) -> str:
    return type(m).__module__


def _act(m: Optional[nn.Module], what: str, allowed) -> str:
    name = "none" if m is None else _ACT_BY_CLASS.get(type(m).__name__)
    if m is not None and not _lib(m).startswith(_ACT_LIBS):
        name = None
    if name not in allowed:
        raise _Unsupported(f"{what} activation {type(m).__name__} is not supported (fused: {list(allowed)})")
    return name


def _bn(m, what: str) -> nn.BatchNorm2d:
    if not isinstance(m, nn.BatchNorm2d):
        raise _Unsupported(f"{what}: expected a BatchNorm2d, got {type(m).__name__}")
    if m.running_mean is None:
        raise _Unsupported(f"{what}: BatchNorm without running statistics cannot be folded")
    drop = getattr(m, "drop", None)  # timm BatchNormAct2d
    if drop is not None and not isinstance(drop, nn.Identity):
        raise _Unsupported(f"{what}: dropout inside the norm layer ({type(drop).__name__})")
    return m


def _bn_act(m, what: str) -> str:
    """The activation carried by a timm BatchNormAct2d ("none" for a plain BatchNorm2d)."""
    _bn(m, what)
    return _act(getattr(m, "act", None), what, CONV_ACTIVATIONS)


def _conv_padding(conv: nn.Conv2d):
    """The fused op's padding argument for a conv of torch, timm or efficientnet_pytorch."""
    cls = type(conv).__name__
    k = conv.kernel_size[0]
    if cls in ("Conv2dSame", "Conv2dDynamicSamePadding"):  # timm / lukemelas dynamic TF SAME
        return 0 if k == 1 and conv.stride == (1, 1) else "same"  # a 1x1 stride-1 SAME conv pads nothing
    if cls == "Conv2dStaticSamePadding":  # lukemelas: a ZeroPad2d fixed for the construction image size
        pad = conv.static_padding
        extra = (0, 0, 0, 0) if isinstance(pad, nn.Identity) else pad.padding  # (left, right, top, bottom)
        ph, pw = conv.padding
        return (extra[2] + ph, extra[3] + ph, extra[0] + pw, extra[1] + pw)
    if type(conv) is not nn.Conv2d:
        raise _Unsupported(f"unknown conv class {_lib(conv)}.{cls}")
    if conv.padding == "same":
        return (k - 1) // 2
    if conv.padding == "valid":
        return 0
    ph, pw = conv.padding
    return ph if ph == pw == (k - 1) // 2 else (ph, ph, pw, pw)


def _conv(conv, what: str, depthwise: bool):
    """Check a conv the fused op can take; return (stride, padding)."""
    if not isinstance(conv, nn.Conv2d):
        raise _Unsupported(f"{what}: expected a Conv2d, got {type(conv).__name__}")
    k = conv.kernel_size
    if conv.padding_mode != "zeros":
        raise _Unsupported(f"{what}: padding_mode {conv.padding_mode!r}")
    if conv.dilation != (1, 1):
        raise _Unsupported(f"{what}: dilation {conv.dilation}")
    if conv.stride[0] != conv.stride[1] or k[0] != k[1]:
        raise _Unsupported(f"{what}: non-square kernel {k} or stride {conv.stride}")
    padding = _conv_padding(conv)
    if depthwise:
        if not conv.groups == conv.in_channels == conv.out_channels:
            raise _Unsupported(f"{what}: grouped conv (groups={conv.groups}, {conv.in_channels} -> "
                               f"{conv.out_channels}) is not depthwise")
    elif k != (1, 1) or conv.groups != 1 or conv.stride != (1, 1) or padding not in (0, (0, 0, 0, 0)):
        raise _Unsupported(f"{what}: expected a plain 1x1 conv, got kernel {k}, groups {conv.groups}, "
                           f"stride {conv.stride}, padding {padding}")
    return conv.stride[0], padding


def _same_act(expand_act: str, dw_act: str) -> str:
    if expand_act != dw_act:
        raise _Unsupported(f"expand activation {expand_act} differs from depthwise activation {dw_act}")
    return dw_act


def _se_fields(se, reduce, expand, act, gate, prefix: str) -> dict:
    _conv(reduce, "SE reduce", depthwise=False)
    _conv(expand, "SE expand", depthwise=False)
    if reduce.bias is None or expand.bias is None:
        raise _Unsupported("SE convs without bias")
    return dict(se_reduce=f"{prefix}{_name_of(se, reduce)}", se_expand=f"{prefix}{_name_of(se, expand)}",
                se_activation=_act(act, "SE", SE_ACTIVATIONS), se_gate=_act(gate, "SE gate", SE_GATES))


def _name_of(parent: nn.Module, child: nn.Module) -> str:
    return next(n for n, c in parent.named_children() if c is child)


# --- per-family readers: source block -> BlockSpec (or _Unsupported) ----------------------------

def _tv_cna(seq, what: str):
    """torchvision Conv2dNormActivation: (conv, bn, activation name)."""
    parts = list(seq)
    if len(parts) not in (2, 3):
        raise _Unsupported(f"{what}: unexpected Conv2dNormActivation layout")
    act = _act(parts[2] if len(parts) == 3 else None, what, CONV_ACTIVATIONS)
    return parts[0], _bn(parts[1], what), act


def _tv_inverted_residual(block, seq_name: str) -> BlockSpec:
    """torchvision MBConv (block), mobilenet_v3 InvertedResidual (block), mobilenet_v2 (conv)."""
    seq = getattr(block, seq_name)
    names = [n for n, _ in seq.named_children()]
    f = {}
    i = 0
    if len(names) >= 2 and type(seq[1]).__name__ == "Conv2dNormActivation" and seq[0][0].groups == 1:
        conv, _, expand_act = _tv_cna(seq[0], "expand")
        _conv(conv, "expand", depthwise=False)
        f.update(expand_conv=f"{seq_name}.0.0", expand_bn=f"{seq_name}.0.1")
        i = 1
    dw_conv, _, act = _tv_cna(seq[i], "depthwise")
    stride, padding = _conv(dw_conv, "depthwise", depthwise=True)
    if "expand_conv" in f:
        act = _same_act(expand_act, act)
    f.update(dw_conv=f"{seq_name}.{i}.0", dw_bn=f"{seq_name}.{i}.1", stride=stride, padding=padding, activation=act)
    i += 1
    if type(seq[i]).__name__ == "SqueezeExcitation":
        se = seq[i]
        f.update(_se_fields(se, se.fc1, se.fc2, se.activation, se.scale_activation, f"{seq_name}.{i}."))
        i += 1
    rest = names[i:]
    if len(rest) == 1:  # Conv2dNormActivation(activation=None)
        proj_conv, _, proj_act = _tv_cna(seq[i], "project")
        f.update(proj_conv=f"{seq_name}.{i}.0", proj_bn=f"{seq_name}.{i}.1")
    elif len(rest) == 2:  # mobilenet_v2: bare Conv2d, BatchNorm2d
        proj_conv, proj_act = seq[i], "none"
        _bn(seq[i + 1], "project")
        f.update(proj_conv=f"{seq_name}.{i}", proj_bn=f"{seq_name}.{i + 1}")
    else:
        raise _Unsupported(f"unexpected layout of {seq_name}: {names}")
    if proj_act != "none":
        raise _Unsupported(f"activation after the projection ({proj_act})")
    _conv(proj_conv, "project", depthwise=False)
    return BlockSpec(residual=bool(block.use_res_connect), **f)


def _timm_common(block):
    if getattr(block, "conv_s2d", None) is not None:
        raise _Unsupported("space-to-depth stem (conv_s2d)")
    if not isinstance(block.aa, nn.Identity):
        raise _Unsupported(f"anti-aliasing layer {type(block.aa).__name__}")
    drop = block.drop_path
    if not (isinstance(drop, nn.Identity) or type(drop).__name__ == "DropPath"):
        raise _Unsupported(f"unknown drop path {type(drop).__name__}")
    se = {}
    if not isinstance(block.se, nn.Identity):
        s = block.se
        if type(s).__name__ != "SqueezeExcite" or not all(hasattr(s, a) for a in ("conv_reduce", "act1", "conv_expand", "gate")):
            raise _Unsupported(f"SE module {type(s).__name__}")
        se = _se_fields(s, s.conv_reduce, s.conv_expand, s.act1, s.gate, "se.")
    return se


def _timm_inverted_residual(block) -> BlockSpec:
    se = _timm_common(block)
    _conv(block.conv_pw, "expand", depthwise=False)
    stride, padding = _conv(block.conv_dw, "depthwise", depthwise=True)
    _conv(block.conv_pwl, "project", depthwise=False)
    act = _same_act(_bn_act(block.bn1, "expand"), _bn_act(block.bn2, "depthwise"))
    if _bn_act(block.bn3, "project") != "none":
        raise _Unsupported("activation after the projection")
    return BlockSpec(expand_conv="conv_pw", expand_bn="bn1", dw_conv="conv_dw", dw_bn="bn2", stride=stride,
                     padding=padding, activation=act, proj_conv="conv_pwl", proj_bn="bn3",
                     residual=bool(block.has_skip), **se)


def _timm_depthwise_separable(block) -> BlockSpec:
    se = _timm_common(block)
    stride, padding = _conv(block.conv_dw, "depthwise", depthwise=True)
    _conv(block.conv_pw, "project", depthwise=False)
    act = _bn_act(block.bn1, "depthwise")
    if _bn_act(block.bn2, "project") != "none":
        raise _Unsupported("activation after the pointwise conv (pw_act)")
    return BlockSpec(dw_conv="conv_dw", dw_bn="bn1", stride=stride, padding=padding, activation=act,
                     proj_conv="conv_pw", proj_bn="bn2", residual=bool(block.has_skip), **se)


def _lukemelas_mbconv(block) -> BlockSpec:
    args = block._block_args
    act = _act(block._swish, "block", CONV_ACTIVATIONS)
    f = {}
    if args.expand_ratio != 1:
        _conv(block._expand_conv, "expand", depthwise=False)
        _bn(block._bn0, "expand")
        f.update(expand_conv="_expand_conv", expand_bn="_bn0")
    stride, padding = _conv(block._depthwise_conv, "depthwise", depthwise=True)
    _bn(block._bn1, "depthwise")
    _conv(block._project_conv, "project", depthwise=False)
    _bn(block._bn2, "project")
    if block.has_se:
        f.update(_se_fields(block, block._se_reduce, block._se_expand, block._swish, nn.Sigmoid(), ""))
    residual = bool(block.id_skip and stride == 1 and args.input_filters == args.output_filters)
    return BlockSpec(dw_conv="_depthwise_conv", dw_bn="_bn1", stride=stride, padding=padding, activation=act,
                     proj_conv="_project_conv", proj_bn="_bn2", residual=residual, **f)


def _tv_mbconv(block, backend: str) -> nn.Module:
    spec = _tv_inverted_residual(block, "block")
    if spec.activation not in SE_ACTIVATIONS or spec.se_activation != spec.activation or spec.se_gate != "sigmoid":
        return _wrap(spec, backend)(block)
    dw_conv, dw_bn = block.get_submodule(spec.dw_conv), block.get_submodule(spec.dw_bn)
    bns = [block.get_submodule(p) for p in (spec.expand_bn, spec.dw_bn, spec.proj_bn) if p]
    if (spec.padding != (dw_conv.kernel_size[0] - 1) // 2 or block.stochastic_depth.mode != "row"
            or make_divisible(dw_conv.in_channels) != dw_conv.in_channels
            or len({(b.eps, b.momentum) for b in bns}) != 1):
        return _wrap(spec, backend)(block)  # not MBConv's layout: keep it as a generic fused block
    in_ch = block.get_submodule(spec.expand_conv).in_channels if spec.expand_conv else dw_conv.in_channels
    out_ch = block.get_submodule(spec.proj_conv).out_channels
    squeeze = block.get_submodule(spec.se_reduce).out_channels if spec.se_reduce else 0
    new = MBConv(in_ch, out_ch, dw_conv.in_channels / in_ch, dw_conv.kernel_size[0], spec.stride,
                 squeeze_channels=squeeze, activation=spec.activation, bn_eps=dw_bn.eps,
                 bn_momentum=dw_bn.momentum, stochastic_depth_prob=block.stochastic_depth.p, backend=backend)
    new.load_state_dict(block.state_dict(keep_vars=True), strict=True, assign=True)  # the source's tensors
    return new.train(block.training)


def _wrap(spec: BlockSpec, backend: str):
    return lambda block: InvertedResidual(block, spec, backend)


def _adopt(new: nn.Sequential, src: nn.Sequential) -> nn.Module:
    """Give `new` the children of `src` under their names: the same tensors and state_dict keys
    (a conv bias included), and train mode runs exactly the source's modules."""
    for name in list(new._modules):
        del new._modules[name]
    for name, child in src.named_children():
        new.add_module(name, child)
    return new.train(src.training)


def _tv_conv_norm_act(seq, backend: str):
    """torchvision Conv2dNormActivation outside a block (stems, heads): a builder of its replacement."""
    conv, bn, act = _tv_cna(seq, "Conv2dNormActivation")
    if type(bn) is not nn.BatchNorm2d:
        raise _Unsupported(f"norm layer {type(bn).__name__} (only a plain BatchNorm2d is folded)")
    if type(conv) is not nn.Conv2d:
        raise _Unsupported(f"unknown conv class {_lib(conv)}.{type(conv).__name__}")
    if conv.padding_mode != "zeros":
        raise _Unsupported(f"padding_mode {conv.padding_mode!r}")
    if conv.dilation != (1, 1):
        raise _Unsupported(f"dilation {conv.dilation}")
    cin, cout, k = conv.in_channels, conv.out_channels, conv.kernel_size
    kw = {"activation": act, "bn_eps": bn.eps, "bn_momentum": bn.momentum, "backend": backend}
    if conv.groups == 1:
        if k == (1, 1) and conv.stride == (1, 1) and conv.padding in ((0, 0), "valid", "same"):
            return lambda m: _adopt(PointwiseConvBNAct(cin, cout, **kw), m)
        return lambda m: _adopt(ConvBNAct(cin, cout, k, conv.stride, conv.padding, bias=conv.bias is not None,
                                          **kw), m)
    if conv.groups == cin == cout:
        if (k[0] != k[1] or k[0] not in _DW_KERNEL_SIZES or conv.stride not in ((1, 1), (2, 2))
                or conv.padding != ((k[0] - 1) // 2,) * 2):
            raise _Unsupported(f"depthwise conv with kernel {k}, stride {conv.stride}, padding {conv.padding} "
                               f"(fused: square k in {list(_DW_KERNEL_SIZES)}, stride 1 or 2, padding (k-1)//2)")
        return lambda m: _adopt(DWConvBNAct(cin, k[0], conv.stride[0], **kw), m)
    raise _Unsupported(f"grouped conv (groups={conv.groups}, {cin} -> {cout})")


def _plan(m: nn.Module, backend: str):
    """For a recognised block: a callable building its replacement, or a reason string to leave it.
    None for anything else (convert then looks inside it)."""
    mod, cls = _lib(m), type(m).__name__
    try:
        if mod == "torchvision.models.efficientnet" and cls == "MBConv":
            return lambda block: _tv_mbconv(block, backend)
        if mod == "torchvision.models.efficientnet" and cls == "FusedMBConv":
            return "FusedMBConv: dense k x k conv, no fused op (cuDNN/oneDNN already run it well)"
        if mod == "torchvision.models.mobilenetv3" and cls == "InvertedResidual":
            return _wrap(_tv_inverted_residual(m, "block"), backend)
        if mod == "torchvision.models.mobilenetv2" and cls == "InvertedResidual":
            return _wrap(_tv_inverted_residual(m, "conv"), backend)
        if mod.startswith("timm.") and cls == "InvertedResidual":
            return _wrap(_timm_inverted_residual(m), backend)
        if mod.startswith("timm.") and cls == "DepthwiseSeparableConv":
            return _wrap(_timm_depthwise_separable(m), backend)
        if mod.startswith("timm.") and cls in ("EdgeResidual", "CondConvResidual", "UniversalInvertedResidual"):
            return f"{cls}: no fused op for this block type"
        if mod.startswith("efficientnet_pytorch.") and cls == "MBConvBlock":
            return _wrap(_lukemelas_mbconv(m), backend)
        if mod == "torchvision.ops.misc" and cls == "Conv2dNormActivation":  # reached outside blocks only
            return _tv_conv_norm_act(m, backend)
    except _Unsupported as e:
        return str(e)
    return None


def _check_devices(model: nn.Module, backend: str) -> None:
    for dev in {t.device for t in (*model.parameters(), *model.buffers())}:
        resolve(backend, dev)  # raises ValueError naming the backend and why it cannot serve dev


def convert(model: nn.Module, backend: str = "auto", inplace: bool = False,
            filter_fn: Optional[Callable[[nn.Module, str], bool]] = None) -> nn.Module:
    """Replace the recognised blocks of `model` (and the torchvision Conv2dNormActivation layers
    outside them: stems, heads) with fused layers; return the converted model.

    backend: "auto" | "triton" | "cuda" | "cpu" | "eager", used by every fused layer. Checked now
    against the devices the model's tensors are on (ValueError when it is not available here or
    cannot serve them). inplace: modify `model` itself instead of a deep copy. filter_fn(module,
    fqn): convert a recognised block only when it returns True (blocks it rejects are reported).

    The returned model carries a ConvertReport as `model.effkernels_report`. Weights are shared
    with the source blocks' tensors, state_dict keys are unchanged, and the model's train/eval
    mode is kept (train mode runs eager math, see the module docstring).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    check_backend(backend)
    _check_devices(model, backend)
    if not inplace:
        model = copy.deepcopy(model)
    report = ConvertReport(backend)

    def visit(m: nn.Module, fqn: str) -> Optional[nn.Module]:
        """The replacement of m, or None to keep m (after converting inside it)."""
        plan = _plan(m, backend)
        src = f"{_lib(m)}.{type(m).__qualname__}"
        if plan is None:
            for name, child in list(m.named_children()):
                new = visit(child, f"{fqn}.{name}" if fqn else name)
                if new is not None:
                    setattr(m, name, new)
            return None
        if isinstance(plan, str):
            report.skipped.append((fqn, src, plan))
            return None
        if filter_fn is not None and not filter_fn(m, fqn):
            report.skipped.append((fqn, src, "rejected by filter_fn"))
            return None
        new = plan(m)
        report.converted.append((fqn, src, f"{_lib(new)}.{type(new).__qualname__}"))
        return new

    with torch.no_grad():
        model = visit(model, "") or model
    model.effkernels_report = report
    return model
