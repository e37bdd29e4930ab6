"""How much of a converted B0 batch-1 forward (1 thread) is Python's cyclic GC: forwards with gc enabled vs
gc.disable(), interleaved in one process, thread CPU time, median of --reps reps of --inner forwards; and the
collections per forward (gc.get_stats before/after)."""
import argparse
import gc
import statistics
import time

import torch
import torchvision

import effkernels

p = argparse.ArgumentParser()
p.add_argument("--reps", type=int, default=11)
p.add_argument("--inner", type=int, default=10)
a = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)
model = effkernels.convert(torchvision.models.efficientnet_b0(weights=None).eval(), backend="cpu")
model = model.to(memory_format=torch.channels_last)
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
print("gc thresholds", gc.get_threshold(), "objects tracked", len(gc.get_objects()))
with torch.no_grad():
    for _ in range(5):
        model(x)
    before = [s["collections"] for s in gc.get_stats()]
    for _ in range(100):
        model(x)
    after = [s["collections"] for s in gc.get_stats()]
    print("collections per 100 forwards (gen0, gen1, gen2):", [b - a_ for a_, b in zip(before, after)])
    ts = {"gc on": [], "gc off": []}
    for _ in range(a.reps):
        for k in ts:
            (gc.enable if k == "gc on" else gc.disable)()
            t0 = time.thread_time()
            for _ in range(a.inner):
                model(x)
            ts[k].append((time.thread_time() - t0) / a.inner * 1e3)
    gc.enable()
for k, v in ts.items():
    print(f"{k}: forward median {statistics.median(v):.2f} ms (min {min(v):.2f}, {a.reps} x {a.inner})")
