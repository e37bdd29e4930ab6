"""The CPU block's per-call depthwise repack, on / off, in one process: two converted B0s with the same weights,
batch 1, 224 px, fp32, channels_last, 1 thread. "packed per call": the layers fold their depthwise weights
[C, 1, k, k]-contiguous (what _prepare gave the cpu backend before), so mbconv_block.cpp's pack_dw transposes
them on every call; "read in place": tap-major (what _prepare gives now). Interleaved reps of --inner forwards,
thread CPU time, medians; the outputs must match exactly (the same fp32 weights, the same kernel).
"""
import argparse
import statistics
import time

import torch
import torchvision

import effkernels
from effkernels.nn import _base

p = argparse.ArgumentParser()
p.add_argument("--reps", type=int, default=15)
p.add_argument("--inner", type=int, default=10)
a = p.parse_args()
torch.set_num_threads(1)
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)


def build():
    torch.manual_seed(0)
    m = effkernels.convert(torchvision.models.efficientnet_b0(weights=None).eval(), backend="cpu")
    return m.to(memory_format=torch.channels_last)


models = {"packed per call": build(), "read in place": build()}
tap_major = _base.tap_major
with torch.no_grad():
    _base.tap_major = lambda w: w.contiguous()  # the fold of the first model only
    out_packed = models["packed per call"](x)
    _base.tap_major = tap_major
    out_inplace = models["read in place"](x)
    print("outputs equal:", torch.equal(out_packed, out_inplace))
    ts = {k: [] for k in models}
    for _ in range(a.reps):
        for k, m in models.items():
            t0 = time.thread_time()
            for _ in range(a.inner):
                m(x)
            ts[k].append((time.thread_time() - t0) / a.inner * 1e3)
for k, v in ts.items():
    print(f"{k}: forward median {statistics.median(v):.2f} ms (min {min(v):.2f}, {a.reps} x {a.inner})")
d = [p_ - q for p_, q in zip(ts["packed per call"], ts["read in place"])]
print(f"per-rep difference (packed - in place): median {statistics.median(d):.3f} ms")
