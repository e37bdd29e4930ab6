"""What the compiled Triton kernels look like on a GPU, without one.

    python -m effkernels.tools.kernel_report [--arch 80 90] [--module dwconv_bn_act] [--json]

For every variant in each effkernels.triton module's aot_variants(): compile for sm_<arch>
(effkernels.triton._aot), then read the cubin with the cuobjdump that ships with triton:
registers, stack and spill instructions (STL/LDL: local memory), static shared memory, barriers,
and the global loads/stores by width (LDG.E.128 = 128-bit vector loads; .U16 / plain = scalar).
Read it when tuning: no spills, 128-bit loads on the channels_last paths, and no barriers inside
the tap loop (a layout conversion through shared memory).
"""
from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "0"  # compiling needs the real @triton.jit kernels, not the interpreter

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import Counter  # noqa: E402

import triton  # noqa: E402

from effkernels.triton import _aot  # noqa: E402

_BIN = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
_RES = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")
_MEM = re.compile(r"\b(LDG|STG|STL|LDL|BAR)(\.[\w.]+)?")


def _width(suffix: str) -> str:
    """Bits moved by an LDG/STG from its SASS suffix (.E.128 -> 128, .E.U16 -> 16, .E -> 32)."""
    for bits in ("128", "64", "U16", "S16", "U8", "S8"):
        if suffix.endswith("." + bits):
            return bits.lstrip("US")
    return "32"


def analyse(cubin: bytes) -> dict:
    """Resource usage and memory instructions of a one-kernel cubin."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        res = subprocess.run([os.path.join(_BIN, "cuobjdump"), "-res-usage", f.name],
                             capture_output=True, text=True, check=True).stdout
        sass = subprocess.run([os.path.join(_BIN, "cuobjdump"), "-sass", f.name],
                              capture_output=True, text=True, check=True).stdout
    regs, stack, shared, local = map(int, _RES.search(res).groups())
    ops = Counter()
    for op, suffix in _MEM.findall(sass):
        ops[op if op in ("STL", "LDL", "BAR") else f"{op}.{_width(suffix or '')}"] += 1
    return dict(regs=regs, stack=stack, shared=shared, local=local, spill_insts=ops["STL"] + ops["LDL"],
                barriers=ops["BAR"],
                loads={k[4:]: v for k, v in sorted(ops.items()) if k.startswith("LDG.")},
                stores={k[4:]: v for k, v in sorted(ops.items()) if k.startswith("STG.")})


def report(archs, modules=None):
    """One row per (module, variant, arch); compile errors become rows with an "error" field."""
    rows = []
    for mod in _aot.kernel_modules():
        short = mod.__name__.rsplit(".", 1)[1]
        if modules and short not in modules:
            continue
        for kernel, sig, consts in mod.aot_variants():
            dtype = next(t for t in sig.values() if t.startswith("*")).split(":")[0][1:]
            tile = dict(consts)  # tile sizes, kernel constexprs, and the strides specialized to 1
            for arch in archs:
                row = dict(module=short, kernel=_aot.base_jit(kernel).__name__, dtype=dtype, arch=arch, tile=tile,
                           div16=sorted(k for k, t in sig.items() if t.endswith(":16") and not t.startswith("*")))
                try:
                    row.update(analyse(_aot.compile_variant(kernel, sig, consts, arch).asm["cubin"]))
                except Exception as e:  # report every variant, the broken ones included
                    row["error"] = f"{type(e).__name__}: {e}".splitlines()[0]
                rows.append(row)
    return rows


def _fmt(counts: dict) -> str:
    return " ".join(f"{bits}b:{n}" for bits, n in sorted(counts.items(), key=lambda kv: -int(kv[0]))) or "-"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m effkernels.tools.kernel_report", description=__doc__.split("\n")[0])
    ap.add_argument("--arch", type=int, nargs="+", default=[80, 90], help="SM versions (default: 80 90)")
    ap.add_argument("--module", nargs="+", help="only these effkernels.triton modules, e.g. dwconv_bn_act")
    ap.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    args = ap.parse_args(argv)
    rows = report(args.arch, args.module)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print("| kernel | dtype | arch | tile | ints % 16 == 0 | regs | spills (stack B / STL+LDL) | smem B | "
              "barriers | global loads (bits:count) | global stores |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            tile = " ".join(f"{k}={v}" for k, v in r["tile"].items())
            head = f"| {r['kernel']} | {r['dtype']} | sm_{r['arch']} | {tile} | {' '.join(r['div16']) or '-'} |"
            if "error" in r:
                print(f"{head} ERROR: {r['error']} |||||||")
                continue
            print(f"{head} {r['regs']} | "
                  f"{r['stack']} / {r['spill_insts']} | {r['shared']} | {r['barriers']} | {_fmt(r['loads'])} | "
                  f"{_fmt(r['stores'])} |")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
