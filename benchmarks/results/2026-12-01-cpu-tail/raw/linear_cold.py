import torch, time, sys, statistics as s
sys.path.insert(0, "/work/main")
from effkernels.ops.pointwise_conv import pointwise_conv, pack_cpu
torch.set_num_threads(int(sys.argv[1]))
W = torch.randn(1000, 1280); B = torch.randn(1000); P = pack_cpu(W)
big = torch.randn(8 << 20)  # 32 MB to evict caches between calls
def ours(v): return pointwise_conv(v.view(v.shape[0], v.shape[1], 1, 1), W, B, "none", backend="cpu", packed=P).view(v.shape[0], -1)
def aten(v): return torch.nn.functional.linear(v, W, B)
with torch.no_grad():
  for M in (1, 2, 8, 32, 128, 256):
    v = torch.randn(M, 1280)
    print(M, "maxdiff", (ours(v) - aten(v)).abs().max().item())
    res = {"ours": [], "aten": []}
    for r in range(7):
        for k, f in (("ours", ours), ("aten", aten)) if r % 2 else (("aten", aten), ("ours", ours)):
            t = []
            for _ in range(10):
                big.add_(1.0)  # cold caches like in a model
                t0 = time.perf_counter(); f(v); t.append(time.perf_counter() - t0)
            res[k].append(s.median(t))
    print(M, {k: round(s.median(v)*1e3, 3) for k, v in res.items()})
