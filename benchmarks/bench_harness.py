"""How one (case, provider) is built, checked against eager, timed and described.

Timing (pytest-benchmark pedantic mode, medians), two figures per (case, provider):
- launch: rounds of `iterations` back-to-back calls, what an eager user sees. On CUDA the benchmark
  timer synchronizes before reading the clock (sync_timer), so a round is measured from an idle
  GPU to its last kernel's end;
- device (CUDA): the same calls captured in one CUDA graph and replayed between CUDA events
  (effkernels.profile.graph_time): kernel time with no host in it. GB/s, % of copy bandwidth and
  TFLOP/s use it. A provider that cannot be captured gets none, and the capture's error instead;
  one that replays CUDA graphs itself (X+graph, compile-max-autotune) is not captured again. On the
  CPU device = launch.
- the first call, with the provider's construction (convert, torch.compile's compilation,
  autotuning, JIT, ONNX export, a runtime's session), is timed alone and reported as setup_s;
  warm-up rounds run before the timed rounds;
- one more call runs under torch.profiler: the GPU kernels (CUDA) or the torch operators called
  from Python (CPU) it launched, counted by name;
- inputs rotate through a ring whose total size is at least twice the last-level cache (the GPU's L2,
  the CPU's L3), so no timed call reads an input still cached by the previous one.
Correctness: every provider's output on the first input is compared with a higher-precision eager
reference (fp64 for fp32 runs, fp32 without TF32 otherwise; at the model level on the first 8 images
of the batch); a provider fails when its relative error exceeds max(TOL[dtype], 2 x eager's own
error) and is then not timed. Where the eager baseline computes less than the fused op (the
pointwise cases: eager is the plain GEMM), the case's module says so with fused_reference(): the
fused providers are checked against that function and eager and compile against the baseline's
(CaseState.target).
"""
from __future__ import annotations

import collections
import contextlib
import copy
import datetime
import functools
import glob
import importlib.util
import itertools
import math
import os
import platform
import tempfile
import time
import warnings
import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional

import pytest
import torch

import bench_cases
import effkernels
from bench_config import FUSED, RUNTIMES, split
from effkernels._common import tap_major
from effkernels.profile import calibrate_bn_, capture_graph, graph_time, profile

# Relative L2 error allowed per dtype, or twice eager's own error against the reference if larger.
TOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 2e-2}
RING_MAX = 256            # at most this many input tensors in the ring
ROUNDS_MIN, ROUNDS_MAX = 5, 200
MODEL_CHECK_ROWS = 8      # model level: images of the batch checked against the reference
MEMORY_SHARE = 0.8        # model level: a case whose estimate passes this share of free memory skips


def sync_timer():
    """pytest-benchmark timer for CUDA: wait for queued kernels, then read the clock."""
    torch.cuda.synchronize()
    return time.perf_counter()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _short(e: BaseException, n: int = 200) -> str:
    """An exception as one short line for the report."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}"[:n]


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


def _free_bytes(device: str) -> int:
    """Memory free for a case: the GPU's free memory, or the CPU's MemAvailable."""
    if device == "cuda":
        return torch.cuda.mem_get_info()[0]
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 1 << 62  # no /proc/meminfo: no estimate to skip on


def model_memory_estimate(module, shape, dtype) -> int:
    """Bytes a model-level case needs, roughly: its parameters, 4 x its largest activation (the input,
    output and residual of one layer, and a convolution's workspace live at once in inference; the
    sum of every activation, what training keeps, is far more), and two ring inputs."""
    p = profile(module, shape[-1], shape[0], dtype)
    return p.param_bytes + 4 * p.largest_activation_bytes + 2 * math.prod(shape) * dtype.itemsize


class CaseState:
    def __init__(self, case, cfg):
        dev, dtype, fmt = cfg.device, cfg.torch_dtype, cfg.memory_format
        seed = zlib.crc32(f"{case.id}/{case.batch}".encode())
        torch.manual_seed(seed)
        module, shape, self.source = bench_cases.build(case)
        if case.level == "model":
            need, free = model_memory_estimate(module, shape, dtype), _free_bytes(dev)
            if need > MEMORY_SHARE * free:
                raise LookupError(f"needs about {need / 2 ** 30:.1f} GiB (parameters + 4 x the largest activation, "
                                  f"effkernels.profile) > {MEMORY_SHARE:.0%} of the {free / 2 ** 30:.1f} GiB free")
        module = module.to(dev).to(memory_format=fmt)
        for p in module.parameters():
            p.requires_grad_(False)
        # BN statistics need a few images (two or more: train-mode BN of a 1x1 map needs two), not a big batch
        calib = (max(2, min(shape[0], MODEL_CHECK_ROWS)), *shape[1:])
        calibrate_bn_(module, torch.randn(calib, device=dev).contiguous(memory_format=fmt))
        self.module = module  # fp32, eval
        self.onnx_dir = None  # the runtimes' ONNX export, made on first use (onnx_file)
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
        # Reference one precision up; TF32 off so the fp32 reference really is fp32. A model's images
        # are independent in eval mode, so its reference covers the first few only.
        rows = min(shape[0], MODEL_CHECK_ROWS) if case.level == "model" else None  # None: every row
        ref_dtype = torch.float64 if dtype == torch.float32 else torch.float32
        with _no_tf32():
            ref = copy.deepcopy(module).to(ref_dtype)(x0[:rows].to(ref_dtype))
        eager = copy.deepcopy(module).to(dtype)
        from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415
        with FlopCounterMode(display=False) as fc:
            out = eager(x0)
        self.flops = fc.get_total_flops()
        weights = sum(p.numel() for p in module.parameters()) * dtype.itemsize
        in_out = (x0.numel() + out.numel()) * dtype.itemsize
        self.baseline = Target(ref, tuple(out.shape), rows, _rel_err(out[:rows], ref), in_out + weights)
        # The fused providers compute the same function as eager, unless the case's module defines
        # fused_reference (pointwise: eager is the plain GEMM, the fused op adds bias, activation, SE
        # scale, residual); then they are checked against that, one precision up, with its own
        # eager error and byte count.
        self.fused = self.baseline
        if hasattr(module, "fused_reference"):
            with _no_tf32():
                fref = copy.deepcopy(module).to(ref_dtype).fused_reference(x0.to(ref_dtype))
            own = eager.fused_reference(x0)
            self.fused = Target(fref, tuple(own.shape), rows, _rel_err(own, fref),
                                in_out + weights + module.fused_extra_bytes(dtype))
        for t in {id(t): t for t in (self.baseline, self.fused)}.values():
            t.tol = max(TOL[dtype], 2 * t.eager_err)

    def target(self, provider: str) -> Target:
        """What `provider`'s output is checked against and how many bytes it moves."""
        return self.fused if split(provider)[0] in FUSED else self.baseline

    def onnx_file(self) -> str:
        """The case's module in fp32 exported to ONNX (opset 17, the case's input shape), once per case.
        The TorchScript exporter (dynamo=False): with torch 2.14 the torch.export-based one writes opset 18
        only (its conversion to 17 fails on B0) and takes ~8x longer."""
        if self.onnx_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="effk-onnx-")  # removed with this state
            module = copy.deepcopy(self.module).float().to(memory_format=torch.contiguous_format)
            x = self.ring[0].float().contiguous()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
                torch.onnx.export(module, (x,), os.path.join(tmp.name, "model.onnx"), opset_version=17,
                                  input_names=["x"], output_names=["y"], dynamo=False)
            self.onnx_dir = tmp
        return os.path.join(self.onnx_dir.name, "model.onnx")


@dataclass
class Target:
    ref: torch.Tensor      # the reference output (of the first `rows` samples), one precision up
    out_shape: tuple
    rows: Optional[int]    # leading samples of the batch checked (model level), None: the whole output
    eager_err: float       # the same function in eager PyTorch, in the run's dtype, vs ref
    bytes: int             # inputs and weights read once + output written once
    tol: float = 0.0       # max(TOL[dtype], 2 x eager_err)

    def error(self, out) -> float:
        """Relative L2 error of a provider's output against the reference (inf: wrong shape or not finite)."""
        if tuple(out.shape) != self.out_shape:
            return math.inf
        return _rel_err(out[:self.rows], self.ref)


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
    base, wrap = split(provider)
    if wrap == "graph" and cfg.device != "cuda":
        return "CUDA graphs need a GPU"
    if provider == "compile-max-autotune" and cfg.device != "cuda":
        return "max-autotune is benchmarked on the GPU only (on the CPU it would spend the quick run autotuning)"
    if base in RUNTIMES:
        if cfg.device != "cpu":
            return f"{base} runs on the CPU here (run with CUDA_VISIBLE_DEVICES= to time it)"
        module = {"onnxruntime": "onnxruntime", "openvino": "openvino"}[base]
        missing = [m for m in ("onnx", module) if importlib.util.find_spec(m) is None]
        if missing:
            return f"{', '.join(missing)} not installed (pip install -e '.[bench]')"
        if cfg.dtype == "fp16" or (base == "onnxruntime" and cfg.dtype != "fp32"):
            return f"{base} is timed at fp32" + (" and bf16 (INFERENCE_PRECISION_HINT)" if base == "openvino" else "")
    if base in FUSED:
        backend = FUSED[base]
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
    if case.kind == "stem":
        w, b = effkernels.fold_bn(module[0].weight, module[1])  # once, outside the timed region
        w, b = w.to(dtype), b.to(dtype)
        return lambda x: effkernels.ops.conv_bn_act(x, w, b, 2, 1, "silu", backend=backend)
    if case.kind == "dwconv":
        conv, bn = module[0], module[1]
        w, b = effkernels.fold_bn(conv.weight, bn)  # once, outside the timed region
        w, b = w.to(dtype), b.to(dtype)
        if backend == "triton":  # as the layers fold it for that backend (nn/_base.py)
            w = tap_major(w)
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


class Graphed:
    """fn replayed from a CUDA graph captured once, as a user deploys it: each call copies its input
    into the graph's static input and replays; the output is the graph's static output."""

    def __init__(self, fn, example: torch.Tensor, warmup: int = 3):
        self.x = example.clone()

        def warm():
            for _ in range(warmup):
                fn(self.x)

        self.graph, self.y = capture_graph(lambda: fn(self.x), warm)

    def __call__(self, x):
        self.x.copy_(x)
        self.graph.replay()
        return self.y


def _runtime(name: str, path: str, cfg):
    """x (contiguous fp32 NCHW numpy) -> torch output, by ONNX Runtime or OpenVINO on the CPU with the
    session's torch thread count; OpenVINO at the sweep's precision (INFERENCE_PRECISION_HINT)."""
    threads = torch.get_num_threads()
    if name == "onnxruntime":
        import onnxruntime as ort  # noqa: PLC0415

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        return lambda x: torch.from_numpy(sess.run(None, {"x": x})[0])
    import openvino as ov  # noqa: PLC0415

    core = ov.Core()
    hint = {"fp32": "f32", "bf16": "bf16"}[cfg.dtype]
    if hint == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no bf16 support in OpenVINO (OPTIMIZATION_CAPABILITIES lacks BF16)")
    compiled = core.compile_model(core.read_model(path), "CPU", {
        "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()

    def run(x):
        request.infer({0: x})
        return torch.from_numpy(request.get_output_tensor(0).data.copy())
    return run


@dataclass
class Built:
    fn: Callable
    prepare: Optional[Callable] = None  # ring input -> what fn takes (the runtimes: contiguous fp32 numpy)
    no_capture: str = ""  # why the device time is not measured by capturing fn in a CUDA graph


def make_provider(case, provider: str, state: CaseState, cfg) -> Built:
    """`provider`'s callable x -> output, built from a copy of the case's module."""
    base, wrap = split(provider)
    if base in RUNTIMES:
        return Built(_runtime(base, state.onnx_file(), cfg), prepare=lambda x: x.float().contiguous().numpy())
    module = copy.deepcopy(state.module).to(cfg.torch_dtype)
    if base == "eager":
        fn = module
    elif base.startswith("compile"):
        torch._dynamo.reset()  # each case compiles afresh: no recompile limit, no automatic dynamic shapes
        mode = "max-autotune" if base == "compile-max-autotune" else None
        fn = torch.compile(module, mode=mode, dynamic=False)
        if mode:
            return Built(fn, no_capture="not captured: max-autotune replays its own CUDA graphs (launch time shown)")
    elif case.level == "op":
        fn = _fused_op(case, module, FUSED[base], cfg.torch_dtype)
    else:
        fn = _converted(module, FUSED[base])
    if wrap == "compile":
        torch._dynamo.reset()
        fn = torch.compile(fn, fullgraph=True, dynamic=False)
    elif wrap == "graph":
        return Built(Graphed(fn, state.ring[0]), no_capture="a CUDA graph replay already (launch time shown)")
    return Built(fn)


# ---------------------------------------------------------------------------------------------
# What one call launches

def _gpu_kernel_name(name: str) -> str:
    name = name[5:] if name.startswith("void ") else name
    return name[:90]


def kernels_per_call(call: Callable[[], object], device: str):
    """(count, [[name, count], ...] most frequent first, what was counted) for one call under
    torch.profiler: on CUDA every GPU activity (kernels, copies, memsets); on the CPU the torch
    operators called from Python (an operator's own nested operators are not counted again)."""
    from torch.autograd import DeviceType  # noqa: PLC0415
    from torch.profiler import ProfilerActivity  # noqa: PLC0415
    from torch.profiler import profile as torch_profile  # noqa: PLC0415

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    _sync(device)
    with torch_profile(activities=acts) as prof:
        call()
        _sync(device)
    names = []
    for e in prof.events():
        if device == "cuda":
            if e.device_type == DeviceType.CUDA:
                names.append(_gpu_kernel_name(e.name))
        elif e.device_type == DeviceType.CPU and "::" in e.name:
            parent = e.cpu_parent
            while parent is not None and "::" not in parent.name:
                parent = parent.cpu_parent
            if parent is None:
                names.append(e.name)
    what = ("GPU kernels, copies and memsets (torch.profiler)" if device == "cuda" else
            "torch operators called from Python (torch.profiler; code torch.compile generates is not an operator)")
    return len(names), [[n, c] for n, c in collections.Counter(names).most_common(30)], what


# ---------------------------------------------------------------------------------------------
# One benchmark

def device_time(built: Built, ring, launch_s: float, cfg):
    """(seconds per call or None, how it was obtained or why not): see the module docstring."""
    if cfg.device != "cuda":
        return launch_s, "CPU: device = launch"
    if built.no_capture:
        return None, built.no_capture
    try:
        t = graph_time(built.fn, ring, launch_s, seconds=cfg.case_time)
        return t, "CUDA graph replay"
    except Exception as e:  # noqa: BLE001 (the report shows why this provider cannot be captured)
        return None, "capture failed: " + _short(e)
    finally:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


@dataclass
class Ready:
    """A provider built and checked on a case, ready to time."""
    built: Built
    ring: list             # the inputs, as built.fn takes them
    target: Target
    state: CaseState
    extra: dict = field(default_factory=dict)  # what the JSON row says about the case and the check


def prepare(case, provider: str, cfg, record_wrong) -> Ready:
    """Build `provider` on `case` and check its output: pytest.skip when it cannot run here,
    pytest.fail (after record_wrong) when it is wrong."""
    why = provider_skip_reason(provider, cfg)
    if why:
        pytest.skip(why)
    try:
        state = case_state(case, cfg)
    except LookupError as e:
        pytest.skip(str(e))
    info = device_info(cfg.device)
    dev = cfg.device

    _sync(dev)
    t0 = time.perf_counter()
    built = make_provider(case, provider, state, cfg)
    ring = [built.prepare(x) for x in state.ring] if built.prepare else state.ring
    try:
        out = built.fn(ring[0])
    except (NotImplementedError, ValueError) as e:  # a fused op that does not cover this case says so
        if split(provider)[0] not in FUSED:
            raise
        pytest.skip(f"{provider} does not run this case: {type(e).__name__}: {e}")
    _sync(dev)
    setup_s = time.perf_counter() - t0

    target = state.target(provider)
    err = target.error(out)
    extra = dict(level=case.level, phi=case.phi, model=dict(case.params).get("model"), resolution=case.resolution,
                 case=case.id, shape=case.shape, kind=case.kind, provider=provider, dtype=cfg.dtype, layout=cfg.layout,
                 batch=case.batch, baseline=state.source, device=info["name"], bytes=target.bytes, flops=state.flops,
                 rel_err=err, eager_rel_err=target.eager_err, tol=target.tol, setup_s=round(setup_s, 4))
    del out
    if not err <= target.tol:
        record_wrong(dict(extra, status="wrong"))
        pytest.fail(f"WRONG: {provider} on {case.id}: relative error {err:.3e} vs the reference > tolerance "
                    f"{target.tol:.1e} (eager's own error {target.eager_err:.1e}); not timed", pytrace=False)
    return Ready(built, ring, target, state, extra)


def run(benchmark, case, provider: str, cfg, record_wrong) -> None:
    """Build, check, time `provider` on `case`; fill benchmark.extra_info. Skips and failures raise."""
    ready = prepare(case, provider, cfg, record_wrong)
    built, ring, target, extra = ready.built, ready.ring, ready.target, ready.extra
    fn, dev, info = built.fn, cfg.device, device_info(cfg.device)

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
    extra.update(status="ok", median_s=median, ring=len(ring), iterations=iterations, rounds=rounds,
                 peak_mem_mb=None if peak is None else round(peak / 2 ** 20, 2),
                 peak_mem_note="extra device memory allocated during one call" if peak is not None else
                 "n/a on the CPU (no allocator statistics)")
    if split(provider)[0] in RUNTIMES:
        extra.update(kernels=None, kernel_names=[], kernels_what="n/a: the runtime's own kernels, not torch's")
    else:
        try:
            count, names, what = kernels_per_call(call, dev)
            extra.update(kernels=count, kernel_names=names, kernels_what=what)
        except Exception as e:  # noqa: BLE001 (a profiler failure must not lose the timing)
            extra.update(kernels=None, kernel_names=[], kernels_what="profiler failed: " + _short(e))
    device_s, device_note = device_time(built, ring, median, cfg)
    t = device_s or median
    bw = info["copy_bw_gbps"]
    gbps = target.bytes / t / 1e9
    extra.update(device_s=device_s, device_note=device_note, metric_time="device" if device_s else "launch",
                 gbps=round(gbps, 2), tflops=round(ready.state.flops / t / 1e12, 4), copy_bw_gbps=bw,
                 pct_copy_bw=round(100 * gbps / bw, 2))
    if case.level == "model":
        extra.update(images_per_s=round(case.batch / median, 2),
                     images_per_s_device=round(case.batch / device_s, 2) if device_s else None)
    benchmark.extra_info.update(extra)
