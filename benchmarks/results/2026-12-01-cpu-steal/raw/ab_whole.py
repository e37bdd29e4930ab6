# usage: ab_whole.py TREE THREADS SECONDS -> median ms of rounds of 5 forwards
import torch, torchvision, time, sys, statistics as st
sys.path.insert(0, sys.argv[1])
from effkernels.convert import convert
torch.set_num_threads(int(sys.argv[2]))
m = torchvision.models.efficientnet_b0().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu")
x = torch.randn(int(sys.argv[4]) if len(sys.argv) > 4 else 1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
r = []
with torch.no_grad():
    for _ in range(5): cm(x)
    t_end = time.perf_counter() + float(sys.argv[3])
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        for _ in range(5): cm(x)
        r.append((time.perf_counter() - t0) / 5 * 1e3)
print("%.2f" % st.median(r))
