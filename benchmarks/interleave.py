"""Model-level providers timed side by side in one process, interleaved: the comparison a shared machine
needs, where the load changes from one minute to the next.

    python benchmarks/interleave.py --batch 1,8 --threads 2 --providers eager,compile,effkernels-cpu,onnxruntime,openvino
    python benchmarks/interleave.py --model tf_efficientnet_b0 --dtype bf16 --batch 8 --providers eager,effkernels-cpu,openvino

Each provider is built and checked as in the sweep (bench_harness.prepare: the same model, random
weights, reference and tolerance; a wrong provider is not timed). Then --rounds rounds: each times
every provider in turn, the order rotating by one each round, for about --round-time seconds of
back-to-back calls on the inputs' ring. It prints, per batch size, each provider's median time per
call over the rounds, the spread of the rounds, and the speedup against eager. The benchmark settings
(effkernels/_config.py: threads, dtype, layout, resolution) apply; the options here override them.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time

import pytest
import torch

import bench_cases
import bench_config
import bench_harness


class _Timer:
    """Rounds of back-to-back calls of one provider, sized once to last about `seconds`."""

    def __init__(self, ready, seconds: float, device: str):
        self.fn, self.cycle, self.device = ready.built.fn, itertools.cycle(ready.ring), device
        t0, k = time.perf_counter(), 0
        while k < 3 or time.perf_counter() - t0 < 0.05:  # warm calls, and the size of a round
            self.fn(next(self.cycle))
            k += 1
            bench_harness._sync(device)
        self.calls = max(1, round(seconds / ((time.perf_counter() - t0) / k)))

    def per_call(self) -> float:
        bench_harness._sync(self.device)
        t0 = time.perf_counter()
        for _ in range(self.calls):
            self.fn(next(self.cycle))
        bench_harness._sync(self.device)
        return (time.perf_counter() - t0) / self.calls


def compare(case, providers, cfg, rounds: int, seconds: float) -> list:
    """Markdown lines: the providers' medians on `case`, interleaved."""
    ready, lines = {}, []
    for p in providers:
        try:
            ready[p] = bench_harness.prepare(case, p, cfg, record_wrong=lambda info: None)
        except pytest.skip.Exception as e:
            lines.append(f"- {p}: not run: {e.msg}")
        except pytest.fail.Exception as e:
            lines.append(f"- {p}: {e.msg}")
    timers = {p: _Timer(r, seconds, cfg.device) for p, r in ready.items()}
    times = {p: [] for p in ready}
    order = list(ready)
    for r in range(rounds):
        for p in order[r % len(order):] + order[:r % len(order)]:
            times[p].append(timers[p].per_call())
    med = {p: statistics.median(t) for p, t in times.items()}
    head = [f"### {case.shape}, {cfg.dtype} {cfg.layout}, {torch.get_num_threads()} threads, {rounds} rounds "
            f"interleaved", "", "| provider | median per call | rounds p25-p75 | vs eager | rel err | setup s |",
            "|---|---|---|---|---|---|"]
    for p, t in times.items():
        q = statistics.quantiles(t, n=4) if len(t) > 1 else [t[0]] * 3
        vs = f"{med['eager'] / med[p]:.2f}x" if "eager" in med else "-"
        head.append(f"| {p} | {med[p] * 1e3:.2f} ms | {q[0] * 1e3:.2f}-{q[2] * 1e3:.2f} ms | {vs} | "
                    f"{ready[p].extra['rel_err']:.1e} | {ready[p].extra['setup_s']:.1f} |")
    return head + [""] + lines + ([""] if lines else [])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="b0", help=f"b0..b7 or one of {', '.join(bench_config.EXTRA_MODELS)} (default b0)")
    ap.add_argument("--batch", default="1", help="comma list of batch sizes (default 1)")
    ap.add_argument("--providers", default="eager,compile,effkernels-cpu,onnxruntime,openvino")
    ap.add_argument("--dtype", help="fp32 | bf16 | fp16 (default: EFFKERNELS_BENCH_DTYPE, else the sweep's)")
    ap.add_argument("--threads", help="torch intra-op threads, also the runtimes' (default: EFFKERNELS_BENCH_THREADS)")
    ap.add_argument("--resolution", help="input size (default: the model's paper resolution)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--round-time", type=float, default=0.3, help="seconds of calls per provider per round")
    args = ap.parse_args(argv)
    extra = args.model in bench_config.EXTRA_MODELS
    if not extra and args.model not in [f"b{p}" for p in range(8)]:
        ap.error(f"--model: expected b0..b7 or one of {', '.join(bench_config.EXTRA_MODELS)}, got {args.model!r}")
    flags = {"level": "model", "model-batch": args.batch, "providers": args.providers, "dtype": args.dtype,
             "threads": args.threads, "resolution": args.resolution, "models": args.model if extra else "none",
             "model-phi": None if extra else args.model[1:]}
    try:
        cfg = bench_config.from_flags(flags.get)
    except ValueError as e:
        ap.error(str(e))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    phis = () if extra else cfg.model_phis
    cases = bench_cases.model_cases(phis, cfg.model_batches, cfg.models, cfg.resolution)
    with torch.no_grad():
        for case in cases:
            print("\n".join(compare(case, cfg.providers, cfg, args.rounds, args.round_time)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
