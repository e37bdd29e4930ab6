import torch, time, sys
sys.path.insert(0, sys.argv[3])
from effkernels.ops.pointwise_conv import pointwise_conv, pack_cpu
import effkernels; assert effkernels.__file__.startswith(sys.argv[3]), effkernels.__file__
torch.set_num_threads(int(sys.argv[1])); N = int(sys.argv[2]); ACT = sys.argv[4]
shapes = [(112, 16, 96), (56, 24, 144), (28, 40, 240), (14, 80, 480), (14, 112, 672), (7, 192, 1152)]
def best(f, n):
    b = 1e9
    for _ in range(9):
        t0 = time.perf_counter()
        for _ in range(n): f()
        b = min(b, (time.perf_counter() - t0) / n)
    return b
out = []
with torch.no_grad():
  for h, ci, co in shapes:
    x = torch.randn(N, ci, h, h).contiguous(memory_format=torch.channels_last)
    W = torch.randn(co, ci) / ci ** 0.5; B = torch.randn(co); P = pack_cpu(W)
    a = x.permute(0, 2, 3, 1).reshape(-1, ci); wt = W.t().contiguous()
    ours = lambda: pointwise_conv(x, W, B, ACT, backend="cpu", packed=P)
    mm = lambda: torch.mm(a, wt)
    flops = 2 * N * h * h * ci * co
    n = max(3, int(2e7 / flops))
    to, tm = best(ours, n), best(mm, n)
    out.append(f"{to/tm:5.2f}")
print(sys.argv[3][-8:], ACT, " ".join(out))
