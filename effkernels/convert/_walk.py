"""The tree walk: find each recognised block's handler, build and check its replacement, swap it in;
then list every depthwise convolution torch still runs."""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Callable, Optional

import torch
from torch import nn

from ..backends import resolve
from ..nn._base import FoldedModule, MBConvFolding, check_backend
from ..nn.sequence import BlockSequence
from ._registry import Context, Unsupported, find_handler, qualname
from ._report import Converted, ConvertReport, Left, TorchDepthwise

# Relative L2 error between a replacement and its source (in float32) above which the replacement is
# not used: a misread block is off by O(1), fold rounding by ~1e-7.
_VERIFY_TOL = 1e-4


def _randomize_bn_(model: nn.Module, g: torch.Generator) -> None:
    """Non-trivial BN statistics and affine parameters (fresh ones fold to the identity and would let a
    BN read in the wrong place pass)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            for t, lo, hi in ((m.running_mean, -0.5, 0.5), (m.running_var, 0.5, 2.0), (m.weight, 0.5, 1.5),
                              (m.bias, -0.3, 0.3)):
                if t is not None:
                    t.copy_(torch.rand(t.shape, generator=g, device=t.device, dtype=t.dtype) * (hi - lo) + lo)


def _verify(src: nn.Module, new: nn.Module) -> Optional[str]:
    """None when `new` computes what `src` computes in eval mode, else why not. Run on deep copies of
    both (the model's tensors, modes and RNG stay as they are) in float32, with random BN statistics, on
    a random 2 x C x 11 x 10 input, the replacement on the eager backend (the backends are tested
    against it). Not run on the meta device (nothing to compute)."""
    t = next((t for t in (*src.parameters(), *src.buffers()) if t.is_floating_point()), None)
    c_in = next((m.in_channels for m in src.modules() if isinstance(getattr(m, "in_channels", None), int)), None)
    if t is None or c_in is None or t.device.type == "meta":
        return None
    with torch.inference_mode(False), torch.no_grad():
        src, new = copy.deepcopy((src, new))  # the copies share their tensors, as the originals do
        g = torch.Generator(t.device).manual_seed(0)
        _randomize_bn_(src, g)  # in place, before .to() gives each module its own cast buffers
        src.float().eval()
        new.float().eval()
        for m in new.modules():
            if isinstance(m, FoldedModule):
                m.backend = "eager"
        x = torch.randn(2, c_in, 11, 10, generator=g, device=t.device, dtype=torch.float32)
        ref, out = src(x.clone()), new(x.clone())
        err = ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item() if out.shape == ref.shape else float("inf")
    if not err <= _VERIFY_TOL:  # also NaN
        return (f"its fused replacement {qualname(new)} computes something else (relative error {err:.1e} on "
                "a random input): the block's forward differs from the layout it was read as")
    return None


def _is_depthwise(m: nn.Module) -> bool:
    groups = getattr(m, "groups", None)
    return (isinstance(getattr(m, "weight", None), torch.Tensor) and isinstance(groups, int) and groups > 1
            and groups == getattr(m, "in_channels", None))


def _torch_depthwise(model: nn.Module, left: list) -> list:
    """Every depthwise conv outside the fused layers (those run the fused ops in eval mode), with the
    reason of the innermost left block around it."""
    reasons = {e.fqn: e.reason for e in left}
    found = []

    def walk(m, fqn, reason, parent):
        if isinstance(m, FoldedModule):
            return
        reason = reasons.get(fqn, reason)
        if _is_depthwise(m):
            found.append(TorchDepthwise(fqn, qualname(m), reason or (
                f"not part of a block effkernels recognises (inside {qualname(parent)})" if parent is not None
                else "the model itself is a depthwise conv")))
        for name, child in m.named_children():
            walk(child, f"{fqn}.{name}" if fqn else name, reason, m)

    walk(model, "", None, None)
    return found


def _holds_block(seq: nn.Sequential) -> bool:
    return any(isinstance(c, MBConvFolding) or (type(c) is BlockSequence and _holds_block(c)) for c in seq)


def _use_block_sequences(m: nn.Module) -> None:
    """Every plain nn.Sequential below m (outside the fused layers) that holds an MBConv block, directly or through
    such sequences, becomes a BlockSequence with the same children (keys, mode); one with hooks stays as it is."""
    for name, child in list(m.named_children()):
        if isinstance(child, FoldedModule):
            continue
        _use_block_sequences(child)
        if type(child) is nn.Sequential and not (child._forward_hooks or child._forward_pre_hooks) and _holds_block(child):
            seq = BlockSequence(OrderedDict(child._modules))
            seq.training = child.training  # the flag only: train() would set every child's
            setattr(m, name, seq)


def _check_devices(model: nn.Module, backend: str) -> None:
    for dev in {t.device for t in (*model.parameters(), *model.buffers())}:
        resolve(backend, dev)  # raises ValueError naming the backend and why it cannot serve dev


def convert(model: nn.Module, backend: str = "auto", inplace: bool = False,
            filter_fn: Optional[Callable[[nn.Module, str], bool]] = None) -> nn.Module:
    """Replace the recognised blocks of `model` (and the conv + BN + activation layers outside them:
    stems, heads) with fused layers; return the converted model.

    backend: "auto" | "triton" | "cuda" | "cpu" | "eager", used by every fused layer. Checked now
    against the devices the model's tensors are on (ValueError when it is not available here or
    cannot serve them). inplace: modify `model` itself instead of a deep copy (made outside
    torch.inference_mode, so its tensors have version counters and the fold cache sees edits).
    filter_fn(module, fqn): convert a recognised block only when it returns True (blocks it rejects
    are reported).

    Never raises for the model's contents: a block the fused ops do not cover, one that cannot be
    read, or one whose replacement does not compute what it computes (each replacement is checked
    on a random input) is left as it was and reported with the reason. The returned model carries a
    ConvertReport as `model.effkernels_report`: converted and left blocks, and every depthwise
    convolution torch still runs. Weights are shared with the source blocks' tensors, state_dict
    keys are unchanged, and each module's train/eval mode is kept (train mode runs eager math).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    check_backend(backend)
    if not isinstance(inplace, bool):
        raise TypeError(f"inplace: expected a bool, got {type(inplace).__name__}")
    if filter_fn is not None and not callable(filter_fn):
        raise TypeError(f"filter_fn: expected a callable (module, fqn) -> bool or None, got {type(filter_fn).__name__}")
    _check_devices(model, backend)
    if not inplace:
        with torch.inference_mode(False):
            model = copy.deepcopy(model)
    report = ConvertReport(backend)

    def visit(m: nn.Module, fqn: str) -> Optional[nn.Module]:
        """The replacement of m, or None to keep m (after converting inside it)."""
        if isinstance(m, FoldedModule):  # already fused (converting twice changes nothing)
            return None
        found = find_handler(m)
        if found is None:
            for name, child in list(m.named_children()):
                new = visit(child, f"{fqn}.{name}" if fqn else name)
                if new is not None:
                    setattr(m, name, new)
            return None
        handler, by_layout = found
        if filter_fn is not None and not filter_fn(m, fqn):
            report.left.append(Left(fqn, qualname(m), "rejected by filter_fn"))
            return None
        try:
            new = handler.convert(m, Context(backend, by_layout))
            why = _verify(m, new)
        except Unsupported as e:
            why = str(e)
        except Exception as e:  # a block that breaks a reader: leave it, never break the user's model
            why = f"could not be read as {handler.name}: {type(e).__name__}: {e}"
        if why is not None:
            report.left.append(Left(fqn, qualname(m), why))
            return None
        recognised = f"by layout ({handler.name})" if by_layout else "by class"
        report.converted.append(Converted(fqn, qualname(m), qualname(new), recognised))
        report.layers[fqn] = new
        return new

    with torch.no_grad():
        model = visit(model, "") or model
        _use_block_sequences(model)
    report.depthwise = _torch_depthwise(model, report.left)
    model.effkernels_report = report
    return model
