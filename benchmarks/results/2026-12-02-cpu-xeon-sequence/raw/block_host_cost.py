# The Python around one MBConv block's op in a forward (B0's last block, batch 1, 1 thread): the module call
# against the op called directly with the same arguments, interleaved in short runs; and the module call with the
# op replaced by a stub (the Python alone, run back to back).
import statistics as st, time
import torch, torchvision
import effkernels._dispatch as d
from effkernels.convert import convert
from effkernels.nn import MBConv
from effkernels.nn._base import MBConvFolding
torch.manual_seed(0); torch.set_num_threads(1)
m = torchvision.models.efficientnet_b0().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu")
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
seen = []
hooks = [b.register_forward_hook(lambda mod, i, o: seen.append((mod, i[0]))) for b in cm.modules() if isinstance(b, MBConv)]
with torch.no_grad():
    cm(x)  # hooks: every block runs as a module
for h in hooks: h.remove()
mod, inp = seen[-1]
with torch.no_grad():
    args = mod._packed_args(inp, mod.folded(inp))
op = d.native("mbconv_packed")


def tm(f, n):
    t0 = time.perf_counter()
    for _ in range(n): f()
    return (time.perf_counter() - t0) / n * 1e6


a, b = [], []
with torch.no_grad():
    for _ in range(100):
        a.append(tm(lambda: mod(inp), 5)); b.append(tm(lambda: op(inp, *args), 5))
    real = d.run
    d.run = lambda name, be, *rest: rest[0]
    stub = st.median(tm(lambda: mod(inp), 2000) for _ in range(9))
    d.run = real
print(f"input {tuple(inp.shape)}: module call {st.median(a):.1f} us, op alone {st.median(b):.1f} us, "
      f"difference {st.median(a) - st.median(b):.1f} us; module call with the op stubbed {stub:.1f} us")
