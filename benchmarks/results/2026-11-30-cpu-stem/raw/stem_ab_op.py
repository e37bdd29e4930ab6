import torch, time, sys, statistics as s
sys.path.insert(0, "/work/main")
import torch.nn.functional as F
from effkernels.ops.activation import activation_
from effkernels._common import ACTIVATIONS
torch.set_num_threads(int(sys.argv[1]))
ops = torch.ops.effkernels
def T(f, n):
    v = []
    for _ in range(n):
        t0 = time.perf_counter(); f(); v.append(time.perf_counter() - t0)
    return v
for N, cin, cout, hw in [(1, 3, 32, 224), (8, 3, 32, 224), (1, 3, 48, 380), (1, 4, 32, 224), (1, 8, 32, 112), (1, 16, 32, 112), (1, 24, 48, 112)]:
    x = torch.randn(N, cin, hw, hw).contiguous(memory_format=torch.channels_last)
    w = torch.randn(cout, cin, 3, 3); b = torch.randn(cout)
    oh = (hw + 2 - 3) // 2 + 1
    fa = lambda: activation_(F.conv2d(x, w, b, 2, 1), "silu", "cpu")
    fd = lambda: ops.conv_bn_act(x, w, b, [2, 2], 1, 1, oh, oh, ACTIVATIONS["silu"])
    ra = fa(); rd = fd(); assert (ra - rd).abs().max() < 1e-3, (ra - rd).abs().max()
    n = 20 if N == 1 else 5
    A, D = [], []
    for f in (fa, fd): T(f, 5)
    for r in range(8):
        A += T(fa, n); D += T(fd, n)
    print(f"N={N} cin={cin} cout={cout} hw={hw}: aten+act {s.median(A)*1e3:.3f} ms  direct {s.median(D)*1e3:.3f} ms  ratio {s.median(A)/s.median(D):.2f}x")
