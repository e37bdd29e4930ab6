"""Command line: `python -m effkernels scaling` | `python -m effkernels backends`."""
from __future__ import annotations

import argparse
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m effkernels")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sc = sub.add_parser("scaling", help="compound scaling table for phi 0..7 under both rules")
    sc.add_argument("--max-phi", type=int, default=7)
    sub.add_parser("backends", help="which backends work here, and why not")
    args = parser.parse_args(argv)
    if args.cmd == "scaling":
        print(scaling_table(range(args.max_phi + 1)))
    else:
        from .backends import backends_available

        for name, (ok, why) in backends_available().items():
            print(f"{name:7s} {'yes' if ok else 'no ':3s}  {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
