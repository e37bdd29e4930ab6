import torch, time, sys, statistics as s
import torch.nn.functional as F
torch.set_num_threads(int(sys.argv[1])); N = int(sys.argv[2])
x = torch.randn(N, 3, 224, 224).contiguous(memory_format=torch.channels_last)
w = torch.randn(32, 3, 3, 3); b = torch.randn(32)
op = torch.ops.mkldnn._convolution_pointwise
def T(f, n=200):
    for _ in range(10): f()
    v = []
    for _ in range(n):
        t0 = time.perf_counter(); f(); v.append(time.perf_counter() - t0)
    return s.median(v) * 1e3
ref = F.silu(F.conv2d(x, w, b, 2, 1))
y = op(x, w, b, [1, 1], [2, 2], [1, 1], 1, "swish", [], "")
print((y - ref).abs().max(), y.is_contiguous(memory_format=torch.channels_last))
wp = torch.ops.mkldnn._reorder_convolution_weight(w, [1,1], [2,2], [1,1], 1, list(x.shape))
with torch.no_grad():
  for r in range(3):
    print("conv+silu aten  ", round(T(lambda: F.silu(F.conv2d(x, w, b, 2, 1), inplace=True)), 3))
    print("pointwise swish ", round(T(lambda: op(x, w, b, [1, 1], [2, 2], [1, 1], 1, "swish", [], "")), 3))
    print("pointwise none  ", round(T(lambda: op(x, w, b, [1, 1], [2, 2], [1, 1], 1, "none", [], "")), 3))
    print("conv only       ", round(T(lambda: F.conv2d(x, w, b, 2, 1)), 3))
