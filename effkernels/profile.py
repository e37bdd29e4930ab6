"""Parameters, FLOPs and activation bytes of a model at a resolution; the time of a call on a
device; and the seed's constrained problem (the largest phi that fits FLOPs, memory and latency
targets).

Conventions:
- FLOPs = 2 x multiply-accumulates of every Conv2d and Linear (what torch.utils.flop_counter
  and the paper's "FLOPS" count); elementwise ops (BN, activations, SE scale) are not counted.
- activation bytes = bytes of every leaf module's output in one eager forward: what eager
  PyTorch writes to memory and what training keeps for the backward pass; largest activation
  bytes = the largest of those outputs (inference keeps a few tensors of that size alive).
The forward runs on a copy of the model on the "meta" device: shapes only, no compute, so
B7 at 600 px costs milliseconds.
- time of a call: on CUDA the device time of CUDA-graph replays (graph_time: no host time in
  it), on the CPU the median wall time of warm calls (wall_time).
"""
from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import torch
from torch import nn


@dataclass(frozen=True)
class Profile:
    params: int
    flops: int
    activation_bytes: int
    param_bytes: int
    largest_activation_bytes: int

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
    counted by their unfused convolutions; the model itself is not touched. Batch 1 is counted as
    half of batch 2 (every count is per image): train-mode BatchNorm rejects a batch of one 1x1 map.
    """
    if not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution: expected a positive int, got {resolution!r}")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch: expected a positive int, got {batch!r}")
    params = sum(p.numel() for p in model.parameters())
    elem = torch.empty((), dtype=dtype).element_size()
    meta = copy.deepcopy(model).to(device="meta", dtype=dtype).train()
    totals = {"macs": 0, "act": 0, "largest": 0}

    def hook(module, inputs, out):
        if isinstance(out, torch.Tensor):
            totals["macs"] += _conv_linear_macs(module, out)
            nbytes = out.numel() * out.element_size()
            totals["act"] += nbytes
            totals["largest"] = max(totals["largest"], nbytes)

    handles = [m.register_forward_hook(hook) for m in meta.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            meta(torch.empty(max(batch, 2), 3, resolution, resolution, device="meta", dtype=dtype))
    finally:
        for h in handles:
            h.remove()
    per = {k: v // max(batch, 2) * batch for k, v in totals.items()}
    return Profile(params, 2 * per["macs"], per["act"], params * elem, per["largest"])


# ---------------------------------------------------------------------------------------------
# The time of a call

GRAPH_S = (2e-3, 20e-3)  # a captured graph lasts at least / at most this long (by the caller's estimate)
GRAPH_MAX_CALLS = 2000


def capture_graph(body: Callable[[], object], warmup: Optional[Callable[[], object]] = None):
    """(graph, body's result): body() captured in a new torch.cuda.CUDAGraph on a side stream, after
    warmup() ran on that stream (lazy initialisation, per-stream cuBLAS workspaces, autotuning and
    JIT must happen outside a capture). Raises the capture's first error: when body() fails, the
    capture is still ended, and its error is the one raised."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(stream):
        if warmup is not None:
            warmup()
        stream.synchronize()
        error = result = None
        graph.capture_begin()
        try:
            result = body()
        except Exception as e:  # noqa: BLE001 (the capture is ended below; this error says why it failed)
            error = e
        try:
            graph.capture_end()
        except Exception as e:  # noqa: BLE001
            error = error or e
        if error is not None:
            raise error
    torch.cuda.current_stream().wait_stream(stream)
    return graph, result


def graph_calls(n_inputs: int, call_s: float) -> int:
    """Calls in graph_time's graph: each input once, more while that lasts under GRAPH_S[0] (at most
    GRAPH_MAX_CALLS), fewer while it lasts over GRAPH_S[1] (at least one), by the estimate call_s."""
    call_s = max(call_s, 1e-7)
    n = n_inputs if n_inputs * call_s <= GRAPH_S[1] else max(1, int(GRAPH_S[1] / call_s))
    return max(n, min(GRAPH_MAX_CALLS, math.ceil(GRAPH_S[0] / call_s)))


def graph_time(fn: Callable, inputs: Sequence[torch.Tensor], call_s: float, seconds: float = 0.2,
               warmup: int = 3) -> float:
    """Device seconds per call of `fn` on the GPU, with no host time in it.

    The calls fn(inputs[0]), fn(inputs[1]), ... (cycled) are captured in one CUDA graph on a side
    stream, after `warmup` calls on that stream (lazy initialisation, cuBLAS workspaces, autotuning
    and JIT happen outside the capture), and the graph is replayed between CUDA events: the median
    over replays of replay time / calls per graph. `call_s`, an estimate of one call (e.g. its
    launch time: an upper bound), sizes the graph: each input once, more calls while that lasts
    under GRAPH_S[0], fewer inputs while it lasts over GRAPH_S[1]. Replays: about `seconds` of
    them, 5 to 200. Outputs are dropped, so the graph's memory is about one call's.
    Raises the capture's first error (a host sync, a CPU tensor, an allocation the capture
    forbids): the caller reports it.
    """
    if not inputs:
        raise ValueError("inputs: expected at least one input")
    n = graph_calls(len(inputs), call_s)

    def warm():
        for i in range(warmup):
            fn(inputs[i % len(inputs)])

    def body():  # outputs are dropped: later calls reuse their memory
        for i in range(n):
            fn(inputs[i % len(inputs)])

    graph, _ = capture_graph(body, warm)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def replay() -> float:
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    one = replay()  # warm
    reps = max(5, min(200, int(seconds / max(one, 1e-6))))
    times = [replay() / n for _ in range(reps)]
    del graph
    return statistics.median(times)


def wall_time(fn: Callable, inputs: Sequence, seconds: float = 0.2, warmup: int = 2,
              sync: Optional[Callable[[], object]] = None) -> float:
    """Median wall seconds of warm calls fn(inputs[i]) (cycled): `warmup` calls, then calls for about
    `seconds`, at least 5. sync (e.g. torch.cuda.synchronize) runs after each call, inside its time."""
    if not inputs:
        raise ValueError("inputs: expected at least one input")
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    if sync:
        sync()
    times, t_end, i = [], time.perf_counter() + seconds, 0
    while len(times) < 5 or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn(inputs[i % len(inputs)])
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
        i += 1
    return statistics.median(times)


def call_time(fn: Callable, inputs: Sequence[torch.Tensor], seconds: float = 0.2) -> float:
    """Warm seconds per call on the inputs' device: CUDA: device time (graph_time, sized by a wall-time
    estimate); CPU: wall time (wall_time)."""
    if inputs[0].device.type == "cuda":
        estimate = wall_time(fn, inputs, seconds=0.0, sync=torch.cuda.synchronize)
        return graph_time(fn, inputs, estimate, seconds)
    return wall_time(fn, inputs, seconds)


# ---------------------------------------------------------------------------------------------
# The seed's constrained problem

@dataclass(frozen=True)
class ScaledChoice:
    phi: float
    resolution: int
    profile: Profile
    latency_s: Optional[float] = None  # measured seconds per batch (None: no latency target)


@dataclass(frozen=True)
class Candidate:
    """One phi of the search: what it costs and, when it misses, which target it misses."""
    choice: ScaledChoice
    misses: str  # "" when it fits; else "flops", "memory" and/or "latency", comma separated


@torch.no_grad()
def calibrate_bn_(module: nn.Module, x: torch.Tensor) -> None:
    """Give every BatchNorm of a randomly initialised `module` non-trivial affine parameters and the
    running statistics of the batch x (two images at least: train-mode BN rejects one 1x1 map), so
    BN folding is exercised and activations stay normalised through deep models as in a trained one
    (with the default statistics they shrink ~100x per stage of EfficientNet: B0's logits ~1e-14, and
    fp16 / bf16 values would underflow)."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_(0.0, 0.1)
        bn.momentum = 1.0
    module.train()
    module(x)
    module.eval()
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum


def measure_latency(phi: float, resolution: int, batch: int = 1, rule: str = "compound",
                    dtype: torch.dtype = torch.float32, device="cpu", backend: str = "auto",
                    seconds: float = 0.2, **coefficients) -> float:
    """Seconds per batch of effkernels' EfficientNet(phi) in eval mode, its MBConv blocks on `backend`
    (what convert() swaps into a torchvision model), random weights with BN calibrated (calibrate_bn_),
    channels_last, `dtype`, warm: on CUDA the device time of CUDA-graph replays, on the CPU the median wall time (call_time)."""
    from .models import efficientnet

    model = efficientnet(phi=phi, rule=rule, backend=backend, **coefficients)
    model = model.to(device=device, memory_format=torch.channels_last)
    calibrate_bn_(model, torch.randn(max(batch, 2), 3, resolution, resolution, device=device)
                  .contiguous(memory_format=torch.channels_last))
    model = model.to(dtype)
    xs = [torch.randn(batch, 3, resolution, resolution, device=device, dtype=dtype)
          .contiguous(memory_format=torch.channels_last) for _ in range(2)]
    with torch.no_grad():
        return call_time(model, xs, seconds)


def scaling_candidates(target_flops: float = math.inf, target_memory: float = math.inf, batch: int = 1,
                       rule: str = "compound", step: float = 0.25, max_phi: float = 12.0,
                       dtype: torch.dtype = torch.float32, *, latency_s: Optional[float] = None, device=None,
                       backend: str = "auto", resolution: Optional[int] = None, seconds: float = 0.2,
                       **coefficients) -> Iterator[Candidate]:
    """Each phi on the grid 0, step, 2 step ... max_phi with its cost, up to and including the first
    one that misses a target (FLOPs, memory and latency grow with phi, so the search stops there).
    The latency of a phi is measured (measure_latency on `device`, default CUDA when present, else
    the CPU) only when latency_s is given and the FLOPs and memory targets are met.
    resolution: every phi at this input size (default: each variant's own)."""
    from .models import efficientnet
    from .scaling import variant

    if not target_flops > 0:
        raise ValueError(f"target_flops: expected a positive number, got {target_flops!r}")
    if not target_memory > 0:
        raise ValueError(f"target_memory: expected a positive number of bytes, got {target_memory!r}")
    if latency_s is not None and not latency_s > 0:
        raise ValueError(f"latency_s: expected a positive number of seconds, got {latency_s!r}")
    if not step > 0:
        raise ValueError(f"step: expected a positive number, got {step!r}")
    if resolution is not None and (not isinstance(resolution, int) or resolution < 1):
        raise ValueError(f"resolution: expected a positive int or None, got {resolution!r}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    phi = 0.0
    while phi <= max_phi + 1e-9:
        res = resolution or variant(phi, rule, **coefficients).resolution
        with torch.device("meta"):
            model = efficientnet(phi=phi, rule=rule, **coefficients)
        p = profile(model, res, batch, dtype)
        misses = [name for name, over in (("flops", p.flops > target_flops),
                                          ("memory", p.memory_bytes > target_memory)) if over]
        latency = None
        if latency_s is not None and not misses:
            latency = measure_latency(phi, res, batch, rule, dtype, device, backend, seconds, **coefficients)
            if latency > latency_s:
                misses.append("latency")
        yield Candidate(ScaledChoice(phi, res, p, latency), ",".join(misses))
        if misses:
            return
        phi = round(phi + step, 6)


def largest_phi(target_flops: float, target_memory: float, batch: int = 1, rule: str = "compound",
                step: float = 0.25, max_phi: float = 12.0, dtype: torch.dtype = torch.float32, *,
                latency_s: Optional[float] = None, device=None, backend: str = "auto",
                resolution: Optional[int] = None, **coefficients) -> Optional[ScaledChoice]:
    """The seed's problem: the largest phi (on a grid of `step`) whose EfficientNet has
    FLOPs <= target_flops and memory_bytes <= target_memory at its own resolution (or `resolution`)
    and, when latency_s is given, runs a batch of `batch` within latency_s seconds on `device`
    (default CUDA when present, else the CPU) with its MBConv blocks on `backend`, measured warm:
    device time of CUDA-graph replays on a GPU, wall time on the CPU (see measure_latency).

    FLOPs, memory and latency grow with phi, so the search stops at the first miss
    (scaling_candidates lists every phi it looked at). Returns None when even phi = 0 misses.
    """
    best = None
    for c in scaling_candidates(target_flops, target_memory, batch, rule, step, max_phi, dtype,
                                latency_s=latency_s, device=device, backend=backend, resolution=resolution,
                                **coefficients):
        if not c.misses:
            best = c.choice
    return best
