# usage: ab_env.py TREE ENVVAR ROUNDS THREADS[,THREADS] [BATCH]: whole B0 forward, ENVVAR=0/1 interleaved in one process
import torch, torchvision, time, sys, os, statistics as st
sys.path.insert(0, sys.argv[1])
from effkernels.convert import convert
var, R = sys.argv[2], int(sys.argv[3]); threads = [int(t) for t in sys.argv[4].split(",")]
nb = int(sys.argv[5]) if len(sys.argv) > 5 else 1
m = torchvision.models.efficientnet_b0().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu")
x = torch.randn(nb, 3, 224, 224).contiguous(memory_format=torch.channels_last)
variants = [(t, v) for t in threads for v in ("0", "1")]
res = {k: [] for k in variants}
with torch.no_grad():
    for r in range(R):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for t, v in order:
            torch.set_num_threads(t); os.environ[var] = v
            cm(x); t0 = time.perf_counter()
            for _ in range(5): cm(x)
            res[(t, v)].append((time.perf_counter() - t0) / 5 * 1e3)
for t in threads:
    a, b = res[(t, "0")], res[(t, "1")]
    ratios = sorted(y / x for x, y in zip(a, b))
    print(f"threads {t}: {var}=0 median {st.median(a):.2f} ms, {var}=1 median {st.median(b):.2f} ms, ratio of medians {st.median(b)/st.median(a):.3f}, median of paired ratios {st.median(ratios):.3f}, p25-p75 {ratios[len(ratios)//4]:.3f}-{ratios[3*len(ratios)//4]:.3f}")
