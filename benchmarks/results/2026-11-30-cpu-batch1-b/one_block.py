"""Loop one B0 block (index argv[1]) through mbconv_packed 'auto' at 1 thread, for perf record."""
import sys, time, torch
from effkernels import scaling
from effkernels._common import ACTIVATIONS
ops = torch.ops.effkernels
torch.set_num_threads(1)
SILU, SIG = ACTIVATIONS["silu"], ACTIVATIONS["sigmoid"]
b = scaling.block_shapes(0, 224)[int(sys.argv[1])]
cin, ce, co, k, s, hw, oh = b.in_channels, b.expanded_channels, b.out_channels, b.kernel, b.stride, b.in_hw, b.out_hw
g = torch.Generator().manual_seed(0)
r = lambda *sh: torch.randn(*sh, generator=g) * 0.1
x = r(1, cin, hw, hw).contiguous(memory_format=torch.channels_last)
eb, dw, db, pb = r(ce), r(ce, 1, k, k), r(ce), r(co)
w1, b1, w2, b2 = r(b.squeeze_channels, ce), r(b.squeeze_channels), r(ce, b.squeeze_channels), r(ce)
ewp = ops.pack_pointwise_weight(r(ce, cin)); pwp = ops.pack_pointwise_weight(r(co, ce))
pad = (k - 1) // 2
print(cin, ce, co, k, s, hw)
with torch.no_grad():
    t0 = time.thread_time()
    for _ in range(int(sys.argv[2])):
        ops.mbconv_packed(x, ewp, eb, dw, db, s, pad, pad, oh, oh, w1, b1, w2, b2, pwp, pb, b.residual, SILU, SILU, SIG, "auto")
    print((time.thread_time() - t0) / int(sys.argv[2]) * 1e3, "ms")
