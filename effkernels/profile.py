"""Parameters, FLOPs and activation bytes of a model at a resolution, and the seed's
constrained problem (the largest phi that fits given FLOPs and memory targets).

Conventions:
- FLOPs = 2 x multiply-accumulates of every Conv2d and Linear (what torch.utils.flop_counter
  and the paper's "FLOPS" count); elementwise ops (BN, activations, SE scale) are not counted.
- activation bytes = bytes of every leaf module's output in one eager forward: what eager
  PyTorch writes to memory and what training keeps for the backward pass.
The forward runs on a copy of the model on the "meta" device: shapes only, no compute, so
B7 at 600 px costs milliseconds.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn


@dataclass(frozen=True)
class Profile:
    params: int
    flops: int
    activation_bytes: int
    param_bytes: int

    @property
    def memory_bytes(self) -> int:
        """Parameters plus activations: the seed's Memory(N) for one batch."""
        return self.param_bytes + self.activation_bytes


def _conv_linear_macs(module: nn.Module, out: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


def profile(model: nn.Module, resolution: int, batch: int = 1, dtype: torch.dtype = torch.float32) -> Profile:
    """Count params, FLOPs (2 x MACs) and activation bytes of `model` on a batch x 3 x res x res input.

    The count runs the model's eager (train-mode) math on a meta copy, so fused layers are
    counted by their unfused convolutions; the model itself is not touched.
    """
    if not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution: expected a positive int, got {resolution!r}")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch: expected a positive int, got {batch!r}")
    params = sum(p.numel() for p in model.parameters())
    elem = torch.empty((), dtype=dtype).element_size()
    meta = copy.deepcopy(model).to(device="meta", dtype=dtype).train()
    totals = {"macs": 0, "act": 0}

    def hook(module, inputs, out):
        if isinstance(out, torch.Tensor):
            totals["macs"] += _conv_linear_macs(module, out)
            totals["act"] += out.numel() * out.element_size()

    handles = [m.register_forward_hook(hook) for m in meta.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            meta(torch.empty(batch, 3, resolution, resolution, device="meta", dtype=dtype))
    finally:
        for h in handles:
            h.remove()
    return Profile(params, 2 * totals["macs"], totals["act"], params * elem)


@dataclass(frozen=True)
class ScaledChoice:
    phi: float
    resolution: int
    profile: Profile


def largest_phi(target_flops: float, target_memory: float, batch: int = 1, rule: str = "compound",
                step: float = 0.25, max_phi: float = 12.0, dtype: torch.dtype = torch.float32,
                **coefficients) -> Optional[ScaledChoice]:
    """The seed's problem: the largest phi (on a grid of `step`) whose EfficientNet has
    FLOPs <= target_flops and memory_bytes <= target_memory at its own resolution.

    FLOPs and memory grow monotonically with phi, so the search stops at the first miss.
    Returns None when even phi = 0 does not fit.
    """
    from .models import efficientnet
    from .scaling import variant

    if not target_flops > 0:
        raise ValueError(f"target_flops: expected a positive number, got {target_flops!r}")
    if not target_memory > 0:
        raise ValueError(f"target_memory: expected a positive number of bytes, got {target_memory!r}")
    if not step > 0:
        raise ValueError(f"step: expected a positive number, got {step!r}")
    best = None
    phi = 0.0
    while phi <= max_phi + 1e-9:
        v = variant(phi, rule, **coefficients)
        with torch.device("meta"):
            model = efficientnet(phi=phi, rule=rule, **coefficients)
        p = profile(model, v.resolution, batch, dtype)
        if p.flops > target_flops or p.memory_bytes > target_memory:
            break
        best = ScaledChoice(phi, v.resolution, p)
        phi = round(phi + step, 6)
    return best
