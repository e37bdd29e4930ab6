"""pointwise_conv_packed (the packed GEMM of csrc/cpu/gemm.h) vs torch.addmm (oneDNN/MKL) on B0 1x1-conv shapes at batch 1,
1 thread, GFLOP/s from the median thread CPU time of 7 reps; "+silu": the same GEMM with the SiLU epilogue.
Run from the repository root: PYTHONPATH=. python benchmarks/results/2026-11-30-cpu-batch1/gemm_rates.py"""
import statistics, time, torch, effkernels
ops = torch.ops.effkernels
torch.set_num_threads(1)
def bench(fn, inner):
    fn(); ts=[]
    for _ in range(7):
        t0=time.thread_time()
        for _ in range(inner): fn()
        ts.append((time.thread_time()-t0)/inner)
    return statistics.median(ts)
for (hw, K, N) in [(112,16,96),(56,24,144),(56,144,24),(14,112,672),(14,672,112),(7,192,1152),(7,1152,192),(7,1152,320),(7,320,1280)]:
    x = torch.randn(1, K, hw, hw).contiguous(memory_format=torch.channels_last)
    w = torch.randn(N, K); b = torch.randn(N)
    wp = ops.pack_pointwise_weight(w)
    a = x.permute(0,2,3,1).reshape(-1, K)
    fl = 2*hw*hw*K*N
    inner = max(5, int(3e8/fl))
    with torch.no_grad():
        t1 = bench(lambda: ops.pointwise_conv_packed(x, wp, b, 0, None, None), inner)
        t1s = bench(lambda: ops.pointwise_conv_packed(x, wp, b, 3, None, None), inner)
        wt = w.t().contiguous()
        t2 = bench(lambda: torch.addmm(b, a, wt), inner)
    print(f"M={hw*hw:6d} K={K:5d} N={N:5d}: packed {fl/t1/1e9:6.1f} GFLOP/s ({t1*1e6:7.1f} us), +silu {fl/t1s/1e9:6.1f}, torch.addmm {fl/t2/1e9:6.1f} ({t2*1e6:7.1f} us)", flush=True)
