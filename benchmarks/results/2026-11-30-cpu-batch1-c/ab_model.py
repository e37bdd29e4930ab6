"""Converted torchvision B0 forward, batch 1, 224 px, fp32, channels_last, cpu backend, 1 thread: thread CPU time
per forward, median of --reps reps of --inner forwards. One tree per process (PYTHONPATH=<tree>); alternate trees.
"""
import argparse
import statistics
import time

import torch
import torchvision

import effkernels

p = argparse.ArgumentParser()
p.add_argument("--reps", type=int, default=9)
p.add_argument("--inner", type=int, default=10)
a = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)
model = effkernels.convert(torchvision.models.efficientnet_b0(weights=None).eval(), backend="cpu")
model = model.to(memory_format=torch.channels_last)
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
with torch.no_grad():
    for _ in range(5):
        model(x)
    ts = []
    for _ in range(a.reps):
        t0 = time.thread_time()
        for _ in range(a.inner):
            model(x)
        ts.append((time.thread_time() - t0) / a.inner * 1e3)
print(f"{effkernels.__file__}: forward median {statistics.median(ts):.2f} ms (min {min(ts):.2f}, {a.reps} x {a.inner})")
