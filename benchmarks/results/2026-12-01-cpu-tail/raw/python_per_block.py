import torch, torchvision, time, sys, statistics as s
sys.path.insert(0, "/work/main")
from effkernels.convert import convert
import effkernels.nn._base as B, effkernels._dispatch as D
torch.set_num_threads(1)
m = torchvision.models.efficientnet_b0().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu")
blk = cm.features[4][1]
xb = torch.randn(1, 80, 14, 14).contiguous(memory_format=torch.channels_last)
def t(f, n=3000):
    for _ in range(50): f()
    a=[]
    for _ in range(5):
        t0=time.perf_counter()
        for _ in range(n): f()
        a.append((time.perf_counter()-t0)/n)
    return min(a)*1e6
with torch.no_grad():
    blk(xb)
    orig = D.run
    D.run = lambda *a, **k: xb
    print("module call, op stubbed", t(lambda: blk(xb)))
    print("forward, op stubbed", t(lambda: blk.forward(xb)))
    print("folded()", t(lambda: blk.folded(xb)))
    print("_fresh()", t(lambda: blk._fresh()))
    print("len stamp", len(blk._fold_stamp))
    f = blk.folded(xb)
    print("_run_mbconv stubbed", t(lambda: blk._run_mbconv(xb, f, 1, 2, True, 'silu','silu','sigmoid')))
    D.run = orig
    print("module real", t(lambda: blk(xb), 500))
    import cProfile
    D.run = lambda *a, **k: xb
    cProfile.run("for _ in range(3000): blk(xb)", sort="tottime")
