"""Each B0 block (224 px, batch 1, random fp32 weights, channels_last) through mbconv_packed, path "auto", 1 thread:
median thread CPU time of 7 reps, multiply-accumulates per part (expand, depthwise, project) and GFLOP/s.
Run from the repository root: PYTHONPATH=. python benchmarks/results/2026-11-30-cpu-batch1/block_rates.py"""
import statistics, time, torch
from effkernels import scaling
from effkernels._common import ACTIVATIONS
ops = torch.ops.effkernels
torch.set_num_threads(1)
SILU, SIG = ACTIVATIONS["silu"], ACTIVATIONS["sigmoid"]
tot_t = tot_f = 0
for b in scaling.block_shapes(0, 224):
    cin, ce, co, k, s, hw, oh = b.in_channels, b.expanded_channels, b.out_channels, b.kernel, b.stride, b.in_hw, b.out_hw
    g = torch.Generator().manual_seed(0)
    r = lambda *sh: torch.randn(*sh, generator=g) * 0.1
    x = r(1, cin, hw, hw).contiguous(memory_format=torch.channels_last)
    eb, dw, db, pb = r(ce), r(ce, 1, k, k), r(ce), r(co)
    w1, b1, w2, b2 = r(b.squeeze_channels, ce), r(b.squeeze_channels), r(ce, b.squeeze_channels), r(ce)
    ewp = ops.pack_pointwise_weight(r(ce, cin)) if b.expand_ratio != 1 else None
    if ewp is None: eb = None
    pwp = ops.pack_pointwise_weight(r(co, ce))
    pad = (k - 1) // 2
    fn = lambda: ops.mbconv_packed(x, ewp, eb, dw, db, s, pad, pad, oh, oh, w1, b1, w2, b2, pwp, pb, b.residual, SILU, SILU, SIG, "auto")
    inner = max(3, int(2e6 / (ce * hw * hw * max(cin, 16)) * 20))
    ts = []
    with torch.no_grad():
        fn()
        for _ in range(7):
            t0 = time.thread_time()
            for _ in range(inner): fn()
            ts.append((time.thread_time() - t0) / inner * 1e3)
    t = statistics.median(ts)
    e = (cin * ce * hw * hw if ewp is not None else 0); d = ce * oh * oh * k * k; p = ce * co * oh * oh
    fl = 2 * (e + d + p)
    tot_t += t; tot_f += fl
    print(f"{cin:4d}->{ce:5d}->{co:4d} k{k}s{s} {hw:3d}px {t:7.3f} ms  MMAC e{e/1e6:5.1f} d{d/1e6:4.1f} p{p/1e6:5.1f}  {fl/t/1e6:6.1f} GFLOP/s", flush=True)
print(f"sum {tot_t:.2f} ms, {tot_f/1e9:.3f} GFLOP, {tot_f/tot_t/1e6:.1f} GFLOP/s")
