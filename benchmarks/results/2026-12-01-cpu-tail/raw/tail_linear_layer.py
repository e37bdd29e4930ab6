import torch, torchvision, time, sys, statistics as s
sys.path.insert(0, "/work/main")
from effkernels.convert import convert
import effkernels.nn as enn
torch.set_num_threads(int(sys.argv[1])); N = int(sys.argv[2])
m = torchvision.models.efficientnet_b0().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu")
assert type(cm.classifier[1]) is enn.Linear
x = torch.randn(N, 3, 224, 224).contiguous(memory_format=torch.channels_last)
feat, pool = cm.features, cm.avgpool
ours = cm.classifier; theirs = m.classifier
V = {"nn.Linear": lambda y: theirs(pool(y).flatten(1)), "effkernels.nn.Linear": lambda y: ours(pool(y).flatten(1))}
res = {k: [] for k in V}; ks = list(V)
with torch.no_grad():
    assert torch.allclose(V[ks[0]](feat(x)), V[ks[1]](feat(x)), rtol=1e-4, atol=1e-5)
    for r in range(int(sys.argv[3])):
        for k in ks[r % 2:] + ks[:r % 2]:
            y = feat(x)
            t0 = time.perf_counter(); V[k](y); res[k].append(time.perf_counter() - t0)
for k, v in res.items(): print(f"threads {sys.argv[1]} batch {N}: {k:22s} pool+classifier median {s.median(v)*1e3:.3f} ms  p25 {s.quantiles(v, n=4)[0]*1e3:.3f}  p75 {s.quantiles(v, n=4)[2]*1e3:.3f}")
