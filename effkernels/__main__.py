"""Command line: `python -m effkernels scaling [--latency-ms X ...]` | `python -m effkernels backends`."""
from __future__ import annotations

import argparse
import math
import sys

import torch


def scaling_table(phis=range(8), batch: int = 1) -> str:
    """Markdown table: each phi under the paper's alpha**phi rule and the official B0..B7 table,
    with params, GFLOPs and the FLOPs growth per step of phi."""
    from .models import efficientnet
    from .profile import profile
    from .scaling import flops_factor, variant

    lines = [f"FLOPs = 2 x MACs of convs and linears, batch {batch}; predicted growth per phi step "
             f"alpha*beta^2*gamma^2 = {flops_factor():.3f}", ""]
    for rule in ("compound", "official"):
        lines += [f"### rule = {rule}", "",
                  "| phi | depth | width | resolution | params (M) | GFLOPs | x prev |",
                  "|---|---|---|---|---|---|---|"]
        prev = first = None
        for phi in phis:
            v = variant(phi, rule)
            with torch.device("meta"):
                model = efficientnet(phi=phi, rule=rule)
            p = profile(model, v.resolution, batch)
            growth = f"{p.flops / prev:.2f}" if prev else "-"
            prev = p.flops
            first = first or (phi, p.flops)
            lines.append(f"| {phi:g} | {v.depth:.3f} | {v.width:.3f} | {v.resolution} | {p.params / 1e6:.2f} "
                         f"| {p.flops / 1e9:.2f} | {growth} |")
        if phi > first[0]:
            mean = (prev / first[1]) ** (1 / (phi - first[0]))
            lines.append(f"\nFLOPs growth per step of phi (geometric mean): {mean:.2f}x (the seed claims ~2x)")
        lines.append("")
    return "\n".join(lines)


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def search_table(args) -> str:
    """Markdown table of the constrained search (effkernels.profile.scaling_candidates): every phi
    looked at, its cost and measured latency, then the largest phi that meets every target."""
    from .profile import scaling_candidates

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    latency_s = None if args.latency_ms is None else args.latency_ms / 1e3
    targets = [f"{name} <= {value:g} {unit}" for name, value, unit in (
        ("GFLOPs", args.gflops, ""), ("memory", args.memory_mb, "MB"), ("latency", args.latency_ms, "ms"))
        if value is not None and value != math.inf]
    how = "device time of CUDA-graph replays" if device == "cuda" else "median wall time"
    lines = [f"Largest phi (rule {args.rule}, step {args.step:g}) with {', '.join(targets) or 'no target'}; batch "
             f"{args.batch}, {args.dtype}, MBConv blocks on backend {args.backend!r}, {device}; latency = {how} of "
             "one batch, warm (channels_last, random weights)", "",
             "| phi | resolution | GFLOPs | memory MB | latency ms | misses |", "|---|---|---|---|---|---|"]
    best = None
    for c in scaling_candidates(args.gflops * 1e9, args.memory_mb * 2 ** 20, args.batch, args.rule, args.step,
                                args.max_phi, _DTYPES[args.dtype], latency_s=latency_s, device=device,
                                backend=args.backend, resolution=args.resolution):
        ch = c.choice
        lat = "-" if ch.latency_s is None else f"{ch.latency_s * 1e3:.2f}"
        lines.append(f"| {ch.phi:g} | {ch.resolution} | {ch.profile.flops / 1e9:.3f} | "
                     f"{ch.profile.memory_bytes / 2 ** 20:.1f} | {lat} | {c.misses or '-'} |")
        if not c.misses:
            best = ch
    lines.append("")
    lines.append("largest phi meeting every target: " + (f"{best.phi:g} ({best.resolution} px)" if best else
                                                          "none (phi 0 already misses)"))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m effkernels")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sc = sub.add_parser("scaling", help="compound scaling table for phi 0..7 under both rules; with a target "
                        "(--latency-ms, --gflops, --memory-mb) the largest phi that meets it")
    sc.add_argument("--max-phi", type=float, default=7, help="largest phi shown / searched (default 7)")
    sc.add_argument("--latency-ms", type=float, help="latency target per batch, measured on --device")
    sc.add_argument("--gflops", type=float, default=math.inf, help="FLOPs target per batch, in GFLOPs (2 x MACs)")
    sc.add_argument("--memory-mb", type=float, default=math.inf, help="parameters + activations target, in MiB")
    sc.add_argument("--batch", type=int, default=1)
    sc.add_argument("--dtype", choices=tuple(_DTYPES), default="fp32")
    sc.add_argument("--device", choices=("cpu", "cuda"), help="where latency is measured (default: cuda if present)")
    sc.add_argument("--backend", default="auto", help="backend of the MBConv blocks (default auto)")
    sc.add_argument("--resolution", type=int, help="input size for every phi (default: each variant's own)")
    sc.add_argument("--rule", choices=("compound", "official"), default="compound")
    sc.add_argument("--step", type=float, default=0.25, help="phi grid of the search (default 0.25)")
    sub.add_parser("backends", help="which backends work here, and why not")
    args = parser.parse_args(argv)
    if args.cmd == "scaling":
        if args.latency_ms is None and args.gflops == math.inf and args.memory_mb == math.inf:
            if not args.max_phi.is_integer():
                parser.error("--max-phi: the table without a target takes an integer")
            print(scaling_table(range(int(args.max_phi) + 1)))
        else:
            print(search_table(args))
    else:
        from .backends import backends_available

        for name, (ok, why) in backends_available().items():
            print(f"{name:7s} {'yes' if ok else 'no ':3s}  {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
