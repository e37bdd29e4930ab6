import sys, time, statistics as s, collections
sys.path.insert(0, "/work/main")
import torch, torchvision
from effkernels.convert import convert
from effkernels.ops.pointwise_conv import pack_cpu
torch.set_num_threads(2)
m = torchvision.models.efficientnet_b0().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu")
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
acc = collections.defaultdict(list)
lin = cm.classifier[1]; W = lin.weight.detach().contiguous(); B = lin.bias.detach().contiguous(); P = pack_cpu(W)
def T(name, f):
    t0 = time.perf_counter(); r = f(); acc[name].append(time.perf_counter() - t0); return r
ops = torch.ops.effkernels
with torch.no_grad():
    for i in range(60):
        f = cm.features(x); T("channel_sums first", lambda: ops.channel_sums(f))
        f = cm.features(x); T("aten pool first", lambda: cm.avgpool(f))
        f = cm.features(x); p = T("aten pool", lambda: cm.avgpool(f)); T("aten linear after pool", lambda: cm.classifier(p.flatten(1)))
        f = cm.features(x); p = T("aten pool.", lambda: cm.avgpool(f)); T("packed linear after pool", lambda: ops.pointwise_conv_packed(p, P, B, 0, None, None))
        f = cm.features(x); sm = T("channel_sums", lambda: ops.channel_sums(f)); T("packed linear after sums", lambda: ops.pointwise_conv_packed(sm.view(1, 1280, 1, 1), P, B, 0, None, None))
for k, v in acc.items(): print(f"{k:28s} {s.median(v[10:]) * 1e3:.3f} ms")
