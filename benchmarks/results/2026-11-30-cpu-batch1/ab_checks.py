"""A/B in one process: MBConvFolding._run_mbconv as of e7603c4 (mbconv's full checks on every call) vs now (checks once
per input shape, ops.mbconv.cpu_plan / run_packed). Converted torchvision B0, batch 1, 1 thread, 15 interleaved rounds
of 10 forwards, thread CPU time. Run from the repository root: PYTHONPATH=. python benchmarks/results/2026-11-30-cpu-batch1/ab_checks.py"""
import statistics, time, torch, torchvision, effkernels
from effkernels.nn import _base
from effkernels.ops.mbconv import mbconv, cpu_path
torch.set_num_threads(1)
model = effkernels.convert(torchvision.models.efficientnet_b0(weights=None).eval(), backend="cpu").to(memory_format=torch.channels_last)
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
new = _base.MBConvFolding._run_mbconv
def old(self, x, folded, stride, padding, residual, activation, se_activation, se_gate):
    ew, eb, dw, db, w1, b1, w2, b2, pw, pb, packed = folded
    path = "auto"
    if packed is not None and not torch.compiler.is_compiling():
        key = (*x.shape, torch.get_num_threads())
        path = self.cpu_paths.get(key)
        if path is None:
            path = self.cpu_paths[key] = cpu_path(x.shape, dw.shape[0], dw.shape[-1], stride, ew is not None)
    return mbconv(x, ew, eb, dw, db, stride, padding, w1, b1, w2, b2, pw, pb, residual, activation=activation,
                  se_activation=se_activation, se_gate=se_gate, backend=self.backend, packed=packed, path=path)
with torch.no_grad():
    ref = model(x)
    _base.MBConvFolding._run_mbconv = old
    assert torch.equal(model(x), ref)
    ts = {"old": [], "new": []}
    for r in range(15):
        for name, fn in (("old", old), ("new", new)) if r % 2 else (("new", new), ("old", old)):
            _base.MBConvFolding._run_mbconv = fn
            t0 = time.thread_time()
            for _ in range(10): model(x)
            ts[name].append((time.thread_time() - t0) / 10 * 1e3)
    for k, v in ts.items():
        print(k, f"median {statistics.median(v):.2f} ms thread time, p25-p75 {statistics.quantiles(v, n=4)[0]:.2f}-{statistics.quantiles(v, n=4)[2]:.2f}")
