import sys, time, statistics as s, collections
sys.path.insert(0, "/work/main")
import torch, torchvision
from effkernels.convert import convert
from effkernels._common import ACTIVATIONS
torch.set_num_threads(2)
m = torchvision.models.efficientnet_b0().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu")
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
acc = collections.defaultdict(list)
def T(name, f):
    t0 = time.perf_counter(); r = f(); acc[name].append(time.perf_counter() - t0); return r
ops = torch.ops.effkernels
small = torch.randn(1280)
with torch.no_grad():
    for i in range(60):
        f = cm.features(x); T("1 activation_ 1280 first", lambda: ops.activation_(small, 1)); T("2 activation_ again", lambda: ops.activation_(small, 1)); T("3 aten pool", lambda: cm.avgpool(f))
        f = cm.features(x); T("4 time.sleep(0)", lambda: time.sleep(0)); T("5 aten pool", lambda: cm.avgpool(f))
        f = cm.features(x); T("6 nothing", lambda: None); T("7 aten pool", lambda: cm.avgpool(f))
        f = cm.features(x); t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.001: pass
        T("8 aten pool after 1ms spin", lambda: cm.avgpool(f))
for k, v in sorted(acc.items()): print(f"{k:28s} {s.median(v[10:]) * 1e3:.3f} ms")
