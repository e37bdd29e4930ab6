"""Run the benchmark sweep and render the report.

    python benchmarks/run.py --out benchmarks/out                 # quick sweep (make bench)
    python benchmarks/run.py --out DIR --mode full --budget 200   # GPU: every shape, bounded in time
    python benchmarks/run.py --out DIR -- --bench-phi 0-3         # after --: more pytest options

Two pytest processes: first eager, the effkernels providers, the CUDA-graph providers and the ONNX
runtimes, then torch.compile (of eager and of the converted models, then max-autotune); each goes phi by
phi across the levels (bench_config.tier). Writes DIR/bench.json (their pytest-benchmark
JSON merged), DIR/report.md and DIR/plot.png, then prints the report (--summary: only its summary
table). With --budget, each pass gets a share of the seconds left: a soft budget inside pytest (cases
that would start later skip, the JSON is still written) and a hard limit at most 60 s after it
(SIGINT, then SIGKILL); the sweep ends by --budget + 60 s and always renders what it measured, also
when this script is interrupted. Choose providers with --providers, not --bench-providers.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from bench_config import PROVIDERS, default_providers, tier
from effkernels import _config as effk_config

HERE = os.path.dirname(os.path.abspath(__file__))
# (pass name, its providers, its share of a budget)
PASSES = (("kernels", tuple(p for p in PROVIDERS if tier(p) == 0), 0.45),
          ("compile", tuple(p for p in PROVIDERS if tier(p) > 0), 0.55))
GRACE = 60  # seconds between a pass's soft budget and its hard limit


def _stop(proc, already_signalled: bool) -> int:
    """Let pytest finish on SIGINT (a Ctrl-C or an outer timeout reaches it too), then force it."""
    for sig in ([None] if already_signalled else []) + [signal.SIGINT]:
        if sig is not None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    return proc.wait()


def _run_pass(name, providers, args, tmp, soft, hard):
    """Run one pytest; return (exit code, interrupted). SIGINT stops pytest cleanly: it still writes
    its JSON. An interrupt of this script (Ctrl-C, an outer timeout) ends the sweep after this pass."""
    cmd = [sys.executable, "-m", "pytest", HERE, "--benchmark-only", "-v", "-rfE", "-p", "no:cacheprovider",
           f"--bench-mode={args.mode}", f"--bench-level={args.levels}", f"--bench-providers={','.join(providers)}",
           f"--benchmark-json={os.path.join(tmp, name + '.json')}",
           f"--bench-outcomes={os.path.join(tmp, name + '.outcomes.json')}",
           "--benchmark-columns=median,iqr,rounds,iterations", "--benchmark-sort=name", *args.pytest_args]
    if soft:
        cmd.append(f"--bench-budget={soft:.0f}")
    print(f"\n=== pass {name}" + (f": budget {soft:.0f} s, hard limit {hard:.0f} s" if soft else "")
          + "\n$ " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=os.path.dirname(HERE))
    interrupted = False
    try:
        code = proc.wait(timeout=hard)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as e:
        interrupted = isinstance(e, KeyboardInterrupt)
        print(f"=== pass {name}: " + ("interrupted" if interrupted else "past its hard limit; interrupting")
              + " (pytest still writes its JSON)", flush=True)
        code = _stop(proc, already_signalled=interrupted)
    print(f"=== pass {name}: pytest exit code {code}", flush=True)
    return code, interrupted


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "out"), help="output folder (default benchmarks/out)")
    ap.add_argument("--mode", default=effk_config.get("EFFKERNELS_BENCH_MODE"), choices=("quick", "full"))
    ap.add_argument("--levels", default="op,block,model", help="comma list of levels (default: all)")
    ap.add_argument("--providers", help="comma list of providers (default: the mode's, bench_config.default_providers)")
    ap.add_argument("--budget", type=float, default=0.0, help="seconds for the whole sweep (default: none)")
    ap.add_argument("--summary", action="store_true", help="print only the report's summary table")
    ap.add_argument("pytest_args", nargs="*", help="after --: more pytest options, e.g. --bench-batch 1")
    args = ap.parse_args(argv)
    args.providers = args.providers or ",".join(default_providers(args.mode))
    wanted = {p.strip() for p in args.providers.split(",") if p.strip()}
    if not wanted or wanted - set(PROVIDERS):
        ap.error(f"--providers: expected a comma list of {', '.join(PROVIDERS)}, got {args.providers!r}")
    passes = [(name, [p for p in provs if p in wanted], share) for name, provs, share in PASSES]
    passes = [p for p in passes if p[1]]
    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="effk-bench-")
    start, codes = time.monotonic(), {}
    try:
        for i, (name, provs, share) in enumerate(passes):
            soft = hard = None
            if args.budget:  # this pass's share of what is left; the sweep ends by budget + GRACE
                elapsed = time.monotonic() - start
                soft = max(5.0, (args.budget - elapsed) * share / sum(p[2] for p in passes[i:]))
                hard = max(15.0, min(soft + GRACE, args.budget + GRACE - elapsed))
            codes[name], interrupted = _run_pass(name, provs, args, tmp, soft, hard)
            if interrupted:
                break
        inputs = [path for name, _, _ in passes for path in (os.path.join(tmp, f"{name}.json"),
                                                              os.path.join(tmp, f"{name}.outcomes.json"))
                  if os.path.exists(path)]
        if not inputs:
            print("run: no pass wrote any result", file=sys.stderr)
            return 1
        sys.path.insert(0, HERE)
        import report  # noqa: PLC0415

        rargs = [*inputs, "--out", args.out, "--merged", os.path.join(args.out, "bench.json")]
        report.main(rargs + (["--summary"] if args.summary else []))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("pytest exit codes: " + ", ".join(f"{name} {c}" for name, c in codes.items())
          + " (0 all passed, 1 a provider was wrong or raised: see the report)")
    return max((c for c in codes.values() if c != 5), default=0)  # 5: nothing collected


if __name__ == "__main__":
    sys.exit(main())
