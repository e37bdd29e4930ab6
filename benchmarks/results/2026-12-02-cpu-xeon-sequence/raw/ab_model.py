# One process: the converted torchvision model from the effkernels tree at ROOT (its own build of _C), the median of
# 25 timed rounds of max(1, 8 // batch) calls after 10 warm calls, 2 threads.
# usage: python ab_model.py ROOT BATCH fp32|bf16 [torchvision-model [RES]]
import sys, time, statistics as st
sys.path.insert(0, sys.argv[1])
import torch, torchvision
import effkernels
assert effkernels.__file__.startswith(sys.argv[1]), effkernels.__file__
from effkernels.convert import convert
bs = int(sys.argv[2]); dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[sys.argv[3]]
name = sys.argv[4] if len(sys.argv) > 4 else "efficientnet_b0"; res = int(sys.argv[5]) if len(sys.argv) > 5 else 224
torch.set_num_threads(2); torch.manual_seed(0)
m = getattr(torchvision.models, name)().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu").to(dt)
x = torch.randn(bs, 3, res, res).to(dt).contiguous(memory_format=torch.channels_last)
reps, ts = max(1, 8 // bs), []
with torch.no_grad():
    for _ in range(10): cm(x)
    for _ in range(25):
        t0 = time.perf_counter()
        for _ in range(reps): cm(x)
        ts.append((time.perf_counter() - t0) / reps * 1e3)
print(f"{st.median(ts):.3f}")
