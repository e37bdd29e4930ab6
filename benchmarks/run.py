"""Run the benchmark sweep, one pytest process per level, and render the report.

    python benchmarks/run.py --out benchmarks/out                 # quick sweep (make bench)
    python benchmarks/run.py --out DIR --mode full --budget 200   # GPU: every shape, bounded in time
    python benchmarks/run.py --out DIR -- --bench-phi 0-3         # after --: more pytest options

Writes DIR/bench.json (the levels' pytest-benchmark JSON merged), DIR/report.md and DIR/plot.png,
then prints the report (--summary: only its summary table). With --budget, each level gets a share
of the seconds left: a soft budget inside pytest (later cases skip, the JSON is still written) and a
hard limit (SIGINT, then SIGKILL) at most 60 s after it; the whole sweep ends by --budget + 60 s and
always renders what it measured (also when this script is interrupted).
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

HERE = os.path.dirname(os.path.abspath(__file__))
SHARES = {"op": 0.35, "block": 0.25, "model": 0.40}
GRACE = 60  # seconds between a level's soft budget and its hard limit


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


def _run_level(level, args, tmp, soft, hard):
    """Run one level's pytest; return (exit code, interrupted). SIGINT stops pytest cleanly: it still
    writes its JSON. An interrupt of this script (Ctrl-C, an outer timeout) stops the sweep here."""
    json_path = os.path.join(tmp, f"{level}.json")
    outcomes = os.path.join(tmp, f"{level}.outcomes.json")
    cmd = [sys.executable, "-m", "pytest", HERE, "--benchmark-only", "-v", "-rfE", "-p", "no:cacheprovider",
           f"--bench-mode={args.mode}", f"--bench-level={level}", f"--benchmark-json={json_path}",
           f"--bench-outcomes={outcomes}", "--benchmark-columns=median,iqr,rounds,iterations",
           "--benchmark-sort=name", *args.pytest_args]
    if soft:
        cmd.append(f"--bench-budget={soft:.0f}")
    print(f"\n=== level {level}" + (f": budget {soft:.0f} s, hard limit {hard:.0f} s" if soft else "")
          + "\n$ " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=os.path.dirname(HERE))
    interrupted = False
    try:
        code = proc.wait(timeout=hard)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as e:
        interrupted = isinstance(e, KeyboardInterrupt)
        print(f"=== level {level}: " + ("interrupted" if interrupted else "past its hard limit; interrupting")
              + " (pytest still writes its JSON)", flush=True)
        code = _stop(proc, already_signalled=interrupted)
    print(f"=== level {level}: pytest exit code {code}", flush=True)
    return code, interrupted


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "out"), help="output folder (default benchmarks/out)")
    ap.add_argument("--mode", default=os.environ.get("EFFK_BENCH_MODE", "quick"), choices=("quick", "full"))
    ap.add_argument("--levels", default="op,block,model", help="comma list of levels, run in this order")
    ap.add_argument("--budget", type=float, default=0.0, help="seconds for the whole sweep (default: none)")
    ap.add_argument("--summary", action="store_true", help="print only the report's summary table")
    ap.add_argument("pytest_args", nargs="*", help="after --: more pytest options, e.g. --bench-batch 1")
    args = ap.parse_args(argv)
    levels = [lv.strip() for lv in args.levels.split(",") if lv.strip()]
    bad = [lv for lv in levels if lv not in SHARES]
    if bad or not levels:
        ap.error(f"--levels: expected a comma list of {', '.join(SHARES)}, got {args.levels!r}")
    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="effk-bench-")
    start, codes = time.monotonic(), {}
    try:
        for i, level in enumerate(levels):
            soft = hard = None
            if args.budget:  # this level's share of what is left; the sweep ends by budget + GRACE
                left = args.budget - (time.monotonic() - start)
                soft = max(5.0, left * SHARES[level] / sum(SHARES[lv] for lv in levels[i:]))
                hard = max(15.0, min(soft + GRACE, args.budget + GRACE - (time.monotonic() - start)))
            codes[level], interrupted = _run_level(level, args, tmp, soft, hard)
            if interrupted:
                break
        inputs = [p for lv in levels for p in (os.path.join(tmp, f"{lv}.json"), os.path.join(tmp, f"{lv}.outcomes.json"))
                  if os.path.exists(p)]
        if not inputs:
            print("run: no level wrote any result", file=sys.stderr)
            return 1
        sys.path.insert(0, HERE)
        import report  # noqa: PLC0415

        rargs = [*inputs, "--out", args.out, "--merged", os.path.join(args.out, "bench.json")]
        report.main(rargs + (["--summary"] if args.summary else []))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("pytest exit codes: " + ", ".join(f"{lv} {c}" for lv, c in codes.items())
          + " (0 all passed, 1 a provider was wrong or raised: see the report)")
    return max((c for c in codes.values() if c != 5), default=0)  # 5: nothing collected


if __name__ == "__main__":
    sys.exit(main())
