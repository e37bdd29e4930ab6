import sys, time, statistics as s, collections
sys.path.insert(0, "/work/main")
import torch, torchvision
from effkernels.convert import convert
torch.set_num_threads(2)
m = torchvision.models.efficientnet_b0().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu")
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
pool = cm.avgpool
acc = collections.defaultdict(list)
def fwd(x):
    f = cm.features(x)
    t0 = time.perf_counter(); p1 = pool(f); t1 = time.perf_counter(); p2 = pool(f); t2 = time.perf_counter()
    f2 = f.clone(); t3 = time.perf_counter(); p3 = pool(f2); t4 = time.perf_counter()
    acc["pool first"].append(t1 - t0); acc["pool second"].append(t2 - t1); acc["pool on clone"].append(t4 - t3)
    acc["stride"].append(f.stride())
with torch.no_grad():
    for _ in range(80): fwd(x)
for k, v in acc.items():
    if k == "stride": print(v[0], f.shape if False else ""); continue
    print(k, round(s.median(v[10:]) * 1e3, 3), "ms")
