"""How one (case, provider) is built, checked against eager, timed and described.

Timing (pytest-benchmark pedantic mode, medians):
- CUDA: the benchmark timer synchronizes before reading the clock (sync_timer), so a round of
  `iterations` back-to-back calls is measured from an idle GPU to its last kernel's end;
- the first call (compilation, autotuning, JIT) is timed alone and reported as compile_s, then
  warm-up rounds run before the timed rounds;
- inputs rotate through a ring whose total size is at least twice the last-level cache (the GPU's L2,
  the CPU's L3), so no timed call reads an input still cached by the previous one.
Correctness: every provider's output on the first input is compared with a higher-precision eager
reference (fp64 for fp32 runs, fp32 without TF32 otherwise); a provider fails when its relative
error exceeds max(TOL[dtype], 2 x eager's own error) and is then not timed. Where the eager baseline
computes less than the fused op (the pointwise cases: eager is the plain GEMM), the case's module
says so with fused_reference(): the fused providers are checked against that function and eager and
compile against the baseline's (CaseState.target).
"""
from __future__ import annotations

import contextlib
import copy
import datetime
import functools
import glob
import itertools
import math
import os
import platform
import time
import zlib
from dataclasses import dataclass

import pytest
import torch

import bench_cases
import effkernels

# Relative L2 error allowed per dtype, or twice eager's own error against the reference if larger.
TOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 2e-2}
FUSED = {"effkernels-triton": "triton", "effkernels-cuda": "cuda", "effkernels-cpu": "cpu"}
RING_MAX = 256            # at most this many input tensors in the ring
ROUNDS_MIN, ROUNDS_MAX = 5, 200


def sync_timer():
    """pytest-benchmark timer for CUDA: wait for queued kernels, then read the clock."""
    torch.cuda.synchronize()
    return time.perf_counter()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------
# The device, measured once per session

def _cpu_cache_bytes() -> int:
    """The largest CPU cache (the last level), from sysfs; 32 MiB where sysfs does not say."""
    sizes = []
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        with open(path) as f:
            text = f.read().strip()
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * mult)
    return max(sizes) if sizes else 32 << 20


@torch.no_grad()
def _copy_bandwidth(device: str) -> float:
    """Bytes per second of a large device-to-device (or RAM-to-RAM) copy, read + write, median of 7."""
    nbytes = (1 << 30) if device == "cuda" else (128 << 20)
    if device == "cuda":
        nbytes = min(nbytes, torch.cuda.mem_get_info()[0] // 8)
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).random_()
    dst = torch.empty_like(src)
    reps, times = 5, []
    dst.copy_(src)
    for _ in range(7):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            dst.copy_(src)
        _sync(device)
        times.append((time.perf_counter() - t0) / reps)
    times.sort()
    return 2 * nbytes / times[len(times) // 2]


@functools.lru_cache(maxsize=None)
def device_info(device: str) -> dict:
    info = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host_cpu": platform.processor() or platform.machine(), "cpu_threads": torch.get_num_threads(),
            "backends": {k: [ok, why] for k, (ok, why) in effkernels.backends_available().items()}}
    try:
        import triton  # noqa: PLC0415
        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        info.update(name=p.name, capability=f"sm_{p.major}{p.minor}", memory_gib=round(p.total_memory / 2 ** 30, 1),
                    cache_bytes=getattr(p, "L2_cache_size", 50 << 20), cache="L2",
                    cudnn_benchmark=torch.backends.cudnn.benchmark)
    else:
        info.update(name=f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores)",
                    cache_bytes=_cpu_cache_bytes(), cache="last-level")
    info["copy_bw_gbps"] = round(_copy_bandwidth(device) / 1e9, 1)
    return info


# ---------------------------------------------------------------------------------------------
# A case's shared state: module, input ring, reference, eager error; cached for the last case only

def _rel_err(out, ref) -> float:
    out, ref = out.float(), ref.float()
    if not torch.isfinite(out).all():
        return math.inf
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


class CaseState:
    def __init__(self, case, cfg):
        dev, dtype, fmt = cfg.device, cfg.torch_dtype, cfg.memory_format
        seed = zlib.crc32(f"{case.id}/{cfg.batch}".encode())
        torch.manual_seed(seed)
        module, shape, self.source = bench_cases.build(case, cfg.batch)
        module = module.to(dev).to(memory_format=fmt)
        for p in module.parameters():
            p.requires_grad_(False)
        bench_cases.calibrate_bn_(module, torch.randn(shape, device=dev).contiguous(memory_format=fmt))
        self.module = module  # fp32, eval
        # Ring of inputs: together at least 2x the last-level cache.
        info = device_info(dev)
        one = math.prod(shape) * dtype.itemsize
        n = min(RING_MAX, max(1, math.ceil(2 * info["cache_bytes"] / one) + 1))
        if dev == "cuda":
            n = min(n, max(1, torch.cuda.mem_get_info()[0] // (8 * one)))
        gen = torch.Generator(device=dev).manual_seed(seed)
        self.ring = [torch.randn(shape, device=dev, generator=gen).to(dtype).contiguous(memory_format=fmt)
                     for _ in range(n)]
        x0 = self.ring[0]
        # Reference one precision up; TF32 off so the fp32 reference really is fp32.
        ref_dtype = torch.float64 if dtype == torch.float32 else torch.float32
        with _no_tf32():
            ref = copy.deepcopy(module).to(ref_dtype)(x0.to(ref_dtype))
        eager = copy.deepcopy(module).to(dtype)
        from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415
        with FlopCounterMode(display=False) as fc:
            out = eager(x0)
        self.flops = fc.get_total_flops()
        weights = sum(p.numel() for p in module.parameters()) * dtype.itemsize
        in_out = (x0.numel() + out.numel()) * dtype.itemsize
        self.baseline = Target(ref, tuple(out.shape), _rel_err(out, ref), in_out + weights)
        # The fused providers compute the same function as eager, unless the case's module defines
        # fused_reference (pointwise: eager is the plain GEMM, the fused op adds bias, activation, SE
        # scale, residual); then they are checked against that, one precision up, with its own
        # eager error and byte count.
        self.fused = self.baseline
        if hasattr(module, "fused_reference"):
            with _no_tf32():
                fref = copy.deepcopy(module).to(ref_dtype).fused_reference(x0.to(ref_dtype))
            own = eager.fused_reference(x0)
            self.fused = Target(fref, tuple(own.shape), _rel_err(own, fref),
                                in_out + weights + module.fused_extra_bytes(dtype))
        for t in {id(t): t for t in (self.baseline, self.fused)}.values():
            t.tol = max(TOL[dtype], 2 * t.eager_err)

    def target(self, provider: str) -> Target:
        """What `provider`'s output is checked against and how many bytes it moves."""
        return self.fused if provider in FUSED else self.baseline


@dataclass
class Target:
    ref: torch.Tensor      # the reference output, one precision up
    out_shape: tuple
    eager_err: float       # the same function in eager PyTorch, in the run's dtype, vs ref
    bytes: int             # inputs and weights read once + output written once
    tol: float = 0.0       # max(TOL[dtype], 2 x eager_err)


@contextlib.contextmanager
def _no_tf32():
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


_last = {}


def case_state(case, cfg) -> CaseState:
    key = (case.id, cfg)
    if key not in _last:
        _last.clear()
        if cfg.device == "cuda":
            torch.cuda.empty_cache()
        _last[key] = CaseState(case, cfg)
    return _last[key]


# ---------------------------------------------------------------------------------------------
# Providers

def provider_skip_reason(provider: str, cfg) -> str:
    """Why `provider` cannot run in this session, or ""."""
    if provider == "compile-max-autotune" and cfg.device != "cuda":
        return "max-autotune is benchmarked on the GPU only (on the CPU it would spend the quick run autotuning)"
    if provider in FUSED:
        backend = FUSED[provider]
        if backend == "triton" and cfg.device != "cuda":
            return "no GPU; the interpreter is not a performance path"
        if backend == "triton" and os.environ.get("TRITON_INTERPRET") == "1":
            return "TRITON_INTERPRET=1 is set; unset it to time Triton on the GPU"
        if backend == "cuda" and cfg.device != "cuda":
            return "no GPU: the CUDA kernels need one"
        if backend == "cpu" and cfg.device != "cpu":
            return "this sweep runs on the GPU; effkernels-cpu serves CPU tensors (run with CUDA_VISIBLE_DEVICES= to time it)"
        ok, why = effkernels.backends_available()[backend]
        if not ok:
            return f"backend {backend!r} unavailable: {why}"
    return ""


def _fused_op(case, module, backend: str, dtype):
    if case.kind == "dwconv":
        conv, bn = module[0], module[1]
        w, b = effkernels.fold_bn(conv.weight, bn)  # once, outside the timed region
        w, b = w.to(dtype), b.to(dtype)
        stride, pad = conv.stride[0], conv.padding[0]
        return lambda x: effkernels.ops.dwconv_bn_act(x, w, b, stride, pad, "silu", backend=backend)
    if case.kind == "pointwise":  # no BN here: random weight and bias, the SE scale and residual fixed per case
        w, b, scale, res = module.fused_inputs(dtype)
        act = module.activation
        return lambda x: effkernels.ops.pointwise_conv(x, w, b, act, scale, res, backend=backend)
    w1, b1 = module.fc1.weight[:, :, 0, 0].to(dtype), module.fc1.bias.to(dtype)
    w2, b2 = module.fc2.weight[:, :, 0, 0].to(dtype), module.fc2.bias.to(dtype)
    return lambda x: effkernels.ops.squeeze_excite(x, w1, b1, w2, b2, backend=backend)


def _converted(module, backend: str):
    fast = effkernels.convert(module, backend=backend)
    if not fast.effkernels_report.converted:
        pytest.skip(f"effkernels.convert swapped nothing in this model: {fast.effkernels_report}")
    return fast


def make_provider(case, provider: str, state: CaseState, cfg):
    """A callable x -> output for `provider`, built from a copy of the case's module."""
    module = copy.deepcopy(state.module).to(cfg.torch_dtype)
    if provider == "eager":
        return module
    if provider.startswith("compile"):
        torch._dynamo.reset()  # each case compiles afresh: no recompile limit, no automatic dynamic shapes
        mode = "max-autotune" if provider == "compile-max-autotune" else None
        return torch.compile(module, mode=mode, dynamic=False)
    backend = FUSED[provider]
    if case.level == "op":
        return _fused_op(case, module, backend, cfg.torch_dtype)
    return _converted(module, backend)


# ---------------------------------------------------------------------------------------------
# One benchmark

def run(benchmark, case, provider: str, cfg, record_wrong) -> None:
    """Build, check, time `provider` on `case`; fill benchmark.extra_info. Skips and failures raise."""
    why = provider_skip_reason(provider, cfg)
    if why:
        pytest.skip(why)
    try:
        state = case_state(case, cfg)
    except LookupError as e:
        pytest.skip(str(e))
    info = device_info(cfg.device)
    dev = cfg.device
    fn = make_provider(case, provider, state, cfg)
    ring = state.ring
    x0 = ring[0]

    _sync(dev)
    t0 = time.perf_counter()
    try:
        out = fn(x0)
    except (NotImplementedError, ValueError) as e:  # a fused op that does not cover this case says so
        if provider not in FUSED:
            raise
        pytest.skip(f"{provider} does not run this case: {type(e).__name__}: {e}")
    _sync(dev)
    compile_s = time.perf_counter() - t0

    target = state.target(provider)
    err = _rel_err(out, target.ref) if tuple(out.shape) == target.out_shape else math.inf
    extra = dict(level=case.level, phi=case.phi, model=f"B{case.phi}", resolution=case.resolution, case=case.id,
                 shape=case.shape, kind=case.kind, provider=provider, dtype=cfg.dtype, layout=cfg.layout,
                 batch=cfg.batch, baseline=state.source, device=info["name"], bytes=target.bytes, flops=state.flops,
                 rel_err=err, eager_rel_err=target.eager_err, tol=target.tol, compile_s=round(compile_s, 4))
    del out
    if not err <= target.tol:
        record_wrong(dict(extra, status="wrong"))
        pytest.fail(f"WRONG: {provider} on {case.id}: relative error {err:.3e} vs the reference > tolerance "
                    f"{target.tol:.1e} (eager's own error {target.eager_err:.1e}); not timed", pytrace=False)

    cycle = itertools.cycle(ring)

    def call():
        return fn(next(cycle))

    # Per-call estimate -> iterations per round (rounds long against the timer's overhead) and rounds.
    n, t0 = 0, time.perf_counter()
    while n < 3 or (time.perf_counter() - t0 < 0.02 and n < 1000):
        call()
        n += 1
        _sync(dev)
    t_call = (time.perf_counter() - t0) / n
    round_target = 2e-3 if dev == "cuda" else 1e-2
    iterations = max(1, min(10_000, math.ceil(round_target / t_call)))
    rounds = max(ROUNDS_MIN, min(ROUNDS_MAX, int(cfg.case_time / (iterations * t_call))))

    peak = None
    if dev == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        call()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base

    benchmark.pedantic(call, rounds=rounds, iterations=iterations, warmup_rounds=1)
    median = benchmark.stats.stats.median
    bw = info["copy_bw_gbps"]
    gbps = target.bytes / median / 1e9
    extra.update(status="ok", median_s=median, gbps=round(gbps, 2), tflops=round(state.flops / median / 1e12, 4),
                 copy_bw_gbps=bw, pct_copy_bw=round(100 * gbps / bw, 2),
                 peak_mem_mb=None if peak is None else round(peak / 2 ** 20, 2),
                 peak_mem_note="extra device memory allocated during one call" if peak is not None else
                 "n/a on the CPU (no allocator statistics)",
                 ring=len(ring), iterations=iterations, rounds=rounds)
    benchmark.extra_info.update(extra)
