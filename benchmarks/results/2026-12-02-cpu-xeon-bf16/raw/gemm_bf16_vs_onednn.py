# 1x1 conv GEMMs of B0 (batch 8) in bf16 at 1 thread: effkernels' packed GEMM (fp32 FMAs) against oneDNN reached
# through torch (torch.mm on bf16: AMX where the CPU has it; the prepacked oneDNN pointwise conv that inductor's
# CPU freezing uses) -- what an AMX GEMM could gain. Medians of 15 calls, ms.
import time, statistics as st, torch, effkernels
torch.set_num_threads(1)
E = torch.ops.effkernels
def med(f):
    for _ in range(3): f()
    ts = []
    for _ in range(15):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return st.median(ts) * 1e3
print("onednn isa:", torch.backends.mkldnn.is_available(), torch._C._cpu._is_amx_tile_supported() if hasattr(torch._C, "_cpu") and hasattr(torch._C._cpu, "_is_amx_tile_supported") else "?")
for n, k, co, h in [(8, 16, 96, 112), (8, 144, 24, 56), (8, 40, 240, 28), (8, 672, 112, 14), (8, 320, 1280, 7), (8, 1152, 192, 7)]:
    w = torch.randn(co, k) * k ** -0.5; b = torch.randn(co)
    wp = E.pack_pointwise_weight(w)
    x = torch.randn(n, k, h, h).bfloat16().contiguous(memory_format=torch.channels_last)
    a = x.permute(0, 2, 3, 1).reshape(-1, k); wt = w.bfloat16().t().contiguous()
    ours = med(lambda: E.pointwise_conv_packed(x, wp, b.bfloat16(), 0, None, None))
    mm = med(lambda: torch.mm(a, wt))
    w4 = w.bfloat16()[:, :, None, None].contiguous(memory_format=torch.channels_last)
    try:
        wr = torch.ops.mkldnn._reorder_convolution_weight(w4, [0, 0], [1, 1], [1, 1], 1, x.shape)
        dn = med(lambda: torch.ops.mkldnn._convolution_pointwise(x, wr, b.bfloat16(), [0, 0], [1, 1], [1, 1], 1, "none", [], ""))
        ref = torch.nn.functional.conv2d(x.float(), w[:, :, None, None], b)
        err = (torch.ops.mkldnn._convolution_pointwise(x, wr, b.bfloat16(), [0, 0], [1, 1], [1, 1], 1, "none", [], "").float() - ref).abs().max().item()
    except Exception as e:
        dn, err = float("nan"), repr(e)[:80]
    print(f"N{n} K{k} Cout{co} {h}x{h}: ours {ours:.3f}  torch.mm {mm:.3f}  onednn prepacked conv {dn:.3f} (max err {err})  ours/mm {ours / mm:.2f}")
