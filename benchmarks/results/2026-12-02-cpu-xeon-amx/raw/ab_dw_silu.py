import sys, time, statistics as st
sys.path.insert(0, sys.argv[1])
import torch, effkernels
assert effkernels.__file__.startswith(sys.argv[1])
from effkernels._common import ACTIVATIONS
torch.set_num_threads(1); torch.manual_seed(0)
ops = torch.ops.effkernels
out = []
for c, hw, k in ((144, 56, 3), (480, 14, 5), (96, 112, 3)):
    x = torch.randn(1, c, hw, hw).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, 1, k, k) / k; b = torch.randn(c)
    f = lambda: ops.dwconv_bn_act(x, w, b, 1, k // 2, k // 2, hw, hw, ACTIVATIONS["silu"], True)
    for _ in range(20): f()
    ts = []
    for _ in range(30):
        t = time.perf_counter()
        for _ in range(20): f()
        ts.append((time.perf_counter() - t) / 20 * 1e6)
    out.append(f"{st.median(ts):.1f}")
print(" ".join(out))
