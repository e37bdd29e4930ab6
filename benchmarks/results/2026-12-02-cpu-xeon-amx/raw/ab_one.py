import sys, time, statistics as st
sys.path.insert(0, sys.argv[1])
import torch, torchvision
from effkernels.convert import convert
import effkernels; assert effkernels.__file__.startswith(sys.argv[1]), effkernels.__file__
bs = int(sys.argv[2]); dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[sys.argv[3]]
torch.set_num_threads(2); torch.manual_seed(0)
m = torchvision.models.efficientnet_b0().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu").to(dt)
x = torch.randn(bs, 3, 224, 224).to(dt).contiguous(memory_format=torch.channels_last)
ts = []
with torch.no_grad():
    for _ in range(10): cm(x)
    for _ in range(25):
        t0 = time.perf_counter()
        for _ in range(max(1, 8 // bs)): cm(x)
        ts.append((time.perf_counter() - t0) / max(1, 8 // bs) * 1e3)
print(f"{st.median(ts):.3f}")
