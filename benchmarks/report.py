"""Turn pytest-benchmark JSON from this suite into a markdown report and a PNG plot.

Two timings per row on CUDA: launch (back-to-back eager calls) and device (the same calls replayed
from a CUDA graph); the per-level tables show both, speedups are given for each, and GB/s, % of copy
bandwidth and TFLOP/s use device time. On the CPU device = launch and the tables show one time.
The model level shows latency and images/s per provider, and the plot img/s across phi per batch.

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

from bench_config import LEVELS, PROVIDERS

# Summary groups: the levels, with the op level's pointwise cases (fused 1x1 GEMM vs a plain matmul that
# does less work) kept apart so they do not mix into the op-level speedups.
PW = "op-pw"
GROUPS = ("op", PW, "block", "model")


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
            e.setdefault("setup_s", e.get("compile_s"))  # results written before setup_s replaced compile_s
            timed.append(e)
    return timed, data["effkernels"]["outcomes"]


def on_cuda(data) -> bool:
    return (data["effkernels"].get("device") or {}).get("device") == "cuda"


def group_of(r) -> str:
    """The summary group of a row or outcome: its level, or PW for the op level's pointwise cases."""
    if r.get("level") == "op" and (r.get("kind") == "pointwise" or "-pw-" in r.get("case", "")):
        return PW
    return r.get("level")


def _geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def speedups(timed):
    """{(basis, group, phi, provider): geomean speedup vs eager over the cases}, basis "launch" or
    "device" (rows timed on both; on the CPU the two are equal); sets each row's vs_eager, vs_compile
    (launch) and vs_eager_dev, vs_compile_dev (device, None where either side has no device time).
    group is the level, or PW for the pointwise cases (there eager is the plain matmul); at the model
    level the geomean covers EfficientNet-B{phi} (every batch), not the extra models."""
    by_case = defaultdict(dict)
    for r in timed:
        by_case[(r["level"], r["case"])][r["provider"]] = r
    per_phi = defaultdict(list)
    for r in timed:
        base = by_case[(r["level"], r["case"])]
        for basis, key, suffix in (("launch", "median_s", ""), ("device", "device_s", "_dev")):
            for ref in ("eager", "compile"):
                other = base.get(ref, {}).get(key)
                r[f"vs_{ref}{suffix}"] = other / r[key] if other and r.get(key) else None
            if r[f"vs_eager{suffix}"] and (r["level"] != "model" or _family(r) is not None):
                per_phi[(basis, group_of(r), r["phi"], r["provider"])].append(r[f"vs_eager{suffix}"])
    return {k: _geomean(v) for k, v in per_phi.items()}


def _t(s):
    if s is None:
        return "-"
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.3f} s"


def _x(v):
    return f"{v:.2f}x" if v else "-"


def _n(v, fmt):
    return "-" if v is None else format(v, fmt)


def _cell_both(geo, group, p, prov, cuda: bool) -> str:
    """A summary cell: the device-time speedup, then the launch-time one in parentheses (CUDA); on the
    CPU one speedup."""
    launch = geo.get(("launch", group, p, prov))
    if not cuda:
        return _x(launch)
    device = geo.get(("device", group, p, prov))
    return f"{_x(device)} ({_x(launch)})" if device or launch else "-"


def summary_table(data, timed, outcomes, geo) -> list:
    cuda = on_cuda(data)
    phis = sorted({r["phi"] for r in timed} | {o["phi"] for o in outcomes})
    lines = ["| level | provider | " + " | ".join(f"B{p}" for p in phis) + " | timed | wrong | error | skipped |",
             "|---|---|" + "---|" * len(phis) + "---|---|---|---|"]
    for level in LEVELS:
        lines += _summary_rows(level, level, phis, timed, outcomes,
                               lambda p, prov, level=level: _cell_both(geo, level, p, prov, cuda))
    return lines


def _summary_rows(group, label, phis, timed, outcomes, cell, providers=PROVIDERS) -> list:
    lines = []
    for prov in providers:
        n_t = sum(1 for r in timed if group_of(r) == group and r["provider"] == prov)
        n = {s: sum(1 for o in outcomes if group_of(o) == group and o["provider"] == prov and o["status"] == s)
             for s in ("wrong", "error", "skipped")}
        if not n_t and not n["wrong"] and not n["error"]:  # skipped everywhere: listed under its level
            continue
        lines.append(f"| {label} | {prov} | " + " | ".join(cell(p, prov) for p in phis) +
                     f" | {n_t} | {n['wrong']} | {n['error']} | {n['skipped']} |")
    return lines


def pointwise_table(data, timed, outcomes, geo) -> list:
    """The op level's pointwise cases: provider time / plain matmul (eager) time, geomean per phi
    (the open target: fused 1x1 GEMM within 1.10 of torch.matmul); empty when none ran."""
    if not any(group_of(r) == PW for r in timed + outcomes):
        return []
    cuda = on_cuda(data)
    phis = sorted({r["phi"] for r in timed + outcomes if group_of(r) == PW})

    def ratio(basis, p, prov):
        v = geo.get((basis, PW, p, prov))
        return f"{1 / v:.2f}" if v else "-"

    def cell(p, prov):
        if prov == "eager":
            return "-"
        return f"{ratio('device', p, prov)} ({ratio('launch', p, prov)})" if cuda else ratio("launch", p, prov)

    text = ("Geometric mean over the expand and project 1x1 convs of each phi of provider median / eager median, "
            "where eager is torch.matmul of the same GEMM WITHOUT the fusion (the channels_last input viewed as "
            "[N*H*W, C_in] times w.t(): no bias, activation, SE scale or residual), so it does less work than the "
            "fused op. Lower is better; 1.00 = as fast as the plain library GEMM (cuBLAS / oneDNN), the target "
            "is <= 1.10. The compile row is torch.compile of that same plain GEMM."
            + (" Device time first, launch time in parentheses." if cuda else ""))
    return (["## Summary: fused 1x1 GEMM time / plain matmul time (op level, pointwise cases)", "", text, "",
             "| cases | provider | " + " | ".join(f"B{p}" for p in phis) + " | timed | wrong | error | skipped |",
             "|---|---|" + "---|" * len(phis) + "---|---|---|---|"]
            + _summary_rows(PW, "1x1 GEMM", phis, timed, outcomes, cell) + [""])


def summaries(data, timed, outcomes, geo) -> list:
    """The speedup-vs-eager summary (left out when only pointwise cases ran), then the pointwise one."""
    table = summary_table(data, timed, outcomes, geo)
    pw = pointwise_table(data, timed, outcomes, geo)
    lines = []
    if len(table) > 2 or not pw:
        how = ("device time (CUDA graph replay), launch time (back-to-back eager calls) in parentheses"
               if on_cuda(data) else "CPU: device = launch")
        lines += [f"## Summary: speedup vs eager (geometric mean over the cases of each phi; {how})", ""]
        lines += table + [""]
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
    batches = c.get("model_batches")
    lines.append(f"- dtype {c.get('dtype', '?')}, {c.get('layout', '?')}, batch {c.get('batch', '?')}"
                 + (f" (model level: {', '.join(map(str, batches))})" if batches and list(batches) != [c.get("batch")] else "")
                 + f", mode {c.get('mode', '?')}, resolution {c.get('resolution') or 'paper (per phi)'}")
    if len(cfgs) > 1:
        lines.append(f"- merged from {len(cfgs)} pytest sessions (run.py passes)")
    backends = d.get("backends") or {}
    if backends:
        lines.append("- effkernels backends: " + "; ".join(f"{k}: {'yes' if v[0] else 'no'}" for k, v in backends.items()))
    timing = ("Launch = rounds of back-to-back eager calls, as an eager user sees them (medians of pytest-benchmark "
              "rounds). Device = the same calls captured in a CUDA graph and replayed (median over replays): kernel "
              "time with no host in it; GB/s, % of copy bandwidth and TFLOP/s use it, or launch time where a "
              "provider has none (the reason is listed under its table). " if on_cuda(data) else
              "Times are medians of pytest-benchmark rounds of back-to-back calls; on the CPU device time = "
              "launch time, so there is one time column. ")
    lines += ["", timing +
              "Bytes = every input (activations and weights) read once + every output written once: the floor, "
              "so at block and model level GB/s and % of copy bandwidth understate the real traffic. "
              "FLOPs = conv and matmul FLOPs counted by torch.utils.flop_counter on the eager module. "
              "Speedups are eager (or compile) time / provider time on the same case. Kernels (CUDA) = GPU "
              "kernels, copies and memsets of one call (torch.profiler); ops (CPU) = torch operators called from "
              "Python in one call. Setup = building the provider (convert, torch.compile, ONNX export, a "
              "runtime's session) and its first call (compilation, autotuning, JIT). Peak memory = device memory "
              "allocated during one call beyond the inputs and weights (GPU only).", ""]
    return lines


def _row_cells(r, cuda: bool) -> str:
    """The measured cells of an op or block row."""
    timing = (f"{_t(r['median_s'])} | {_t(r.get('device_s'))} | {_x(r['vs_eager_dev'])} | {_x(r['vs_eager'])} | "
              f"{_x(r['vs_compile_dev'])}" if cuda else f"{_t(r['median_s'])} | {_x(r['vs_eager'])} | {_x(r['vs_compile'])}")
    rate = "" if not cuda or r.get("device_s") else "*"
    return (f"{timing} | {_n(r['gbps'], '.1f')}{rate} | {_n(r['pct_copy_bw'], '.1f')}{rate} | "
            f"{_n(r['tflops'], '.3f')}{rate} | {_n(r.get('kernels'), 'd')} | "
            + (f"{_n(r['peak_mem_mb'], '.1f')} | " if cuda else "") + f"{_n(r.get('setup_s'), '.2f')} |")


def _model_cells(r, cuda: bool) -> str:
    """The measured cells of a model row."""
    cells = f"{_t(r['median_s'])} | {_n(r.get('images_per_s'), '.1f')} | "
    if cuda:
        cells += f"{_t(r.get('device_s'))} | {_n(r.get('images_per_s_device'), '.1f')} | "
    cells += f"{_x(r['vs_eager'])} | {_x(r['vs_compile'])} | {_n(r.get('kernels'), 'd')} | "
    return cells + (f"{_n(r['peak_mem_mb'], '.1f')} | " if cuda else "") + f"{_n(r.get('setup_s'), '.2f')} |"


def _table_head(level: str, cuda: bool) -> list:
    count = "kernels" if cuda else "ops"
    if level == "model":
        cols = (["model", "batch", "provider", "latency", "img/s"] + (["device latency", "img/s (device)"] if cuda else [])
                + ["vs eager", "vs compile", count] + (["peak MB"] if cuda else []) + ["setup s"])
    else:
        cols = (["case", "provider"] + (["launch", "device", "vs eager (device)", "vs eager (launch)", "vs compile (device)"]
                                        if cuda else ["time", "vs eager", "vs compile"])
                + ["GB/s", "% copy BW", "TFLOP/s", count] + (["peak MB"] if cuda else []) + ["setup s"])
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def _case_rows(case_rows, case_outcomes, label, cuda: bool, level: str) -> list:
    """The table rows of one case: each provider timed, wrong or in error, in provider order."""
    lines = []
    for prov in PROVIDERS:
        r = next((r for r in case_rows if r["provider"] == prov), None)
        o = next((o for o in case_outcomes if o["provider"] == prov and o["status"] in ("wrong", "error")), None)
        if r:
            lines.append(f"| {label} | {prov} | " + (_model_cells(r, cuda) if level == "model" else _row_cells(r, cuda)))
        elif o and o["status"] == "wrong":
            lines.append(f"| {label} | {prov} | **WRONG**: rel err {o['rel_err']:.2e} > tol {o['tol']:.1e}, not timed |")
        elif o:
            lines.append(f"| {label} | {prov} | **ERROR**: {o['reason'][:160]} |")
    return lines


def _notes(lt, lo, level: str, cuda: bool) -> list:
    """What did not run at this level, and why some rows have no device time."""
    lines = []
    skipped = defaultdict(list)
    for o in lo:
        if o["status"] == "skipped":
            skipped[(o["provider"], o["reason"])].append(o["case"])
    if skipped:
        lines += [f"Not run at the {level} level:", ""]
        for (prov, reason), cases in sorted(skipped.items()):
            lines.append(f"- {prov}, {len(cases)} case(s): {reason}")
        lines.append("")
    no_device = defaultdict(list)
    for r in lt:
        if cuda and not r.get("device_s"):
            no_device[(r["provider"], r.get("device_note") or "not measured")].append(r["case"])
    if no_device:
        lines += ["No device time (rates marked * use launch time):", ""]
        for (prov, note), cases in sorted(no_device.items()):
            lines.append(f"- {prov}, {len(cases)} case(s): {note}")
        lines.append("")
    return lines


def kernels_section(lt, level: str, top: int) -> list:
    """Per case and provider: what one call launched (most frequent first, at most `top` names)."""
    rows = [r for r in lt if r.get("kernel_names")]
    if not rows:
        return []
    what = rows[0].get("kernels_what", "")
    lines = ["<details><summary>" + f"{level} level: what one call launches ({what})" + "</summary>", ""]
    for r in rows:
        names = ", ".join(f"`{n}` x{c}" for n, c in r["kernel_names"][:top])
        more = len(r["kernel_names"]) - top
        lines.append(f"- {r['case']}, {r['provider']}: {r['kernels']} in all: {names}"
                     + (f", and {more} more names" if more > 0 else ""))
    return lines + ["", "</details>", ""]


def _model_key(r):
    return (r["phi"], r.get("model") or "", r.get("batch") or 0)


def render(data) -> str:
    timed, outcomes = rows_of(data)
    geo = speedups(timed)
    cuda = on_cuda(data)
    lines = _header(data)
    lines += summaries(data, timed, outcomes, geo)
    for level in LEVELS:
        lt = [r for r in timed if r["level"] == level]
        lo = [o for o in outcomes if o["level"] == level]
        if not lt and not lo:
            continue
        lines += [f"## {level} level", ""]
        if level == "model":
            lines += ["Latency = one batch, launch time; img/s = batch / latency" + (
                "; device latency = the same call replayed from a CUDA graph (X+graph and compile-max-autotune "
                "replay graphs themselves: their latency is their graph's). vs eager / vs compile use latency."
                if cuda else ". vs eager / vs compile use latency."), ""]
            lines += _table_head(level, cuda)
            cases = sorted({(_model_key(r), r["case"]) for r in lt + lo if r["status"] != "skipped"})
            for key, case in cases:
                r0 = next(r for r in lt + lo if r["case"] == case)
                label = f"{(r0.get('model') or case).replace('efficientnet_', '')} {r0.get('resolution') or ''} px | {r0.get('batch', '?')}"
                lines += _case_rows([r for r in lt if r["case"] == case], [o for o in lo if o["case"] == case],
                                    label, cuda, level)
            lines.append("")
        for phi in ([] if level == "model" else sorted({r["phi"] for r in lt} | {o["phi"] for o in lo if o["status"] != "skipped"})):
            res = next((r["resolution"] for r in lt if r["phi"] == phi), None)
            lines += [f"### B{phi}" + (f" ({res} px)" if res else ""), ""] + _table_head(level, cuda)
            cases = []
            for r in lt + lo:
                if r["phi"] == phi and r["case"] not in cases:
                    cases.append(r["case"])
            for case in cases:
                cr = [r for r in lt if r["case"] == case]
                co = [o for o in lo if o["case"] == case]
                lines += _case_rows(cr, co, (cr or co)[0]["shape"], cuda, level)
            lines.append("")
        if level == "op" and any(group_of(r) == PW for r in lt + lo):
            lines += [("pw-expand / pw-project rows: eager and compile are the plain GEMM (torch.matmul, no bias, "
                       "activation, scale or residual), the effkernels rows the fused 1x1 conv; their \"vs eager\" is "
                       "plain matmul time / fused time, and their bytes add the bias, SE scale and residual the "
                       "fused op reads (those stay fixed per case, not rotated like the input)."), ""]
        lines += _notes(lt, lo, level, cuda)
        lines += kernels_section(lt, level, top=8 if level == "model" else 12)
    return "\n".join(lines)


def _family(r):
    """The phi of a model-level row of torchvision's / timm's EfficientNet-B{phi}, else None."""
    model = r.get("model") or ""
    return r["phi"] if model == f"efficientnet_b{r['phi']}" else None


def plot(data, path) -> str:
    """Speedup vs eager over phi, one panel per level (device time on CUDA), one line per provider; at the
    model level images/s (latency) over phi, one panel per batch size. Returns a note."""
    try:
        import matplotlib  # noqa: PLC0415
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as e:
        return f"no plot: matplotlib is not importable ({e})"
    timed, _ = rows_of(data)
    geo = speedups(timed)
    basis = "device" if on_cuda(data) else "launch"
    groups = [g for g in GROUPS if g != "model" and any(group_of(r) == g for r in timed)]
    models = [r for r in timed if r["level"] == "model" and _family(r) is not None]
    batches = sorted({r["batch"] for r in models})
    panels = [("speedup", g) for g in groups] + [("img/s", b) for b in batches]
    if not panels:
        return "no plot: nothing was timed"
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (kind, what) in zip(axes[0], panels):
        if kind == "speedup":
            pw = what == PW  # plotted as time / plain matmul time, like its summary table
            phis = sorted({r["phi"] for r in timed if group_of(r) == what})
            for prov in PROVIDERS:
                pts = sorted((phi, 1 / v if pw else v) for (b, g, phi, p), v in geo.items()
                             if b == basis and g == what and p == prov and v)
                if pts:
                    ax.plot([p for p, _ in pts], [v for _, v in pts], marker="o", label=prov,
                            linestyle="--" if prov == "eager" else "-")
            ax.axhline(1.0, color="gray", linewidth=0.8)
            if pw:
                ax.axhline(1.1, color="gray", linewidth=0.8, linestyle=":")
            ax.set_title(("op level: 1x1 GEMM vs plain matmul" if pw else f"{what} level") + f" ({basis} time)")
            ax.set_ylabel("time / plain matmul time (geomean)" if pw else "speedup vs eager (geomean)")
        else:
            rows = [r for r in models if r["batch"] == what]
            phis = sorted({r["phi"] for r in rows})
            for prov in PROVIDERS:
                pts = sorted((r["phi"], r["images_per_s"]) for r in rows if r["provider"] == prov)
                if pts:
                    ax.plot([p for p, _ in pts], [v for _, v in pts], marker="o", label=prov,
                            linestyle="--" if prov == "eager" else "-")
            ax.set_yscale("log")
            ax.set_title(f"model level, batch {what}: images/s (latency)")
            ax.set_ylabel("images / s")
        ax.set_xticks(phis, [f"B{p}" for p in phis])
        ax.set_xlim(phis[0] - 0.5, phis[-1] + 0.5)
        ax.set_xlabel("phi (EfficientNet-B0..B7)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
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
