import torch, torchvision, time, sys, statistics as s
sys.path.insert(0, sys.argv[3])
import effkernels; assert effkernels.__file__.startswith(sys.argv[3])
from effkernels.convert import convert
torch.set_num_threads(int(sys.argv[1])); N = int(sys.argv[2])
torch.manual_seed(0)
m = torchvision.models.efficientnet_b0().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu")
x = torch.randn(N, 3, 224, 224).contiguous(memory_format=torch.channels_last)
t = []
with torch.no_grad():
    for _ in range(5): cm.features(x)
    for _ in range(40):
        t0 = time.perf_counter(); cm.features(x); t.append(time.perf_counter() - t0)
print(sys.argv[3][-8:], f"min {min(t)*1e3:.2f} p10 {s.quantiles(t, n=10)[0]*1e3:.2f} median {s.median(t)*1e3:.2f}")
