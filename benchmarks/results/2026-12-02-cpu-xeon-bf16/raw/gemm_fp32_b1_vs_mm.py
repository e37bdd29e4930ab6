# B0's 1x1 conv GEMMs at batch 1, fp32, 1 thread: effkernels' packed GEMM (bias, no activation) against
# torch.mm (oneDNN/MKL sgemm, no bias) of the same [H*W, K] x [K, C_out]. Medians of 25 calls, ms.
import time, statistics as st, torch, effkernels
torch.set_num_threads(1)
E = torch.ops.effkernels
def med(f):
    for _ in range(5): f()
    ts = []
    for _ in range(25):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return st.median(ts) * 1e3
for k, co, h in [(16, 96, 112), (24, 144, 56), (144, 24, 56), (40, 240, 28), (240, 40, 28), (80, 480, 14), (480, 80, 14),
                 (672, 112, 14), (112, 672, 14), (192, 1152, 7), (1152, 192, 7), (320, 1280, 7)]:
    w = torch.randn(co, k) * k ** -0.5; b = torch.randn(co)
    wp = E.pack_pointwise_weight(w)
    x = torch.randn(1, k, h, h).contiguous(memory_format=torch.channels_last)
    a = x.permute(0, 2, 3, 1).reshape(-1, k); wt = w.t().contiguous()
    ours = med(lambda: E.pointwise_conv_packed(x, wp, b, 0, None, None))
    mm = med(lambda: torch.mm(a, wt))
    print(f"K{k} Cout{co} {h}x{h}: ours {ours:.4f}  torch.mm {mm:.4f}  ours/mm {ours / mm:.2f}  ours {2 * h * h * k * co / ours / 1e6:.0f} GF/s")
