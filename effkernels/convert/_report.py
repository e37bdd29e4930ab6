"""What convert() did, set as `effkernels_report` on the model it returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Converted(NamedTuple):
    fqn: str
    source: str        # the source module's class, module-qualified
    replacement: str   # the fused layer's class
    recognised: str    # "by class", or "by layout (<library> <block>)"


class Left(NamedTuple):
    fqn: str
    source: str
    reason: str


class TorchDepthwise(NamedTuple):
    """A depthwise convolution that torch still runs after conversion (in eval mode)."""
    fqn: str
    source: str
    reason: str


@dataclass
class ConvertReport:
    """converted: the blocks replaced by fused layers; left: the recognised blocks left as they were,
    with the reason; depthwise: every depthwise convolution torch still runs, with the reason
    (one inside a left block has that block's reason). Once the model has run on the cpu backend, each
    MBConv-kind block also lists the path its block kernel took per input shape and thread count
    ("cpu paths: 1x16x112x112@2t: fused", MBConvFolding)."""
    backend: str
    converted: list = field(default_factory=list)
    left: list = field(default_factory=list)
    depthwise: list = field(default_factory=list)
    layers: dict = field(default_factory=dict, repr=False, compare=False)  # fqn -> replacement, for cpu_paths

    def __str__(self):
        lines = [f"effkernels.convert (backend={self.backend!r}): {len(self.converted)} converted, "
                 f"{len(self.left)} left, {len(self.depthwise)} depthwise convolutions still run by torch"]
        lines += [f"  converted {e.fqn or '<root>'}: {e.source} -> {e.replacement}"
                  + ("" if e.recognised == "by class" else f" ({e.recognised})")
                  + self._cpu_paths(e.fqn) for e in self.converted]
        lines += [f"  left      {e.fqn or '<root>'}: {e.source}: {e.reason}" for e in self.left]
        lines += [f"  torch dw  {e.fqn or '<root>'}: {e.source}: {e.reason}" for e in self.depthwise]
        return "\n".join(lines)

    def _cpu_paths(self, fqn: str) -> str:
        layer = self.layers.get(fqn)
        return f" [cpu paths: {layer.paths_repr()}]" if getattr(layer, "cpu_paths", None) else ""
