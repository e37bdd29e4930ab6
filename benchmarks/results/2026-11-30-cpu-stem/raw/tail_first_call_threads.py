import sys, time, statistics as s, collections
sys.path.insert(0, "/work/main")
import torch, torchvision
from effkernels.convert import convert
torch.set_num_threads(int(sys.argv[1]))
m = torchvision.models.efficientnet_b0().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu")
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
pool = cm.avgpool
acc = collections.defaultdict(list)
g = torch.randn(1, 1280, 7, 7).contiguous(memory_format=torch.channels_last)
def T(name, f):
    t0 = time.perf_counter(); f(); acc[name].append(time.perf_counter() - t0)
with torch.no_grad():
    for i in range(60):
        f = cm.features(x); T("A sum(f) first", lambda: f.sum()); T("A then pool", lambda: pool(f))
        f = cm.features(x); T("B pool(other tensor) first", lambda: pool(g)); T("B then pool(f)", lambda: pool(f))
        f = cm.features(x); T("C pool(f)", lambda: pool(f))
        f = cm.features[:8](x); T("D pool(stage7 out)", lambda: pool(f))
for k, v in acc.items(): print(f"{k:28s} {s.median(v[10:]) * 1e3:.3f} ms")
