"""What the library handlers share: reading a block's parts (activations by what they compute,
BatchNorm, conv geometry, squeeze-excitation) and building replacements. Every reader raises
Unsupported with the reason when a part has no fused equivalent."""
from __future__ import annotations

import torch
from torch import nn

from ..nn import InvertedResidual
from ..nn.blocks import BlockSpec
from ..ops.dwconv_bn_act import KERNEL_SIZES
from ..reference import ACTIVATION_FNS
from ._registry import Unsupported

# Covers every kink and saturation point of the candidates (0, +-3, 6) and their tails.
_PROBE = torch.cat([torch.linspace(-8.0, 8.0, 1601), torch.tensor([-100.0, -20.0, 20.0, 100.0])]).reshape(1, 1, 1, -1)


def _identify(m) -> str | None:
    """The name of the elementwise function module m computes, found by running it on a probe, so an
    activation of any library (or a re-implementation) is recognised. None: not one of reference.ACTIVATION_FNS, or
    m holds tensors (a learned activation would change with its weights)."""
    if m is None:
        return "none"
    if next(m.parameters(), None) is not None or next(m.buffers(), None) is not None:
        return None
    try:
        with torch.no_grad():
            out = m(_PROBE.clone())  # a clone: in-place activations write to their input
    except Exception:
        return None
    if not isinstance(out, torch.Tensor) or out.shape != _PROBE.shape:
        return None
    for name, fn in ACTIVATION_FNS.items():
        if torch.allclose(out.float(), fn(_PROBE), rtol=1e-5, atol=1e-6):
            return name
    return None


def activation(m, what: str, allowed) -> str:
    name = _identify(m)
    if name not in allowed:
        got = type(m).__name__ + (f" ({name})" if name else "")
        raise Unsupported(f"{what} activation {got} is not supported (fused: {', '.join(allowed)})")
    return name


def batchnorm(m, what: str) -> nn.BatchNorm2d:
    """A BatchNorm2d that folds: plain, or timm's BatchNormAct2d (its activation is read by bn_act)."""
    if not isinstance(m, nn.BatchNorm2d) or not (type(m) is nn.BatchNorm2d or type(m).__name__ == "BatchNormAct2d"):
        raise Unsupported(f"{what}: norm layer {type(m).__name__} (only BatchNorm2d is folded)")
    if m.running_mean is None or m.running_var is None:
        raise Unsupported(f"{what}: BatchNorm2d without running statistics (track_running_stats=False) "
                          "normalizes with batch statistics in eval mode: nothing to fold")
    drop = getattr(m, "drop", None)  # timm BatchNormAct2d
    if drop is not None and not isinstance(drop, nn.Identity):
        raise Unsupported(f"{what}: dropout inside the norm layer ({type(drop).__name__})")
    return m


def bn_act(m, what: str, allowed) -> str:
    """The activation a timm BatchNormAct2d applies after the norm ("none" for a plain BatchNorm2d)."""
    batchnorm(m, what)
    return activation(getattr(m, "act", None), what, allowed)


def _plain_forward(conv: nn.Conv2d) -> bool:
    """nn.Conv2d itself, or a subclass that keeps its forward (its padding is conv.padding)."""
    cls = type(conv)
    return cls.forward is nn.Conv2d.forward and cls._conv_forward is nn.Conv2d._conv_forward


def _pads(top, bottom, left, right):
    return top if top == bottom == left == right else (top, bottom, left, right)


def conv_padding(conv: nn.Conv2d):
    """The fused ops' padding argument for a square conv of torch, timm or efficientnet_pytorch."""
    cls = type(conv).__name__
    k, s = conv.kernel_size[0], conv.stride[0]
    if cls in ("Conv2dSame", "Conv2dDynamicSamePadding"):  # timm / lukemelas: TF SAME, computed per input
        return 0 if k == 1 and s == 1 else "same"  # a 1x1 stride-1 SAME conv pads nothing
    if cls == "Conv2dStaticSamePadding":  # lukemelas: a ZeroPad2d fixed for the construction image size
        pad = conv.static_padding
        left, right, top, bottom = (0, 0, 0, 0) if isinstance(pad, nn.Identity) else pad.padding
        ph, pw = conv.padding
        return _pads(top + ph, bottom + ph, left + pw, right + pw)
    if not _plain_forward(conv):
        raise Unsupported(f"unknown conv class {type(conv).__module__}.{cls}")
    if conv.padding == "valid":
        return 0
    if conv.padding == "same":  # PyTorch's: stride 1, the extra pad of an even kernel at the bottom/right
        return (k - 1) // 2 if k % 2 else "same"
    ph, pw = conv.padding
    return _pads(ph, ph, pw, pw)


def _single_conv(conv, what: str, kind: str):
    if not isinstance(conv, nn.Conv2d):
        raise Unsupported(f"{what}: expected a Conv2d, got {type(conv).__name__}")
    k, s = tuple(conv.kernel_size), tuple(conv.stride)
    if conv.padding_mode != "zeros":
        raise Unsupported(f"{what}: padding_mode {conv.padding_mode!r}")
    if tuple(conv.dilation) != (1, 1):
        raise Unsupported(f"{what}: dilation {tuple(conv.dilation)}")
    if k[0] != k[1] or s[0] != s[1]:
        raise Unsupported(f"{what}: non-square kernel {k} or stride {s}")
    padding = conv_padding(conv)
    k, s = k[0], s[0]
    if kind == "depthwise":
        if not conv.groups == conv.in_channels == conv.out_channels:
            raise Unsupported(f"{what}: grouped conv (groups={conv.groups}, {conv.in_channels} -> "
                              f"{conv.out_channels}) is not depthwise")
        if k not in KERNEL_SIZES or s not in (1, 2):
            raise Unsupported(f"{what}: kernel {k}, stride {s} (fused: kernel {'/'.join(map(str, KERNEL_SIZES))}, "
                              "stride 1 or 2)")
    elif kind == "pointwise":
        if k != 1 or s != 1 or conv.groups != 1 or padding != 0:
            raise Unsupported(f"{what}: expected a plain 1x1 conv, got kernel {k}, groups {conv.groups}, "
                              f"stride {s}, padding {padding}")
    else:  # dense: the expand conv of a Fused-MBConv
        if conv.groups != 1:
            raise Unsupported(f"{what}: grouped conv (groups={conv.groups})")
        if s not in (1, 2):
            raise Unsupported(f"{what}: stride {s} (fused: 1 or 2)")
    return s, padding


def read_conv(conv, what: str, kind: str):
    """Check that `conv` can take the role `kind` ("depthwise", "pointwise", "dense") in a fused op;
    return (stride, padding). A timm MixedConv2d (child convs over consecutive channel splits) is
    one conv of the largest kernel (nn.blocks.conv_weight): its depthwise parts must share a padding
    rule that centres every kernel alike, its 1x1 parts become a block-diagonal weight."""
    if isinstance(conv, nn.Conv2d) or type(conv).__name__ != "MixedConv2d":
        return _single_conv(conv, what, kind)
    parts = list(conv.children())
    if list(getattr(conv, "splits", ())) != [getattr(p, "in_channels", None) for p in parts]:
        raise Unsupported(f"{what}: MixedConv2d whose splits are not its parts' input channels")
    if kind == "dense":
        raise Unsupported(f"{what}: mixed dense conv {type(conv).__name__}")
    geometry = [_single_conv(p, f"{what} part {i}", kind) for i, p in enumerate(parts)]
    strides = {s for s, _ in geometry}
    if len(strides) != 1:
        raise Unsupported(f"{what}: parts with different strides {sorted(strides)}")
    stride = strides.pop()
    if kind == "pointwise":
        return stride, 0
    ks = [p.kernel_size[0] for p in parts]
    # Per part: "symmetric" ((k-1)//2, centred) or "same" (TF SAME); at stride 1 both are the same for odd k.
    rules = {"symmetric" if (p == (k - 1) // 2 or (p == "same" and stride == 1 and k % 2)) else
             "same" if p == "same" else None for (_, p), k in zip(geometry, ks)}
    if rules == {"symmetric"}:
        return stride, (max(ks) - 1) // 2
    if rules == {"same"} and min(ks) >= stride:  # TF SAME pads centre a kernel >= stride like the largest
        return stride, "same"
    raise Unsupported(f"{what}: parts padded differently ({[p for _, p in geometry]}, kernels {ks})")


def same_activation(expand_act: str, dw_act: str) -> str:
    if expand_act != dw_act:
        raise Unsupported(f"expand activation {expand_act} differs from depthwise activation {dw_act}")
    return dw_act


def se_fields(se: nn.Module, reduce: nn.Module, expand: nn.Module, act, gate, prefix: str, allowed_acts,
              allowed_gates) -> dict:
    """BlockSpec fields of a squeeze-excitation whose 1x1 convs are `reduce` and `expand` (children
    of `se`, itself at `prefix` below the block)."""
    read_conv(reduce, "SE reduce", "pointwise")
    read_conv(expand, "SE expand", "pointwise")
    return dict(se_reduce=f"{prefix}{_name_of(se, reduce)}", se_expand=f"{prefix}{_name_of(se, expand)}",
                se_activation=activation(act, "SE", allowed_acts), se_gate=activation(gate, "SE gate", allowed_gates))


def _name_of(parent: nn.Module, child: nn.Module) -> str:
    return next(n for n, c in parent.named_children() if c is child)


def wrap(block: nn.Module, spec: BlockSpec, backend: str) -> InvertedResidual:
    if block._parameters or block._buffers:
        raise Unsupported("the block holds tensors of its own (outside its child modules)")
    return InvertedResidual(block, spec, backend)


def adopt(new: nn.Sequential, src: nn.Sequential) -> nn.Module:
    """Give `new` the children of `src` under their names: the same tensors and state_dict keys
    (a conv bias included), and train mode runs exactly the source's modules."""
    for name in list(new._modules):
        del new._modules[name]
    for name, child in src.named_children():
        new.add_module(name, child)
    return new.train(src.training)


def native(new: nn.Module, block: nn.Module):
    """`new` holding the block's own tensors (load_state_dict with assign), or None when their
    state_dicts differ (keys or shapes: a conv bias, a BN without affine, other widths)."""
    src = block.state_dict(keep_vars=True)
    if {k: v.shape for k, v in new.state_dict().items()} != {k: v.shape for k, v in src.items()}:
        return None
    new.load_state_dict(src, strict=True, assign=True)
    return new.train(block.training)
