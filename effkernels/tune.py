"""Tune the Triton kernels on the GPU present and write its config table (effkernels/configs/<device>.json).

    python -m effkernels.tune                                  # B0..B7, batch 1, 32, 256, bf16, channels_last
    python -m effkernels.tune --models b0,b1 --batch 32 --budget 120
    python -m effkernels.tune --list                           # the tunable kernels and their candidates

For each chosen model (scaling.block_shapes: every MBConv at the variant's resolution), batch, dtype and
layout, in that order, the tuner runs each distinct block once through the Triton MBConv path
(ops.mbconv) and records the key every kernel asks its config for (KernelConfigs.pick): these are the
shapes the model's kernels really see. Then, for each new key, it times every candidate config
(KernelConfigs.candidates(key), plus the heuristic's choice) by device time: the kernel launched through
its launcher with `config=` on inputs from the kernel's runner (`@<table>.runner`), rotated through a
ring of input sets that together exceed twice the L2 cache, captured in a CUDA graph and replayed,
CUDA events around many replays, median of several trials. The fastest config of each key goes into
the table with its time, the heuristic's time, the torch/triton versions and the date; an existing
table at the same path is merged (entries of keys not timed again stay). With a budget, the tuner
stops when it runs out and writes what it has: the models come first in the order given, so a short
budget covers B0 fully before B1, and later models fall back to the nearest tuned shape of their class.

Only the Triton kernels are tuned: the CUDA kernels (backend "cuda", csrc/cuda) have no template
choices to tune today, their tiles are fixed at compile time. Under TRITON_INTERPRET=1 (no GPU) the
tuner runs on the CPU with wall-clock timing: a check of the plumbing, not a measurement.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import pkgutil
import statistics
import sys
import time

import torch

from . import configs
from .backends import triton_interpreted

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
# Device timing: each CUDA graph holds at most _GRAPH_LAUNCHES launches (capturing costs ~20 us of host
# time per launch), passes over the ring are added until a replay keeps the GPU busy ~_GRAPH_US; a trial
# replays it for at least rep_ms / _TRIALS, and the median trial is the answer.
_RING_MAX, _GRAPH_LAUNCHES, _GRAPH_US, _TRIALS = 64, 512, 1000.0, 5


def kernels() -> dict:
    """Every tunable Triton kernel: {name: KernelConfigs}, after importing every module of effkernels.triton."""
    from . import triton as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{pkg.__name__}.{mod.name}")
    from .triton._common import KERNELS

    return dict(KERNELS)


def config_dict(cfg) -> dict:
    """A triton.Config as a table entry's config."""
    return {**cfg.kwargs, "num_warps": cfg.num_warps, "num_stages": cfg.num_stages}


# ---------------------------------------------------------------- keys: what the models' kernels ask for


@contextlib.contextmanager
def recording(tables: dict):
    """Within the block, every tables[name].pick(key, device) call adds (name, key) to the yielded dict
    (insertion-ordered, so keys come in the order the kernels first ask for them)."""
    seen: dict = {}
    for name, table in tables.items():
        def pick(key, device, _pick=table.pick, _name=name):
            seen.setdefault((_name, tuple(key)), None)
            return _pick(key, device)
        table.pick = pick  # an instance attribute over the class's method
    try:
        yield seen
    finally:
        for table in tables.values():
            del table.pick


def distinct_blocks(model, resolution=None) -> list:
    """The distinct MBConv shapes of a model (b0..b7 or a phi), in network order."""
    from .scaling import block_shapes

    out = {}
    for b in block_shapes(model, resolution):
        out.setdefault((b.expand_ratio, b.in_channels, b.expanded_channels, b.out_channels, b.squeeze_channels,
                        b.kernel, b.stride, b.in_hw, b.residual), b)
    return list(out.values())


def run_block(block, batch: int, dtype: torch.dtype, layout, device) -> None:
    """One MBConv of `block`'s shape on random data through the Triton path (ops.mbconv)."""
    from .ops import mbconv

    like = dict(device=device, dtype=dtype)

    def p(*shape):
        return torch.randn(*shape, **like) / math.sqrt(shape[-1])

    c_in, c_exp, c_out, s, k = (block.in_channels, block.expanded_channels, block.out_channels,
                                block.squeeze_channels, block.kernel)
    x = torch.randn(batch, c_in, block.in_hw, block.in_hw, **like).contiguous(memory_format=layout)
    expand = (p(c_exp, c_in), p(c_exp)) if block.expand_ratio != 1 else (None, None)
    mbconv(x, *expand, p(c_exp, 1, k, k), p(c_exp), block.stride, (k - 1) // 2, p(s, c_exp), p(s), p(c_exp, s),
           p(c_exp), p(c_out, c_exp), p(c_out), block.residual, backend="triton")


def model_keys(model, batch: int, dtype: torch.dtype, layout, device, tables: dict, resolution=None) -> list:
    """[(kernel name, key)] that `model`'s blocks ask for, in order (each block run once, unmeasured)."""
    with torch.inference_mode(), recording(tables) as seen:
        for block in distinct_blocks(model, resolution):
            run_block(block, batch, dtype, layout, device)
    return list(seen)


# ---------------------------------------------------------------- timers


def wall_time_us(calls: list, trials: int = 3) -> float:
    """Median wall-clock microseconds per call (CPU: the Triton interpreter), one warm-up pass first."""
    for fn in calls:
        fn()
    per_call = []
    for _ in range(trials):
        t0 = time.perf_counter()
        for fn in calls:
            fn()
        per_call.append((time.perf_counter() - t0) / len(calls))
    return statistics.median(per_call) * 1e6


def _capture(calls: list, passes: int):
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(passes):
            for fn in calls:
                fn()
    return graph


def _replay_ms(graph, replays: int) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(replays):
        graph.replay()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def device_time_us(calls: list, rep_ms: float = 10.0) -> float:
    """Median device microseconds per call: the calls captured in a CUDA graph (a pass over them,
    repeated until a replay is long enough), replayed back to back between CUDA events."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture: compilation, first-launch work
        for fn in calls:
            fn()
    torch.cuda.synchronize()
    graph = _capture(calls, 1)
    graph.replay()
    pass_ms = _replay_ms(graph, 3) / 3
    passes = max(1, min(math.ceil(_GRAPH_US / 1000 / max(pass_ms, 1e-6)), _GRAPH_LAUNCHES // len(calls)))
    if passes > 1:
        graph = _capture(calls, passes)
        graph.replay()
    replay_ms = pass_ms * passes
    replays = max(1, math.ceil(rep_ms / _TRIALS / replay_ms))
    trials = [_replay_ms(graph, replays) / (replays * passes * len(calls)) for _ in range(_TRIALS)]
    return statistics.median(trials) * 1e3


# ---------------------------------------------------------------- tuning


def _ring(table, key, device) -> list:
    """Runners of `key` on distinct inputs: together at least twice the L2 cache (CUDA), one on the CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return [table.make_runner(key, device)]
    before = torch.cuda.memory_allocated(device)
    runs = [table.make_runner(key, device)]
    size = max(torch.cuda.memory_allocated(device) - before, 1)
    l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 << 20)  # older torch: an H100's
    runs += [table.make_runner(key, device) for _ in range(min(_RING_MAX, math.ceil(2 * l2 / size)) - 1)]
    return runs


def tune_key(table, key, device, timer) -> dict:
    """Time every candidate of `key` (and the heuristic's choice): {"config", "us", "heuristic_us", "failed"}."""
    heuristic = table.heuristic(key)
    candidates = {}
    for cfg in [*table.candidates(key), heuristic]:
        candidates.setdefault(str(sorted(config_dict(cfg).items())), cfg)
    runs = _ring(table, key, device)
    times, failed = {}, {}
    for name, cfg in candidates.items():
        try:
            times[name] = timer([(lambda run=run, cfg=cfg: run(cfg)) for run in runs])
        except Exception as e:  # noqa: BLE001 (a config that fails to compile or launch loses; the rest go on)
            failed[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    if not times:
        return {"config": None, "failed": failed}
    best = min(times, key=times.get)
    h = str(sorted(config_dict(heuristic).items()))
    return {"config": config_dict(candidates[best]), "us": times[best], "heuristic_us": times.get(h),
            "failed": failed}


class Progress:
    """A one-line progress bar on stderr (a line per step when stderr is not a terminal, e.g. a log)."""

    def __init__(self, steps: int, budget: float, stream=None):
        self.steps, self.budget, self.t0, self.done = steps, budget, time.monotonic(), 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def show(self, what: str, keys: int) -> None:
        frac = self.done / self.steps if self.steps else 1.0
        if self.budget:
            frac = max(frac, min(1.0, self.elapsed() / self.budget))
        bar = "#" * round(20 * frac) + "-" * (20 - round(20 * frac))
        limit = f"/{self.budget:.0f}" if self.budget else ""
        line = f"tune [{bar}] {self.done}/{self.steps} {what}: {keys} keys timed, {self.elapsed():.0f}{limit} s"
        self.stream.write(("\r" + line[:150].ljust(150)) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def tune(models, batches, dtypes, layouts, device, kernel_names=None, budget: float = 0.0, timer=None,
         resolution=None, progress: Progress | None = None) -> dict:
    """Tune every key the models' kernels ask for; returns {kernel: {key: tune_key's result}} and the
    bookkeeping under "_left" (steps the budget cut). budget 0: no limit. timer(calls) -> us per call:
    device_time_us on CUDA, wall_time_us on the CPU."""
    tables = kernels()
    unknown = sorted(set(kernel_names or ()) - set(tables))
    if unknown:
        raise ValueError(f"kernels: unknown {unknown}; the tunable kernels are {sorted(tables)}")
    chosen = {n: t for n, t in tables.items() if kernel_names is None or n in kernel_names}
    missing = sorted(n for n, t in chosen.items() if t.make_runner is None)
    if missing:
        raise ValueError(f"kernels {missing} register no runner (`@<table>.runner` in their module): cannot time them")
    device = torch.device(device)
    timer = timer or (device_time_us if device.type == "cuda" else wall_time_us)
    steps = [(m, b, d, lay) for d in dtypes for lay in layouts for b in batches for m in models]
    progress = progress or Progress(len(steps), budget)
    results: dict = {n: {} for n in chosen}
    left = list(steps)

    def out_of_time():
        return budget and progress.elapsed() >= budget

    try:
        for model, batch, dtype, layout in steps:
            if out_of_time():
                break
            what = f"{model} batch {batch} {dtype} {layout}"
            progress.show(what, sum(map(len, results.values())))
            keys = model_keys(model, batch, _DTYPES[dtype], _LAYOUTS[layout], device, tables, resolution)
            todo = [(n, k) for n, k in keys if n in chosen and k not in results[n]]
            while todo and not out_of_time():
                name, key = todo.pop(0)
                with torch.inference_mode():
                    results[name][key] = tune_key(chosen[name], key, device, timer)
                progress.show(what, sum(map(len, results.values())))
            if todo:
                break
            left.pop(0)
            progress.done += 1
    except KeyboardInterrupt:  # SIGINT (an outer time limit): keep what is tuned, so it can still be written
        print("\ntune: interrupted", file=sys.stderr)
    progress.show("done" if not left else "budget spent", sum(map(len, results.values())))
    progress.close()
    results["_left"] = left
    return results


def table_kernels(results: dict, tables: dict) -> dict:
    """tune()'s results as the `kernels` object of a table (effkernels.configs.write)."""
    out = {}
    for name, by_key in results.items():
        entries = [{"key": list(key), "config": r["config"], "us": round(r["us"], 3),
                    **({"heuristic_us": round(r["heuristic_us"], 3)} if r.get("heuristic_us") else {})}
                   for key, r in by_key.items() if r["config"] is not None]
        if entries:
            out[name] = {"fields": list(tables[name].fields), "entries": entries}
    return out


def merge(path: str, device: str, new: dict) -> dict:
    """`new` kernels merged over the table already at `path` (its entries for keys not in `new` stay; a
    kernel whose fields changed, or a file that is not a table of this device, is replaced)."""
    import json

    try:
        with open(path) as f:
            old = json.load(f)
        configs._parse(path, old)
    except FileNotFoundError:
        return new
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"tune: replacing {path}, which is not a valid table ({type(e).__name__}: {e})", file=sys.stderr)
        return new
    if old.get("device") != device:
        print(f"tune: replacing {path}, a table of {old.get('device')!r}, not {device!r}", file=sys.stderr)
        return new
    out = {name: dict(t) for name, t in old["kernels"].items()}
    for name, t in new.items():
        kept = out.get(name)
        if kept is None or kept["fields"] != t["fields"]:
            out[name] = t
            continue
        fresh = {tuple(e["key"]) for e in t["entries"]}
        out[name] = {"fields": t["fields"],
                     "entries": [e for e in kept["entries"] if tuple(e["key"]) not in fresh] + t["entries"]}
    return out


def default_path(device) -> str:
    """$EFFKERNELS_CONFIG_DIR/<device>.json when that is set, else the package's effkernels/configs/."""
    from . import _config
    from .triton._common import device_name

    folder = _config.get("EFFKERNELS_CONFIG_DIR") or os.path.dirname(os.path.abspath(configs.__file__))
    return os.path.join(folder, configs.file_name(device_name(device)))


def write_table(results: dict, device, path: str | None = None) -> str:
    """Merge tune()'s results into the device's table and write it; returns the path."""
    import triton

    from .triton._common import device_name

    tables = kernels()
    name = device_name(device)
    path = path or default_path(device)
    merged = merge(path, name, table_kernels({k: v for k, v in results.items() if k != "_left"}, tables))
    configs.write(path, name, merged, {"torch": torch.__version__, "triton": triton.__version__})
    configs.reload()
    return path


def summary(results: dict) -> str:
    """Per kernel: keys tuned, failures, and the geometric-mean gain of the tuned config over the heuristic."""
    lines = []
    for name, by_key in results.items():
        if name == "_left":
            continue
        ok = [r for r in by_key.values() if r["config"] is not None]
        gains = [r["heuristic_us"] / r["us"] for r in ok if r.get("heuristic_us")]
        fails = sum(len(r["failed"]) for r in by_key.values())
        gain = f"{math.exp(statistics.fmean(map(math.log, gains))):.2f}x" if gains else "-"
        lines.append(f"  {name:16s} {len(ok):4d} keys tuned, tuned vs heuristic (geomean) {gain}, "
                     f"{fails} failed config(s)")
    if results.get("_left"):
        lines.append(f"  the budget ended before: {', '.join(' '.join(map(str, s)) for s in results['_left'])}")
    return "\n".join(lines)


def _models(spec: str) -> list:
    """'0-7' -> [0..7]; 'b0,b3,1.5' -> ['b0', 'b3', 1.5]."""
    out = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part and not part.startswith("-"):
            lo, hi = part.split("-")
            out += list(range(int(lo), int(hi) + 1))
        elif part:
            try:
                out.append(int(part) if part.isdigit() else float(part))
            except ValueError:
                out.append(part)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m effkernels.tune", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="0-7", help="b0..b7 names, phi values and ranges: 0-7, b0,b3, 1.5")
    ap.add_argument("--batch", default="1,32,256", help="comma list of batch sizes (default 1,32,256)")
    ap.add_argument("--dtype", default="bf16", help="comma list of fp32, fp16, bf16 (default bf16)")
    ap.add_argument("--layout", default="channels_last", help="channels_last and/or contiguous (default channels_last)")
    ap.add_argument("--kernels", default="", help="comma list of kernel names (default: every one; see --list)")
    ap.add_argument("--resolution", type=int, default=None, help="input resolution (default: each model's own)")
    ap.add_argument("--budget", type=float, default=0.0, help="seconds; stop then and write what is tuned (0: none)")
    ap.add_argument("--rep-ms", type=float, default=10.0, help="measured ms per config (CUDA; default 10)")
    ap.add_argument("--out", default=None,
                    help="the table to write, merged if it exists (default: <device name>.json in "
                         "$EFFKERNELS_CONFIG_DIR, else in effkernels/configs)")
    ap.add_argument("--list", action="store_true", help="list the tunable kernels and their candidates, then exit")
    args = ap.parse_args(argv)

    tables = kernels()
    if args.list:
        for name, t in tables.items():
            configs_ = t.all_configs()
            print(f"{name}: key {list(t.fields)}, {len(configs_)} candidate configs"
                  + ("" if t.make_runner else " (no runner: not tunable)"))
            for cfg in configs_:
                print(f"    {config_dict(cfg)}")
        print("CUDA kernels (backend 'cuda'): no template choices to tune; their tiles are fixed in csrc/cuda.")
        return 0
    if torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    elif triton_interpreted():
        device = torch.device("cpu")
        print("tune: no GPU; running in the Triton interpreter with wall-clock times (a plumbing check only)",
              file=sys.stderr)
    else:
        print("tune: no CUDA GPU here: the tuner times the kernels on the GPU present "
              "(TRITON_INTERPRET=1 runs its plumbing on the CPU)", file=sys.stderr)
        return 2
    split = [s.strip() for s in args.dtype.split(",") if s.strip()]
    bad = [d for d in split if d not in _DTYPES] + [lay for lay in args.layout.split(",") if lay not in _LAYOUTS]
    if bad:
        ap.error(f"unknown dtype/layout {bad}: dtypes {list(_DTYPES)}, layouts {list(_LAYOUTS)}")
    timer = None if device.type != "cuda" else (lambda calls: device_time_us(calls, args.rep_ms))
    results = tune(_models(args.models), [int(b) for b in args.batch.split(",")], split, args.layout.split(","),
                   device, [k for k in args.kernels.split(",") if k] or None, args.budget, timer, args.resolution)
    path = write_table(results, device, args.out)
    print(f"tune: wrote {path}")
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
