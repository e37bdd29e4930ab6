import torch, torchvision, time, sys, statistics as st, collections
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "/work/main")
from effkernels.convert import convert
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
m = torchvision.models.efficientnet_b0().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu")
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
mods = []
for i, stage in enumerate(cm.features):
    if i in (0, 8): mods.append((f"features.{i}", stage))
    else:
        for j, b in enumerate(stage): mods.append((f"features.{i}.{j}", b))
mods += [("avgpool", cm.avgpool), ("classifier", cm.classifier)]
inputs, stt, acc = {}, {}, collections.defaultdict(list)
on = [False]
def pre(mod, inp, name):
    inputs[name] = inp[0]
    if on[0]: stt[name] = time.perf_counter()
def post(mod, inp, out, name):
    if on[0]: acc[name].append(time.perf_counter() - stt[name])
for name, mod in mods:
    mod.register_forward_pre_hook(lambda mod, inp, name=name: pre(mod, inp, name))
    mod.register_forward_hook(lambda mod, inp, out, name=name: post(mod, inp, out, name))
iso = collections.defaultdict(list); whole = []
with torch.no_grad():
    cm(x)
    for r in range(int(sys.argv[2])):
        on[0] = True
        for _ in range(5):
            t0 = time.perf_counter(); cm(x); whole.append(time.perf_counter() - t0)
        on[0] = False
        for name, mod in mods:
            xi = inputs[name]
            if name == "classifier": xi = xi.flatten(1)
            mod(xi); t0 = time.perf_counter()
            for _ in range(5): mod(xi)
            iso[name].append((time.perf_counter() - t0) / 5)
a = b = 0
for name, _ in mods:
    u, v = st.median(acc[name]) * 1e3, st.median(iso[name]) * 1e3; a += u; b += v
    print(f"{name:14s} in-model {u:6.3f}  isolated {v:6.3f}  +{u-v:6.3f}")
print(f"sum in-model {a:.2f} isolated {b:.2f}; whole {st.median(whole)*1e3:.2f}")
