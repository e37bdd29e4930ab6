"""Turn pytest-benchmark JSON from this suite into a markdown report and a PNG plot.

    python benchmarks/report.py BENCH.json [MORE.json ...] [--out DIR] [--merged PATH] [--summary]

Inputs: pytest-benchmark JSON files written with --benchmark-json (their "effkernels" section holds
the device, the config and the cases that were not timed), or the --bench-outcomes files of runs
that timed nothing. Several inputs are merged (run.py runs two pytest passes).
Writes DIR/report.md and DIR/plot.png (DIR defaults to the first input's folder; the plot is left
out, with a note, when matplotlib is not installed) and prints the report, or with --summary only
the summary table. --merged PATH also writes the merged JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import defaultdict

LEVELS = ("op", "block", "model")
# Summary groups: the levels, with the op level's pointwise cases (fused 1x1 GEMM vs a plain matmul that
# does less work) kept apart so they do not mix into the op-level speedups.
PW = "op-pw"
GROUPS = ("op", PW, "block", "model")
PROVIDERS = ("eager", "compile", "compile-max-autotune", "effkernels-triton", "effkernels-cuda", "effkernels-cpu")


def merge(paths):
    """One dict in pytest-benchmark's layout with a combined "effkernels" section."""
    out = {"machine_info": {}, "commit_info": {}, "benchmarks": [], "datetime": None,
           "effkernels": {"device": None, "configs": [], "outcomes": []}}
    seen = set()
    for path in paths:
        try:
            with open(path) as f:
                d = json.load(f)
        except ValueError:  # pytest-benchmark leaves --benchmark-json empty when nothing was timed
            print(f"report: {path} is empty or not JSON; left out", file=sys.stderr)
            continue
        effk = d.get("effkernels", d if "outcomes" in d else {})
        if "benchmarks" in d:
            out["benchmarks"] += d["benchmarks"]
            out["machine_info"] = out["machine_info"] or d.get("machine_info", {})
            out["commit_info"] = out["commit_info"] or d.get("commit_info", {})
            out["datetime"] = out["datetime"] or d.get("datetime")
        if effk.get("device") and not out["effkernels"]["device"]:
            out["effkernels"]["device"] = effk["device"]
        configs = effk.get("configs") or ([effk["config"]] if effk.get("config") else [])
        out["effkernels"]["configs"] += [c for c in configs if c not in out["effkernels"]["configs"]]
        for o in effk.get("outcomes", []):
            key = (o["level"], o["case"], o["provider"])
            if key not in seen:
                seen.add(key)
                out["effkernels"]["outcomes"].append(o)
    return out


def rows_of(data):
    """Timed rows (extra_info + median) and non-timed outcomes, one dict each."""
    timed = []
    for b in data["benchmarks"]:
        e = dict(b.get("extra_info", {}))
        if e.get("status") == "ok":
            e["median_s"] = b["stats"]["median"]
            e["iqr_s"] = b["stats"]["iqr"]
            timed.append(e)
    return timed, data["effkernels"]["outcomes"]


def group_of(r) -> str:
    """The summary group of a row or outcome: its level, or PW for the op level's pointwise cases."""
    if r.get("level") == "op" and (r.get("kind") == "pointwise" or "-pw-" in r.get("case", "")):
        return PW
    return r.get("level")


def _geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def speedups(timed):
    """{(group, phi, provider): geomean speedup vs eager over the cases}; sets per-row vs eager / vs compile.
    group is the level, or PW for the pointwise cases (there eager is the plain matmul)."""
    by_case = defaultdict(dict)
    for r in timed:
        by_case[(r["level"], r["case"])][r["provider"]] = r["median_s"]
    per_phi = defaultdict(list)
    for r in timed:
        base = by_case[(r["level"], r["case"])]
        r["vs_eager"] = base["eager"] / r["median_s"] if "eager" in base else None
        r["vs_compile"] = base["compile"] / r["median_s"] if "compile" in base else None
        if r["vs_eager"]:
            per_phi[(group_of(r), r["phi"], r["provider"])].append(r["vs_eager"])
    return {k: _geomean(v) for k, v in per_phi.items()}


def _t(s):
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.3f} s"


def _x(v):
    return f"{v:.2f}x" if v else "-"


def _n(v, fmt):
    return "-" if v is None else format(v, fmt)


def summary_table(data, timed, outcomes, geo) -> list:
    phis = sorted({r["phi"] for r in timed} | {o["phi"] for o in outcomes})
    lines = ["| level | provider | " + " | ".join(f"B{p}" for p in phis) + " | timed | wrong | error | skipped |",
             "|---|---|" + "---|" * len(phis) + "---|---|---|---|"]
    for level in LEVELS:
        lines += _summary_rows(level, level, phis, timed, outcomes,
                               lambda p, prov, level=level: _x(geo.get((level, p, prov))))
    return lines


def _summary_rows(group, label, phis, timed, outcomes, cell, providers=PROVIDERS) -> list:
    lines = []
    for prov in providers:
        n_t = sum(1 for r in timed if group_of(r) == group and r["provider"] == prov)
        n = {s: sum(1 for o in outcomes if group_of(o) == group and o["provider"] == prov and o["status"] == s)
             for s in ("wrong", "error", "skipped")}
        if not n_t and not n["wrong"] and not n["error"] and not n["skipped"]:
            continue
        lines.append(f"| {label} | {prov} | " + " | ".join(cell(p, prov) for p in phis) +
                     f" | {n_t} | {n['wrong']} | {n['error']} | {n['skipped']} |")
    return lines


def pointwise_table(timed, outcomes, geo) -> list:
    """The op level's pointwise cases: provider time / plain matmul (eager) time, geomean per phi
    (the open target: fused 1x1 GEMM within 1.10 of torch.matmul); empty when none ran."""
    if not any(group_of(r) == PW for r in timed + outcomes):
        return []
    phis = sorted({r["phi"] for r in timed + outcomes if group_of(r) == PW})

    def cell(p, prov):
        v = geo.get((PW, p, prov))
        return "-" if prov == "eager" else f"{1 / v:.2f}" if v else "-"

    text = ("Geometric mean over the expand and project 1x1 convs of each phi of provider median / eager median, "
            "where eager is torch.matmul of the same GEMM WITHOUT the fusion (the channels_last input viewed as "
            "[N*H*W, C_in] times w.t(): no bias, activation, SE scale or residual), so it does less work than the "
            "fused op. Lower is better; 1.00 = as fast as the plain library GEMM (cuBLAS / oneDNN), the target "
            "is <= 1.10. The compile row is torch.compile of that same plain GEMM.")
    return (["## Summary: fused 1x1 GEMM time / plain matmul time (op level, pointwise cases)", "", text, "",
             "| cases | provider | " + " | ".join(f"B{p}" for p in phis) + " | timed | wrong | error | skipped |",
             "|---|---|" + "---|" * len(phis) + "---|---|---|---|"]
            + _summary_rows(PW, "1x1 GEMM", phis, timed, outcomes, cell) + [""])


def summaries(data, timed, outcomes, geo) -> list:
    """The speedup-vs-eager summary (left out when only pointwise cases ran), then the pointwise one."""
    table = summary_table(data, timed, outcomes, geo)
    pw = pointwise_table(timed, outcomes, geo)
    lines = []
    if len(table) > 2 or not pw:
        lines += ["## Summary: speedup vs eager (geometric mean over the cases of each phi)", ""] + table + [""]
        if pw:
            lines += ["The op rows leave out the pointwise (1x1 GEMM) cases: see the next table.", ""]
    return lines + pw


def _header(data) -> list:
    effk = data["effkernels"]
    d = effk.get("device") or {}
    cfgs = effk.get("configs") or [{}]
    c = cfgs[0]
    lines = ["# effkernels benchmark report", ""]
    lines.append(f"- device: {(d.get('name', '?') + ' ' + d.get('capability', '')).strip()}, torch {d.get('torch', '?')}, "
                 f"triton {d.get('triton', '?')}, torch built for CUDA {d.get('cuda', '?')}; run {d.get('date_utc', data.get('datetime'))}")
    lines.append(f"- measured copy bandwidth (read + write, this run): {d.get('copy_bw_gbps', '?')} GB/s"
                 + (f"; torch CPU threads: {d.get('cpu_threads')}" if d.get("device") == "cpu" else ""))
    lines.append(f"- dtype {c.get('dtype', '?')}, {c.get('layout', '?')}, batch {c.get('batch', '?')}, "
                 f"mode {c.get('mode', '?')}, resolution {c.get('resolution') or 'paper (per phi)'}")
    if len(cfgs) > 1:
        lines.append(f"- merged from {len(cfgs)} pytest sessions (run.py passes)")
    backends = d.get("backends") or {}
    if backends:
        lines.append("- effkernels backends: " + "; ".join(f"{k}: {'yes' if v[0] else 'no'}" for k, v in backends.items()))
    lines += ["",
              "Bytes = every input (activations and weights) read once + every output written once: the floor. "
              "GB/s and % of copy bandwidth use it, so at block and model level they understate the real traffic. "
              "FLOPs = conv and matmul FLOPs counted by torch.utils.flop_counter on the eager module. "
              "Times are medians of pytest-benchmark rounds; speedups are eager (or compile) median / provider "
              "median on the same case. Peak memory = device memory allocated during one call beyond the "
              "inputs and weights (GPU only).", ""]
    return lines


def render(data) -> str:
    timed, outcomes = rows_of(data)
    geo = speedups(timed)
    lines = _header(data)
    lines += summaries(data, timed, outcomes, geo)
    for level in LEVELS:
        lt = [r for r in timed if r["level"] == level]
        lo = [o for o in outcomes if o["level"] == level]
        if not lt and not lo:
            continue
        lines += [f"## {level} level", ""]
        for phi in sorted({r["phi"] for r in lt} | {o["phi"] for o in lo if o["status"] != "skipped"}):
            res = next((r["resolution"] for r in lt if r["phi"] == phi), None)
            lines += [f"### B{phi}" + (f" ({res} px)" if res else ""), "",
                      "| case | provider | median | vs eager | vs compile | GB/s | % copy BW | TFLOP/s | peak MB | compile s |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            cases = []
            for r in lt + lo:
                if r["phi"] == phi and r["case"] not in cases:
                    cases.append(r["case"])
            for case in cases:
                for prov in PROVIDERS:
                    r = next((r for r in lt if r["case"] == case and r["provider"] == prov), None)
                    o = next((o for o in lo if o["case"] == case and o["provider"] == prov
                              and o["status"] in ("wrong", "error")), None)
                    if r:
                        lines.append(f"| {r['shape']} | {prov} | {_t(r['median_s'])} | {_x(r['vs_eager'])} | "
                                     f"{_x(r['vs_compile'])} | {_n(r['gbps'], '.1f')} | {_n(r['pct_copy_bw'], '.1f')} | "
                                     f"{_n(r['tflops'], '.3f')} | {_n(r['peak_mem_mb'], '.1f')} | {_n(r['compile_s'], '.2f')} |")
                    elif o and o["status"] == "wrong":
                        lines.append(f"| {o['shape']} | {prov} | **WRONG**: rel err {o['rel_err']:.2e} > tol "
                                     f"{o['tol']:.1e}, not timed | | | | | | | |")
                    elif o:
                        lines.append(f"| {o['shape']} | {prov} | **ERROR**: {o['reason'][:160]} | | | | | | | |")
            lines.append("")
        if level == "op" and any(group_of(r) == PW for r in lt + lo):
            lines += [("pw-expand / pw-project rows: eager and compile are the plain GEMM (torch.matmul, no bias, "
                       "activation, scale or residual), the effkernels rows the fused 1x1 conv; their \"vs eager\" is "
                       "plain matmul time / fused time, and their bytes add the bias, SE scale and residual the "
                       "fused op reads (those stay fixed per case, not rotated like the input)."), ""]
        skipped = defaultdict(list)
        for o in lo:
            if o["status"] == "skipped":
                skipped[(o["provider"], o["reason"])].append(o["case"])
        if skipped:
            lines += [f"Not run at the {level} level:", ""]
            for (prov, reason), cases in sorted(skipped.items()):
                lines.append(f"- {prov}, {len(cases)} case(s): {reason}")
            lines.append("")
    return "\n".join(lines)


def plot(data, path) -> str:
    """Speedup vs eager over phi, one panel per level, one line per provider. Returns a note."""
    try:
        import matplotlib  # noqa: PLC0415
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as e:
        return f"no plot: matplotlib is not importable ({e})"
    timed, _ = rows_of(data)
    geo = speedups(timed)
    groups = [g for g in GROUPS if any(group_of(r) == g for r in timed)]
    if not groups:
        return "no plot: nothing was timed"
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, group in zip(axes[0], groups):
        pw = group == PW  # plotted as time / plain matmul time, like its summary table
        phis = sorted({r["phi"] for r in timed if group_of(r) == group})
        for prov in PROVIDERS:
            pts = sorted((phi, 1 / v if pw else v) for (g, phi, p), v in geo.items() if g == group and p == prov and v)
            if pts:
                ax.plot([p for p, _ in pts], [v for _, v in pts], marker="o", label=prov,
                        linestyle="--" if prov == "eager" else "-")
        ax.axhline(1.0, color="gray", linewidth=0.8)
        if pw:
            ax.axhline(1.1, color="gray", linewidth=0.8, linestyle=":")
        ax.set_title("op level: 1x1 GEMM vs plain matmul" if pw else f"{group} level")
        ax.set_xticks(phis, [f"B{p}" for p in phis])
        ax.set_xlim(phis[0] - 0.5, phis[-1] + 0.5)
        ax.set_xlabel("phi (EfficientNet-B0..B7)")
        ax.set_ylabel("time / plain matmul time (geomean)" if pw else "speedup vs eager (geomean)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    d = data["effkernels"].get("device") or {}
    c = (data["effkernels"].get("configs") or [{}])[0]
    fig.suptitle(f"{d.get('name', '?')}, {c.get('dtype', '?')} {c.get('layout', '')}, batch {c.get('batch', '?')}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot: {path}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="pytest-benchmark JSON files (and/or --bench-outcomes files)")
    ap.add_argument("--out", help="folder for report.md and plot.png (default: the first input's folder)")
    ap.add_argument("--merged", help="also write the merged JSON here")
    ap.add_argument("--summary", action="store_true", help="print only the summary table")
    args = ap.parse_args(argv)
    paths = [p for p in args.inputs if os.path.exists(p)]
    for p in args.inputs:
        if p not in paths:
            print(f"report: {p} does not exist (that run timed nothing or was killed); left out", file=sys.stderr)
    if not paths:
        print("report: no input to render", file=sys.stderr)
        return 1
    data = merge(paths)
    out = args.out or os.path.dirname(os.path.abspath(paths[0]))
    os.makedirs(out, exist_ok=True)
    if args.merged:
        with open(args.merged, "w") as f:
            json.dump(data, f, indent=1)
    text = render(data)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(text + "\n")
    note = plot(data, os.path.join(out, "plot.png"))
    if args.summary:
        timed, outcomes = rows_of(data)
        print("\n".join(summaries(data, timed, outcomes, speedups(timed))))
    else:
        print(text)
    print(f"\nreport: {os.path.join(out, 'report.md')}; {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
