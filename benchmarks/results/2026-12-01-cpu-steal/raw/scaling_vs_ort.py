import torch, torchvision, time, sys, statistics as st
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "/work/main")
import onnxruntime as ort
from effkernels.convert import convert
m = torchvision.models.efficientnet_b0().eval()
x = torch.randn(1, 3, 224, 224)
torch.onnx.export(m, (x,), "/tmp/b0s.onnx", opset_version=17, dynamo=False)
sess = {}
for t in (1, 2):
    so = ort.SessionOptions(); so.intra_op_num_threads = t; so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess[t] = ort.InferenceSession("/tmp/b0s.onnx", so, providers=["CPUExecutionProvider"])
cm = convert(m.to(memory_format=torch.channels_last), backend="cpu")
xc = x.contiguous(memory_format=torch.channels_last); xn = x.numpy()
name = sess[1].get_inputs()[0].name
def ours(t):
    def f():
        torch.set_num_threads(t); cm(xc)
    return f
def orts(t):
    return lambda: sess[t].run(None, {name: xn})
prov = {"ours1": ours(1), "ours2": ours(2), "ort1": orts(1), "ort2": orts(2)}
res = {k: [] for k in prov}
keys = list(prov)
with torch.no_grad():
    for k in keys:
        for _ in range(5): prov[k]()
    R = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    for r in range(R):
        for k in keys[r % 4:] + keys[:r % 4]:
            f = prov[k]; f()
            t0 = time.perf_counter()
            for _ in range(5): f()
            res[k].append((time.perf_counter() - t0) / 5 * 1e3)
for k in keys: print(k, "median %.2f ms  p25 %.2f p75 %.2f" % (st.median(res[k]), *st.quantiles(res[k], n=4)[0:3:2]))
print("scaling ours %.2f ort %.2f; ort/ours 1t %.2f 2t %.2f" % (st.median(res["ours1"]) / st.median(res["ours2"]), st.median(res["ort1"]) / st.median(res["ort2"]), st.median(res["ort1"]) / st.median(res["ours1"]), st.median(res["ort2"]) / st.median(res["ours2"])))
