# Each step of the recorded B0 batch-1 forward (BlockSequence run of convert(torchvision B0).features) timed in
# place, 1 and 2 threads, medians of 150 forwards; "lost": 2-thread time minus half the 1-thread time.
import time, statistics as st, torch, torchvision
from effkernels.convert import convert
torch.manual_seed(0)
m = torchvision.models.efficientnet_b0().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu")
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
op = torch.ops.effkernels.mbconv_packed.default
res = {}
with torch.no_grad():
    for T in (1, 2):
        torch.set_num_threads(T)
        cm(x); cm(x)
        run = cm.features._runs[(x.shape, x.dtype, x.device, T)]
        ts = [[] for _ in run.steps]
        for r in range(150):
            y = x
            for i, (mm, fold, _, args) in enumerate(run.steps):
                t0 = time.perf_counter()
                y = mm(y) if fold is None else op(y, *args)
                ts[i].append(time.perf_counter() - t0)
        res[T] = [st.median(v) * 1e6 for v in ts]
tot = [0, 0]
for i in range(len(res[1])):
    a, b = res[1][i], res[2][i]; tot[0] += a; tot[1] += b
    print(f"{i:2d} 1T {a:7.1f} 2T {b:7.1f} x{a/b:.2f}  lost {b - a/2:6.1f} us")
print(f"sum 1T {tot[0]/1e3:.2f} 2T {tot[1]/1e3:.2f} x{tot[0]/tot[1]:.2f}")
