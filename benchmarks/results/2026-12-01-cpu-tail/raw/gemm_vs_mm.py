import torch, time, sys, statistics as s
sys.path.insert(0, "/work/main")
from effkernels.ops.pointwise_conv import pointwise_conv, pack_cpu
torch.set_num_threads(int(sys.argv[1])); N = int(sys.argv[2])
# (H, C_in, C_out): B0 1x1 convs (expand, project)
shapes = [(112, 32, 16), (112, 16, 96), (56, 96, 24), (56, 24, 144), (56, 144, 24), (28, 144, 40), (28, 40, 240), (28, 240, 40),
          (14, 240, 80), (14, 80, 480), (14, 480, 80), (14, 480, 112), (14, 112, 672), (14, 672, 112), (7, 672, 192), (7, 192, 1152), (7, 1152, 192), (7, 1152, 320), (7, 320, 1280)]
def best(f, n):
    b = 1e9
    for _ in range(9):
        t0 = time.perf_counter()
        for _ in range(n): f()
        b = min(b, (time.perf_counter() - t0) / n)
    return b
with torch.no_grad():
  for h, ci, co in shapes:
    x = torch.randn(N, ci, h, h).contiguous(memory_format=torch.channels_last)
    W = torch.randn(co, ci) / ci ** 0.5; B = torch.randn(co); P = pack_cpu(W)
    a = x.permute(0, 2, 3, 1).reshape(-1, ci); wt = W.t().contiguous()
    ours = lambda: pointwise_conv(x, W, B, "none", backend="cpu", packed=P)
    mm = lambda: torch.mm(a, wt)
    flops = 2 * N * h * h * ci * co
    n = max(3, int(2e7 / flops))
    to, tm = best(ours, n), best(mm, n)
    print(f"H{h:4d} {ci:5d}->{co:5d}  ours {to*1e6:8.1f} us {flops/to/1e9:6.1f} GF/s   mm {tm*1e6:8.1f} us {flops/tm/1e9:6.1f} GF/s  ratio {to/tm:5.2f}")
