"""torch.ops.effkernels.se_excite at batch 1 on B0's 16 SE shapes (C_exp, S), fp32, 1 thread: thread CPU time per
call, median of --reps reps of --inner calls, and the sum over the 16 blocks. Run from a tree's root (PYTHONPATH=.),
alternating the trees to compare (each registers the torch library `effkernels`, so one tree per process).
"""
import argparse
import statistics
import time

import torch

import effkernels  # noqa: F401  (loads the extension)

p = argparse.ArgumentParser()
p.add_argument("--reps", type=int, default=9)
p.add_argument("--inner", type=int, default=2000)
a = p.parse_args()
torch.set_num_threads(1)
B0 = [(32, 8), (96, 4), (144, 6), (144, 6), (240, 10), (240, 10), (480, 20), (480, 20), (480, 20), (672, 28),
      (672, 28), (672, 28), (1152, 48), (1152, 48), (1152, 48), (1152, 48)]
g = torch.Generator().manual_seed(0)
total = 0.0
for C, S in sorted(set(B0)):
    args = (torch.rand(1, C, generator=g) * 49, 1 / 49, torch.randn(S, C, generator=g), torch.randn(S, generator=g),
            torch.randn(C, S, generator=g), torch.randn(C, generator=g), 3, 5)  # silu, sigmoid (activation codes)
    f = torch.ops.effkernels.se_excite
    ts = []
    for _ in range(a.reps):
        t0 = time.thread_time()
        for _ in range(a.inner):
            f(*args)
        ts.append((time.thread_time() - t0) / a.inner * 1e6)
    med = statistics.median(ts)
    total += med * B0.count((C, S))
    print(f"C {C:5d} S {S:3d}: {med:6.2f} us per call (median of {a.reps} x {a.inner})")
print(f"sum over B0's 16 SE calls: {total:.1f} us")
