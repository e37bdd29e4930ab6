"""B0's stem at batch 1 (3 -> 32, 3x3 stride 2, 224 px, fp32, channels_last, 1 thread): F.conv2d + in-place
SiLU (what ConvBNAct ran) vs oneDNN's conv with SiLU as a post-op (torch.ops.mkldnn._convolution_pointwise,
plain weight and a weight reordered once by _reorder_convolution_weight). Thread CPU time, median of --reps
interleaved reps of --inner calls each; max |diff| vs the float64 reference.
Run: python benchmarks/results/2026-11-30-cpu-batch1-c/ab_stem.py
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--reps", type=int, default=15)
p.add_argument("--inner", type=int, default=50)
a = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
w, b = torch.randn(32, 3, 3, 3) * 0.3, torch.randn(32)
wr = torch.ops.mkldnn._reorder_convolution_weight(w, [1, 1], [2, 2], [1, 1], 1, list(x.shape))
ref = F.silu(F.conv2d(x.double(), w.double(), b.double(), 2, 1))
y0 = F.conv2d(x, w, b, 2, 1)
fns = {
    "conv2d alone": lambda: F.conv2d(x, w, b, 2, 1),
    "silu_ alone (on a conv output)": lambda: F.silu(y0, inplace=True),
    "conv2d + silu_": lambda: F.silu(F.conv2d(x, w, b, 2, 1), inplace=True),
    "mkldnn pointwise": lambda: torch.ops.mkldnn._convolution_pointwise(x, w, b, [1, 1], [2, 2], [1, 1], 1, "swish", [], None),
    "mkldnn pointwise, reordered w": lambda: torch.ops.mkldnn._convolution_pointwise(x, wr, b, [1, 1], [2, 2], [1, 1], 1,
                                                                                    "swish", [], None),
}
with torch.no_grad():
    for k, fn in list(fns.items())[2:]:
        print(f"{k}: max |diff| vs float64 {(fn().double() - ref).abs().max().item():.2e}")
    ts = {k: [] for k in fns}
    for _ in range(a.reps):
        for k, fn in fns.items():
            t0 = time.thread_time()
            for _ in range(a.inner):
                fn()
            ts[k].append((time.thread_time() - t0) / a.inner * 1e3)
for k, v in ts.items():
    print(f"{k}: median {statistics.median(v):.3f} ms (min {min(v):.3f}, max {max(v):.3f}, {a.reps} reps x {a.inner})")
