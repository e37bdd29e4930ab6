# time only the tail (pool + flatten + classifier) right after an untimed features(x), variants interleaved
import torch, torchvision, time, sys, statistics as s
sys.path.insert(0, "/work/main")
from effkernels.convert import convert
from effkernels.ops.pointwise_conv import pointwise_conv, pack_cpu
torch.set_num_threads(int(sys.argv[1])); N = int(sys.argv[2])
m = torchvision.models.efficientnet_b0().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu")
x = torch.randn(N, 3, 224, 224).contiguous(memory_format=torch.channels_last)
feat, cls = cm.features, cm.classifier
atenpool = torch.nn.AdaptiveAvgPool2d(1)
ourpool = cm.avgpool
lin = cls[1]; W = lin.weight.detach().contiguous(); Bb = lin.bias.detach().contiguous(); P = pack_cpu(W)
def ourlin(v): return pointwise_conv(v.view(v.shape[0], v.shape[1], 1, 1), W, Bb, "none", backend="cpu", packed=P).view(v.shape[0], -1)
V = {"aten pool + addmm": lambda y: cls(atenpool(y).flatten(1)),
     "GlobalAvgPool + addmm": lambda y: cls(ourpool(y).flatten(1)),
     "GlobalAvgPool + packed": lambda y: ourlin(ourpool(y).flatten(1))}
res = {k: [] for k in V}
ks = list(V)
with torch.no_grad():
    for r in range(int(sys.argv[3])):
        for k in ks[r % 3:] + ks[:r % 3]:
            y = feat(x)
            t0 = time.perf_counter(); V[k](y); res[k].append(time.perf_counter() - t0)
for k, v in res.items(): print(f"{k:24s} median {s.median(v)*1e3:.3f} ms  p25 {s.quantiles(v, n=4)[0]*1e3:.3f}  p75 {s.quantiles(v, n=4)[2]*1e3:.3f}")
