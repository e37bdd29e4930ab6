# Same process, interleaved, under torch.no_grad: the converted model (its Sequentials are BlockSequences) against
# the same layers in plain nn.Sequentials (what convert gave before BlockSequence).
# usage: python seq_ab.py THREADS [BATCH [torchvision-model [RES [ROUNDS]]]]
import copy, sys, time, statistics as st
from collections import OrderedDict
import torch, torchvision
from torch import nn
from effkernels.convert import convert
from effkernels.nn import BlockSequence
T = int(sys.argv[1]); torch.set_num_threads(T); torch.manual_seed(0)
bs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
name = sys.argv[3] if len(sys.argv) > 3 else "efficientnet_b0"; res = int(sys.argv[4]) if len(sys.argv) > 4 else 224
m = getattr(torchvision.models, name)().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu")


def plain(seq):
    return nn.Sequential(OrderedDict((k, plain(c) if isinstance(c, BlockSequence) else c) for k, c in seq._modules.items()))


pm = copy.copy(cm)  # shares every layer (and its fold) with cm
pm._modules = dict(cm._modules, features=plain(cm.features))
assert type(pm.features[1]) is nn.Sequential and pm.features[1][0] is cm.features[1][0]
x = torch.randn(bs, 3, res, res).contiguous(memory_format=torch.channels_last)
with torch.no_grad():
    ref = pm(x); out = cm(x); out2 = cm(x)
print("equal", torch.equal(ref, out), torch.equal(ref, out2))


def tm(f, n):
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(n): f(x)
    return (time.perf_counter() - t0) / n * 1e3


a, b = [], []
n = max(1, 20 // bs)
for _ in range(int(sys.argv[5]) if len(sys.argv) > 5 else 30):
    a.append(tm(pm, n)); b.append(tm(cm, n))
print(f"{name} {res}px b{bs} {T}T: plain Sequential {st.median(a):.3f} ms  BlockSequence {st.median(b):.3f} ms  "
      f"ratio {st.median(b)/st.median(a):.3f}")
