"""Converted B0, batch 1, 1 thread: --n forwards after a warm-up (for perf record / perf stat)."""
import sys

import torch
import torchvision

import effkernels

torch.set_num_threads(1)
torch.manual_seed(0)
model = effkernels.convert(torchvision.models.efficientnet_b0(weights=None).eval(), backend="cpu")
model = model.to(memory_format=torch.channels_last)
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
with torch.no_grad():
    for _ in range(5):
        model(x)
    for _ in range(n):
        model(x)
