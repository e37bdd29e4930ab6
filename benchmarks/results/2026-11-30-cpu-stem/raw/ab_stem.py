"""B0 fp32 channels_last, same process, interleaved rounds: effkernels-cpu with the direct stem (new), with the
stem through ATen conv + activation_ (old: DIRECT_MAX_TAPS = 0), and ONNX Runtime (opset 17, all optimizations)."""
import sys, time, statistics as s, tempfile, os
sys.path.insert(0, "/work/main")
import torch, torchvision, numpy as np
import onnxruntime as ort
from effkernels.convert import convert
import effkernels.ops.conv_bn_act; cba = sys.modules["effkernels.ops.conv_bn_act"]
threads, batch, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
m = torchvision.models.efficientnet_b0().eval()
x = torch.randn(batch, 3, 224, 224)
f = os.path.join(tempfile.mkdtemp(), "b0.onnx")
torch.onnx.export(m, x, f, opset_version=17, dynamo=False)
so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.inter_op_num_threads = 1
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
sess = ort.InferenceSession(f, so, providers=["CPUExecutionProvider"])
cm = convert(m.to(memory_format=torch.channels_last), backend="cpu")
xc = x.contiguous(memory_format=torch.channels_last); xn = x.numpy()
with torch.no_grad():
    ref = m(x)
NEW = cba.DIRECT_MAX_TAPS
def ours(taps):
    def f():
        cba.DIRECT_MAX_TAPS = taps
        with torch.no_grad():
            return cm(xc)
    return f
prov = {"new": ours(NEW), "old": ours(0), "ort": lambda: torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: xn})[0])}
for k, fn in prov.items():
    err = ((fn() - ref).norm() / ref.norm()).item(); assert err < 1e-4, (k, err)
res = {k: [] for k in prov}
names = list(prov)
for r in range(rounds):
    for k in names[r % 3:] + names[:r % 3]:
        fn = prov[k]; t_end = time.perf_counter() + 1.0; v = []
        while time.perf_counter() < t_end:
            t0 = time.perf_counter(); fn(); v.append(time.perf_counter() - t0)
        res[k].append(s.median(v) * 1e3)
med = {k: s.median(v) for k, v in res.items()}
print(f"B0 batch {batch} {threads} threads, {rounds} rounds: " + "  ".join(f"{k} {v:.2f} ms" for k, v in med.items())
      + f"  | ort/new {med['ort']/med['new']:.3f}x  ort/old {med['ort']/med['old']:.3f}x  old/new {med['old']/med['new']:.3f}x")
