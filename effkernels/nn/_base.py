"""What every fused layer shares: backend checks, activation modules, the folded-weight cache."""
from __future__ import annotations

import warnings

import torch
from torch import nn

from .._common import tap_major
from ..backends import BACKENDS, resolve
from ..ops.mbconv import block_plan, cpu_path, mbconv, pack_cpu, packed_args, run_packed

_ACT_MODULES = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "silu": lambda: nn.SiLU(inplace=True),
    "hardswish": lambda: nn.Hardswish(),
    "sigmoid": lambda: nn.Sigmoid(),
    "hardsigmoid": lambda: nn.Hardsigmoid(),
}


def check_backend(backend: str) -> str:
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(f"backend: expected 'auto' or one of {list(BACKENDS)}, got {backend!r}")
    return backend


def activation_module(name: str, argname: str, allowed) -> nn.Module:
    if name not in allowed:
        raise ValueError(f"{argname}: expected one of {list(allowed)}, got {name!r}")
    return _ACT_MODULES[name]()


def check_padding(padding: str) -> str:
    if padding not in ("symmetric", "same"):
        raise ValueError(f"padding: expected 'symmetric' ((k-1)//2 on every side) or 'same' (TF SAME), got {padding!r}")
    return padding


class FoldedModule(nn.Module):
    """A layer whose eval forward calls a fused op on weights prepared once by `_fold()`.

    `_fold()` returns the op's weights (BN folded in float32, 1x1 weights as matrices). They are cast
    to the input's (device, dtype), laid out for the backend's kernels (`_prepare`) and cached
    per (device, dtype, backend). The cache is keyed on the data_ptr and
    version counter of every parameter and buffer of the module, so load_state_dict, .to(), .half()
    and in-place edits (under torch.no_grad() or torch.inference_mode alike) all trigger a refold.

    Inference tensors (made under torch.inference_mode: a layer built or deep-copied there) have no
    version counter, so an in-place edit of one cannot be seen: a layer holding any folds on every
    call instead (never stale, slower) and warns once. effkernels.convert copies a model outside
    inference mode, so converted models fold once. Edits through `.data` bypass version counters
    too: call .eval() (which drops the cache) after such edits.

    Under torch.compile the fold is traced into the graph instead (no graph break, fullgraph=True
    works, weight edits are always seen): Inductor computes it with a few small fused kernels per
    call, or once with torch._inductor.config.freezing = True.
    """

    def _init_folding(self, backend: str) -> None:
        """Call from the subclass __init__ after nn.Module.__init__."""
        self.backend = check_backend(backend)
        self._fold_cache: dict = {}
        self._fold_stamp = None

    def _fold(self) -> tuple:
        raise NotImplementedError

    def forward_eager(self, x, *args, **kwargs):
        """Train mode: the exact eager math of the unfolded submodules."""
        raise NotImplementedError

    def forward_fused(self, x, folded: tuple, *args, **kwargs):
        """Eval mode: the fused op on `folded` (what _fold returned, in x's device and dtype)."""
        raise NotImplementedError

    def forward(self, x, *args, **kwargs):
        if self.training:
            return self.forward_eager(x, *args, **kwargs)
        dev = x.device.type
        if not torch.is_autocast_enabled(dev):
            return self.forward_fused(x, self.folded(x), *args, **kwargs)
        # Under autocast run in the autocast dtype (what the eager convs produce), with autocast off
        # inside: the custom ops are not autocast-aware and take weights in x's dtype.
        if x.is_floating_point():
            x = x.to(torch.get_autocast_dtype(dev))
        with torch.autocast(dev, enabled=False):
            return self.forward_fused(x, self.folded(x), *args, **kwargs)

    def _stamp(self):
        """What the fold was made from: (dict, key, value, version, data_ptr) for every parameter, buffer and
        submodule entry of the module tree (version and data_ptr None for a module or None), or None when a tensor
        is an inference tensor (no version). Made once per fold; `_fresh` re-checks it on each call."""
        stamp, todo = [], [self]
        while todo:
            m = todo.pop()
            for d in (m._parameters, m._buffers):
                for k, t in d.items():
                    if t is None:
                        stamp.append((d, k, None, None, None))
                        continue
                    try:
                        stamp.append((d, k, t, t._version, t.data_ptr()))
                    except RuntimeError:  # an inference tensor: "Inference tensors do not track version counter"
                        return None
            for k, c in m._modules.items():
                stamp.append((m._modules, k, c, None, None))
                if c is not None:
                    todo.append(c)
        return stamp

    def _fresh(self) -> bool:
        """True while every entry of the fold's stamp holds the same object, version and storage (a replaced or
        removed parameter, buffer or submodule, .to(), .half() and in-place edits all fail it): per B0 block and
        call ~13 us, where re-walking the tree to compare stamps took ~22-40 us."""
        if self._fold_stamp is None:
            return False
        for d, k, t, version, ptr in self._fold_stamp:
            cur = d.get(k, d)  # d: a sentinel no entry can hold
            if cur is not t or (version is not None and (cur._version != version or cur.data_ptr() != ptr)):
                return False
        return True

    def _depthwise_index(self):
        """Where `_fold()`'s tuple holds a depthwise [C, 1, k, k] weight, or None (subclasses that have one)."""
        return None

    def _prepare(self, folded: tuple, backend: str) -> tuple:
        """The fold laid out for the resolved backend's kernels, made here once per fold: on "triton", "cuda"
        and "cpu" the depthwise weight tap-major ([k, k, C] storage, same shape: their kernels load each tap's
        channels as vectors; the cpu block reads an fp32 one in place instead of repacking it per call);
        layers whose cpu kernels take packed weights extend this."""
        i = self._depthwise_index()
        if i is None or backend not in ("triton", "cuda", "cpu"):
            return folded
        return folded[:i] + (tap_major(folded[i]),) + folded[i + 1:]

    def _fold_for(self, x: torch.Tensor) -> tuple:
        folded = tuple(None if t is None else t.to(device=x.device, dtype=x.dtype).contiguous() for t in self._fold())
        return self._prepare(folded, resolve(self.backend, x.device))

    def folded(self, x: torch.Tensor) -> tuple:
        if torch.compiler.is_compiling():
            return self._fold_for(x)
        if not self._fresh():
            stamp = self._stamp()
            if stamp is None:
                warnings.warn(f"effkernels.nn.{type(self).__name__} holds inference tensors (created under "
                              "torch.inference_mode), whose in-place edits cannot be detected: it folds BatchNorm on "
                              "every call. Create (or copy) the model outside inference_mode to fold once.", stacklevel=3)
                with torch.no_grad():
                    return self._fold_for(x)
            self._fold_cache.clear()
            self._fold_stamp = stamp
        key = (x.device, x.dtype, self.backend)  # the backend lays the fold out (_prepare)
        out = self._fold_cache.get(key)
        if out is None:
            with torch.no_grad():
                out = self._fold_cache[key] = self._fold_for(x)
        return out

    def train(self, mode: bool = True):
        self._fold_cache.clear()
        self._fold_stamp = None
        return super().train(mode)


class MBConvFolding:
    """For the layers that run ops.mbconv (MBConv, and InvertedResidual wrapping an MBConv): on the cpu backend
    the fold also carries the two 1x1 weights packed once for the block kernels (ops.mbconv.pack_cpu), and the
    layer keeps the path ("fused" / "unfused") the block took per (input shape, thread count) in `cpu_paths`,
    shown in its repr and derived from `_cpu_plans`: mbconv's checks and that path, once per input shape
    (ops.mbconv.block_plan).
    _prepare appends that packed pair (None off the cpu backend) to the 10-tuple
    (ew, eb, dw, db, w1, b1, w2, b2, pw, pb)."""

    def _prepare(self, folded: tuple, backend: str) -> tuple:
        return (*super()._prepare(folded, backend), pack_cpu(folded[0], folded[8]) if backend == "cpu" else None)

    def _block_args(self):
        """(stride, padding, residual, activation, se_activation, se_gate) of the block, or None for a block that does
        not run ops.mbconv (a Fused-MBConv)."""
        raise NotImplementedError

    def _packed_args(self, x, folded):
        """The arguments after x of the cpu block op on the packed weights (ops.mbconv.packed_args), or None where the
        layer does not run it (off the cpu backend, under torch.compile). mbconv's checks and the path run once per
        input shape, dtype, device and thread count (the fold's weights take x's dtype and device)."""
        ew, eb, dw, db, w1, b1, w2, b2, pw, pb, packed = folded
        if packed is None or torch.compiler.is_compiling():
            return None
        stride, padding, residual, activation, se_activation, se_gate = self._block_args()
        key = (*x.shape, x.dtype, x.device, torch.get_num_threads())
        plan = self._cpu_plans.get(key)
        if plan is None:
            path = cpu_path(x.shape, dw.shape[0], dw.shape[-1], stride, ew is not None)
            plan = self._cpu_plans[key] = block_plan(x, ew, eb, dw, db, stride, padding, w1, b1, w2, b2, pw, pb,
                                                     residual, activation, se_activation, se_gate, path)
        return packed_args(packed, eb, dw, db, stride, w1, b1, w2, b2, pb, residual, plan)

    def _run_mbconv(self, x, folded):
        args = self._packed_args(x, folded)
        if args is not None:
            return run_packed(x, args)
        stride, padding, residual, activation, se_activation, se_gate = self._block_args()
        ew, eb, dw, db, w1, b1, w2, b2, pw, pb, packed = folded
        return mbconv(x, ew, eb, dw, db, stride, padding, w1, b1, w2, b2, pw, pb, residual, activation=activation,
                      se_activation=se_activation, se_gate=se_gate, backend=self.backend, packed=packed)

    def packed_call(self, x):
        """(fold, arguments after x) when this layer's eval forward on x is exactly the cpu block op on packed weights
        (BlockSequence runs that op itself), else None. Folds (or re-folds) as forward would."""
        if self.training or self._block_args() is None or torch.is_autocast_enabled(x.device.type):
            return None
        folded = self.folded(x)
        args = self._packed_args(x, folded)
        return None if args is None else (folded, args)

    @property
    def cpu_paths(self) -> dict:
        """The path each input shape took: (N, C, H, W, threads) -> "fused" / "unfused" (from the plans)."""
        return {(*k[:4], k[-1]): plan[-1] for k, plan in self._cpu_plans.items()}

    def paths_repr(self) -> str:
        """cpu_paths as "N x C x H x W @ T threads: path" entries ("" when the cpu block has not run)."""
        return ", ".join(f"{'x'.join(map(str, k[:4]))}@{k[4]}t: {v}" for k, v in self.cpu_paths.items())


def stochastic_depth(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Row-mode stochastic depth (torchvision.ops.stochastic_depth(x, p, "row", training))."""
    if not training or p == 0.0:
        return x
    survival = 1.0 - p
    noise = torch.empty([x.shape[0]] + [1] * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(survival)
    if survival > 0.0:
        noise.div_(survival)
    return x * noise


class StochasticDepth(nn.Module):
    """Drops whole samples of a residual branch in training ("row" mode); identity in eval."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"stochastic_depth_prob: expected a probability in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return stochastic_depth(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, mode=row"
