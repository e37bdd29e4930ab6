"""The measurement behind choose_path (csrc/cpu/mbconv_block.cpp): mbconv_packed with path "fused" and
"unfused" forced, on every expand block of torchvision B0 at 224 px (random fp32 weights, channels_last),
interleaved, median of --reps. One thread: CPU time of the thread (robust to other load on the machine);
more threads: wall clock. Run from the repository root: python benchmarks/results/2026-11-30-cpu/block_paths.py
"""
import argparse
import statistics
import time

import torch

from effkernels import scaling
from effkernels._common import ACTIVATIONS

ops = torch.ops.effkernels
p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=1)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--reps", type=int, default=5)
a = p.parse_args()
torch.set_num_threads(a.threads)
clock = time.thread_time if a.threads == 1 else time.perf_counter
SILU, SIG = ACTIVATIONS["silu"], ACTIVATIONS["sigmoid"]
tot = {"fused": 0.0, "unfused": 0.0}
for b in scaling.block_shapes(0, 224):
    if b.expand_ratio == 1:
        continue
    cin, ce, co, k, s, hw, oh = b.in_channels, b.expanded_channels, b.out_channels, b.kernel, b.stride, b.in_hw, b.out_hw
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.1

    x = r(a.batch, cin, hw, hw).contiguous(memory_format=torch.channels_last)
    eb, dw, db, pb = r(ce), r(ce, 1, k, k), r(ce), r(co)
    w1, b1, w2, b2 = r(b.squeeze_channels, ce), r(b.squeeze_channels), r(ce, b.squeeze_channels), r(ce)
    ewp, pwp = ops.pack_pointwise_weight(r(ce, cin)), ops.pack_pointwise_weight(r(co, ce))
    pad = (k - 1) // 2
    fns = {path: (lambda path=path: ops.mbconv_packed(x, ewp, eb, dw, db, s, pad, pad, oh, oh, w1, b1, w2, b2, pwp,
                                                      pb, b.residual, SILU, SILU, SIG, path))
           for path in tot}
    inner = max(1, int(1e7 / (a.batch * ce * hw * hw * max(cin, 16))))
    ts = {path: [] for path in fns}
    with torch.no_grad():
        for _ in range(a.reps):
            for path, fn in fns.items():
                t0 = clock()
                for _ in range(inner):
                    fn()
                ts[path].append((clock() - t0) / inner * 1e3)
    med = {path: statistics.median(v) for path, v in ts.items()}
    for path in tot:
        tot[path] += med[path]
    print(f"n{a.batch} t{a.threads} {cin:4d}->{ce:5d}->{co:4d} k{k}s{s} {hw:3d}px  fused {med['fused']:7.3f} ms  "
          f"unfused {med['unfused']:7.3f} ms  unfused/fused {med['unfused'] / med['fused']:.2f}  "
          f"auto={ops.mbconv_path(a.batch, cin, hw, hw, ce, k, s, True)}", flush=True)
print("sum over B0's expand blocks (ms):", {path: round(v, 2) for path, v in tot.items()})
