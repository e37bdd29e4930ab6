"""What the compiled Triton kernels look like on a GPU, without one.

    python -m effkernels.tools.kernel_report [--arch 80 90] [--module dwconv_bn_act] [--json]

For every variant in each effkernels.triton module's aot_variants(): compile for sm_<arch>
(effkernels.triton._aot), then read the cubin with the cuobjdump that ships with triton:
registers, stack and spill instructions (STL/LDL: local memory), shared memory, barriers,
the global loads/stores by width (LDG.E.128 = 128-bit vector loads; .U16 / plain = scalar),
the occupancy that registers, shared memory and threads allow, and the hot loop.

Hot loop: the largest loop of the SASS (a backward branch; its body runs once per iteration).
A module may define `hot_loop(kernel, constexprs) -> (elements, iterations)`: the output elements
one thread finishes per iteration (a fraction when several iterations make one output, e.g. one
tap row of k), and the iterations per program (None when they depend on run-time sizes). The
report then gives the loop's SASS instructions per output element, and with `iterations` the
whole program's instructions (loop x iterations + the rest, once) per output element: the issue
cost a change must lower. The loop's LDG/MUFU counts are per iteration.

Occupancy (sm_90 limits, the ones that bind for these kernels; sm_80 has 164 KB of shared memory
per SM): 64K registers per SM allocated per warp in units of 256, 228 KB of shared memory per SM
with 1 KB reserved per block, 2048 threads and 32 blocks per SM.
Read it when tuning: no spills, 128-bit loads on the channels_last paths, no barriers inside the
hot loop (a layout conversion through shared memory), and few instructions per output.
"""
from __future__ import annotations

import os

if __name__ == "__main__":  # compiling needs the real @triton.jit kernels: set before triton is imported
    os.environ["TRITON_INTERPRET"] = "0"

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import Counter  # noqa: E402

_RES = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")
_MEM = re.compile(r"\b(LDG|STG|STL|LDL|BAR)(\.[\w.]+)?")
_INSN = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.+?)\s*;")
_BRANCH = re.compile(r"\bBRA(?:\.\w+)*\s+(?:`\()?(0x[0-9a-f]+|\.L_x_\d+)")

# Per-SM limits used for occupancy, by architecture: (shared memory bytes usable by blocks, shared
# memory reserved per block). Registers, threads and blocks are the same on sm_80 and sm_90.
_SMEM = {80: (167936, 1024), 90: (233472, 1024)}
_REGS_PER_SM, _REG_UNIT, _THREADS_PER_SM, _BLOCKS_PER_SM, _WARPS_PER_SM = 65536, 256, 2048, 32, 64


def _width(suffix: str) -> str:
    """Bits moved by an LDG/STG from its SASS suffix (.E.128 -> 128, .E.U16 -> 16, .E -> 32)."""
    for bits in ("128", "64", "U16", "S16", "U8", "S8"):
        if suffix.endswith("." + bits):
            return bits.lstrip("US")
    return "32"


def instructions(sass: str) -> list:
    """[(address, text)] of a one-kernel SASS listing, padding NOPs dropped (predicates kept in text)."""
    out = []
    for addr, text in _INSN.findall(sass):
        if _opcode(text) != "NOP":
            out.append((int(addr, 16), text))
    return out


def _opcode(text: str) -> str:
    words = text.split()
    op = words[1] if words[0].startswith("@") else words[0]
    return op


def loops(insns: list) -> list:
    """[(start address, branch address)] of every loop: a branch to an earlier (or its own) instruction,
    except the `BRA self` trap compilers put after the last EXIT."""
    out = []
    for i, (addr, text) in enumerate(insns):
        m = _BRANCH.search(text)
        if not m or not m.group(1).startswith("0x"):
            continue
        target = int(m.group(1), 16)
        trap = target == addr and all(_opcode(t) == "BRA" for _, t in insns[i:])
        if target <= addr and not trap:
            out.append((target, addr))
    return out


def classify(texts) -> dict:
    """Counts of the instruction classes that decide a memory- or issue-bound kernel's speed."""
    c = Counter()
    for text in texts:
        op = _opcode(text)
        base = op.split(".")[0]
        c["total"] += 1
        if base in ("LDG", "STG", "LDS", "STS", "LDGSTS", "LDSM", "LDC", "ULDC", "RED", "ATOM"):
            c[op if base in ("LDG", "STG") else base] += 1
        elif base == "MUFU":
            c["MUFU"] += 1
        elif base in ("FFMA", "FMUL", "FADD", "HFMA2", "HMUL2", "HADD2", "FMNMX", "FSEL", "FSETP"):
            c["fp"] += 1
        elif base in ("F2F", "F2FP", "I2F", "F2I", "PRMT"):
            c["convert"] += 1
        elif base in ("BAR", "SYNCS", "WARPSYNC", "DEPBAR"):
            c["sync"] += 1
        elif op.startswith("IMAD.WIDE") or base in ("IADD3", "LEA", "IMAD", "IABS", "ISETP", "SHF", "LOP3",
                                                    "PLOP3", "SEL", "MOV", "VIADD", "IMNMX", "SHFL", "I2FP"):
            c["int/addr"] += 1
        else:
            c["other"] += 1
    return dict(c)


def hot_loop_stats(sass: str) -> dict | None:
    """The largest loop's instruction count and classes, and the whole listing's count; None without a loop."""
    insns = instructions(sass)
    found = loops(insns)
    if not found:
        return None
    start, end = max(found, key=lambda se: se[1] - se[0])
    body = [t for a, t in insns if start <= a <= end]
    return dict(loop_insts=len(body), total_insts=len(insns), loop_classes=classify(body))


def occupancy(regs: int, shared: int, warps: int, arch: int = 90) -> dict:
    """Blocks and warps per SM that registers, shared memory and threads allow, and the limiting one."""
    smem_sm, smem_reserved = _SMEM.get(arch, _SMEM[90])
    regs_per_warp = -(-max(regs, 1) * 32 // _REG_UNIT) * _REG_UNIT
    limits = {  # on a tie the first is named: threads and blocks are the limits nothing can lift
        "threads": _THREADS_PER_SM // (32 * warps),
        "blocks": _BLOCKS_PER_SM,
        "registers": (_REGS_PER_SM // regs_per_warp) // warps,
        "shared": smem_sm // (shared + smem_reserved) if shared else _BLOCKS_PER_SM,
    }
    blocks = min(limits.values())
    return dict(blocks_per_sm=blocks, occupancy=blocks * warps / _WARPS_PER_SM,
                limited_by=min(limits, key=limits.get))


def analyse(cubin: bytes, shared: int, warps: int, arch: int, hot=None) -> dict:
    """Resource usage, memory instructions, occupancy and hot loop of a one-kernel cubin.

    shared: the kernel's shared memory in bytes (Triton's is dynamic: from its metadata, not the cubin);
    hot: the module's (elements per thread per iteration, iterations per program or None), or None.
    """
    import triton

    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        res = subprocess.run([cuobjdump, "-res-usage", f.name],
                             capture_output=True, text=True, check=True).stdout
        sass = subprocess.run([cuobjdump, "-sass", f.name],
                              capture_output=True, text=True, check=True).stdout
    regs, stack, static_shared, local = map(int, _RES.search(res).groups())
    shared = max(shared, static_shared)
    ops = Counter()
    for op, suffix in _MEM.findall(sass):
        ops[op if op in ("STL", "LDL", "BAR") else f"{op}.{_width(suffix or '')}"] += 1
    row = dict(regs=regs, stack=stack, shared=shared, local=local, spill_insts=ops["STL"] + ops["LDL"],
               barriers=ops["BAR"],
               loads={k[4:]: v for k, v in sorted(ops.items()) if k.startswith("LDG.")},
               stores={k[4:]: v for k, v in sorted(ops.items()) if k.startswith("STG.")},
               **occupancy(regs, shared, warps, arch))
    loop = hot_loop_stats(sass)
    if loop is not None:
        row.update(loop)
        if hot is not None:
            elements, iters = hot
            row["loop_insts_per_output"] = round(loop["loop_insts"] / elements, 2)
            if iters is not None:
                per_program = loop["loop_insts"] * iters + loop["total_insts"] - loop["loop_insts"]
                row["insts_per_output"] = round(per_program / (elements * iters), 2)
    return row


def report(archs, modules=None):
    """One row per (module, variant, arch); compile errors become rows with an "error" field."""
    from effkernels.triton import _aot

    rows = []
    for mod in _aot.kernel_modules():
        short = mod.__name__.rsplit(".", 1)[1]
        if modules and short not in modules:
            continue
        hot_loop = getattr(mod, "hot_loop", None)
        for kernel, sig, consts in mod.aot_variants():
            dtype = next(t for t in sig.values() if t.startswith("*")).split(":")[0][1:]
            tile = dict(consts)  # tile sizes, kernel constexprs, and the strides specialized to 1
            hot = hot_loop(kernel, consts) if hot_loop else None
            for arch in archs:
                row = dict(module=short, kernel=_aot.base_jit(kernel).__name__, dtype=dtype, arch=arch, tile=tile,
                           div16=sorted(k for k, t in sig.items() if t.endswith(":16") and not t.startswith("*")))
                try:
                    ck = _aot.compile_variant(kernel, sig, consts, arch)
                    row.update(analyse(ck.asm["cubin"], ck.metadata.shared, consts.get("num_warps", 4), arch, hot))
                except Exception as e:  # report every variant, the broken ones included
                    row["error"] = f"{type(e).__name__}: {e}".splitlines()[0]
                rows.append(row)
    return rows


def _fmt(counts: dict) -> str:
    return " ".join(f"{bits}b:{n}" for bits, n in sorted(counts.items(), key=lambda kv: -int(kv[0]))) or "-"


def _loop(r: dict) -> str:
    if "loop_insts" not in r:
        return "- | - | -"
    cls = r["loop_classes"]
    wide = sum(v for k, v in cls.items() if k.startswith("LDG.") and k.endswith(".128"))
    parts = [f"{r['loop_insts']} (LDG {sum(v for k, v in cls.items() if k.startswith('LDG.'))}, 128b {wide}, "
             f"LDGSTS {cls.get('LDGSTS', 0)}, "
             f"MUFU {cls.get('MUFU', 0)}, fp {cls.get('fp', 0)}, cvt {cls.get('convert', 0)}, "
             f"int {cls.get('int/addr', 0)}, sync {cls.get('sync', 0)})"]
    parts.append(str(r.get("loop_insts_per_output", "-")))
    parts.append(str(r.get("insts_per_output", "-")))
    return " | ".join(parts)


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
              "occupancy (blocks/SM, limit) | barriers | global loads (bits:count) | global stores | "
              "hot loop SASS (classes) | loop insts / output | all insts / output |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            tile = " ".join(f"{k}={v}" for k, v in r["tile"].items())
            head = f"| {r['kernel']} | {r['dtype']} | sm_{r['arch']} | {tile} | {' '.join(r['div16']) or '-'} |"
            if "error" in r:
                print(f"{head} ERROR: {r['error']} ||||||||||")
                continue
            print(f"{head} {r['regs']} | {r['stack']} / {r['spill_insts']} | {r['shared']} | "
                  f"{r['occupancy']:.0%} ({r['blocks_per_sm']}, {r['limited_by']}) | {r['barriers']} | "
                  f"{_fmt(r['loads'])} | {_fmt(r['stores'])} | {_loop(r)} |")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
