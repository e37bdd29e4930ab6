import torch, time, statistics as st
import effkernels
torch.set_num_threads(1)
E = torch.ops.effkernels
# B0 project shapes (N, K, C_out, H): stage 6 (672->112 at 14), stage 3 (144->24 at 56), head 320->1280 at 7
shapes = [(8, 672, 112, 14), (8, 144, 24, 56), (8, 320, 1280, 7), (8, 16, 96, 112), (8, 960, 160, 7)]
for n, k, co, h in shapes:
    w = torch.randn(co, k); b = torch.randn(co); wp = E.pack_pointwise_weight(w)
    res = {}
    for dt in (torch.float32, torch.bfloat16):
        x = torch.randn(n, k, h, h).to(dt).contiguous(memory_format=torch.channels_last)
        s = torch.rand(n, k)
        for name, sc in (("noscale", None), ("scale", s)):
            f = lambda: E.pointwise_conv_packed(x, wp, b.to(dt), 0, sc, None)
            for _ in range(3): f()
            ts = []
            for _ in range(15):
                t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
            res[(str(dt)[6:], name)] = st.median(ts) * 1e3
    print((n, k, co, h), " ".join(f"{a}/{b}: {v:.3f}" for (a, b), v in res.items()))
