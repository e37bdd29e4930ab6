"""BlockSequence: an nn.Sequential that runs its MBConv blocks' cpu op back to back, with no module calls between.

At batch 1 on the CPU the Python around a block's op (module call, fold check, plan lookup, dispatch) took
~75 us of a B0 block in a forward against ~11 us for the same code run alone: each block's kernel leaves the
interpreter's code and data cold, and at 2 threads that time is serial. Replaying the recorded op calls took B0
batch 1 (2 threads) from 7.49 to 6.99 ms, B4 at 380 px from 65.1 to 58.5 ms (benchmarks/results/
2026-12-02-cpu-xeon-sequence).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules import module as _module

from .. import _dispatch
from ._base import MBConvFolding


def _hooked(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks)


def _global_hooks() -> bool:
    return bool(_module._global_forward_hooks or _module._global_forward_pre_hooks)


class _Run:
    """The recorded forward of a BlockSequence for one input key: `steps` are (module, fold, fold cache key, op
    arguments after x), fold None for a module called as such; `containers` the nested sequences flattened into it
    with the children each had."""

    __slots__ = ("steps", "containers")

    def __init__(self, steps: list, containers: list):
        self.steps, self.containers = steps, containers

    def valid(self) -> bool:
        """Still what the modules would run: the containers hold the same children, no hook was added, and each block
        is in eval mode on the same backend with the same fold (its _fresh check: parameters not edited or replaced).
        """
        for c, children in self.containers:
            if _hooked(c) or tuple(c._modules.values()) != children:
                return False
        for m, fold, fkey, _ in self.steps:
            if fold is not None and (m.training or _hooked(m) or m.backend != fkey[2] or not m._fresh()
                                     or m._fold_cache.get(fkey) is not fold):
                return False
        return True


class BlockSequence(nn.Sequential):
    """nn.Sequential (same children, keys and train-mode forward) whose eval forward, where its blocks run the cpu
    backend's packed block op, calls that op for each block directly with the arguments recorded on the first call
    for the input's shape, dtype, device and thread count. Nested plain nn.Sequential / BlockSequence children are
    flattened into one run; any other child (a stem, a head) is called as a module.

    Each call first checks that the recording still holds (_Run.valid: fold freshness, eval mode, backend, hooks,
    the containers' children) and records again when it does not. It runs the plain Sequential forward instead when
    grad mode is on (the fused ops refuse inputs that need grad; that path raises the error), under torch.compile
    or autocast, in train mode, or while the sequence or any global module hook is set: hooks and every layer's
    own forward behave exactly as in nn.Sequential. Outputs are those of nn.Sequential.forward, bit for bit.
    convert() and effkernels.models use it for every Sequential that holds an MBConv block.
    """

    def __init__(self, *args):
        super().__init__(*args)
        self._runs: dict = {}

    def train(self, mode: bool = True):
        self._runs.clear()
        return super().train(mode)

    def _flat(self, containers: list) -> list:
        """The leaves of the run: children, with nested sequences without hooks opened (appended to containers)."""
        containers.append((self, tuple(self._modules.values())))
        leaves = []
        for child in self._modules.values():
            if type(child) in (nn.Sequential, BlockSequence) and not _hooked(child):
                leaves += BlockSequence._flat(child, containers)
            elif child is not None:
                leaves.append(child)
        return leaves

    def _record(self, x):
        """Runs the forward module by module, recording each block's op call; returns (output, _Run)."""
        containers, steps = [], []
        for m in self._flat(containers):
            call = m.packed_call(x) if isinstance(m, MBConvFolding) and not _hooked(m) else None
            if call is None:
                steps.append((m, None, None, ()))
                x = m(x)
                continue
            fold, args = call
            steps.append((m, fold, (x.device, x.dtype, m.backend), args))
            x = _dispatch.native("mbconv_packed")(x, *args)
        return x, _Run(steps, containers)

    def forward(self, x):
        if (self.training or torch.is_grad_enabled() or torch.compiler.is_compiling() or _hooked(self)
                or _global_hooks() or not isinstance(x, torch.Tensor) or torch.is_autocast_enabled(x.device.type)):
            return super().forward(x)
        key = (x.shape, x.dtype, x.device, torch.get_num_threads())
        run = self._runs.get(key)
        if run is None or not run.valid():
            x, self._runs[key] = self._record(x)
            return x
        block = _dispatch.native("mbconv_packed")
        for m, fold, _, args in run.steps:
            x = m(x) if fold is None else block(x, *args)
        return x
