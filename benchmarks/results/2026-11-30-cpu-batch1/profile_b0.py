"""Where a converted torchvision B0 batch-1 forward spends its time on the cpu backend (issue 16 point 2).

1 thread, 224 px, fp32, channels_last, random weights. Prints
  1. torch.profiler's per-op table (self CPU time, record_shapes) over --iters forwards;
  2. per top-level module (stem, each block, head, pool, classifier): the module's call vs the same
     module's C++ op called directly with the arguments the module passed to effkernels._dispatch.run
     (the difference is the Python around the op: argument checks, fold-stamp check, dispatch glue),
     thread CPU time, median of --reps interleaved reps of --inner calls each.
Run from the repository root: PYTHONPATH=. python benchmarks/results/2026-11-30-cpu-batch1/profile_b0.py
"""
import argparse
import statistics
import time

import torch
import torchvision

import effkernels
from effkernels import _dispatch

p = argparse.ArgumentParser()
p.add_argument("--iters", type=int, default=20)
p.add_argument("--reps", type=int, default=7)
p.add_argument("--inner", type=int, default=20)
a = p.parse_args()
torch.set_num_threads(1)
clock = time.thread_time

model = torchvision.models.efficientnet_b0(weights=None).eval()
model = effkernels.convert(model, backend="cpu").to(memory_format=torch.channels_last)
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)

with torch.no_grad():
    for _ in range(5):
        model(x)
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(a.iters):
            model(x)
    print(f"## torch.profiler, {a.iters} forwards (times are totals over them)\n")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=25,
                                                             max_name_column_width=30, max_shapes_column_width=70))

    # The top-level modules in forward order, each with its input and the op calls it makes.
    mods = [(f"features.{i}", m) for i, m in enumerate(model.features)] + [("avgpool", model.avgpool),
                                                                          ("classifier", model.classifier)]
    inputs, calls, current = {}, {}, [None]
    real_run = _dispatch.run

    def spy(op, be, *args):
        if current[0] is not None:
            calls.setdefault(current[0], []).append((op, be, args))
        return real_run(op, be, *args)

    _dispatch.run = spy
    hooks = []
    def enter(name, inp):
        inputs[name], current[0] = inp, name

    def leave():
        current[0] = None

    for name, m in mods:
        hooks.append(m.register_forward_pre_hook(lambda m, inp, name=name: enter(name, inp)))
        hooks.append(m.register_forward_hook(lambda m, inp, out: leave()))
    model(x)
    _dispatch.run = real_run
    for h in hooks:
        h.remove()

    def timed(fn):
        t0 = clock()
        for _ in range(a.inner):
            fn()
        return (clock() - t0) / a.inner * 1e3

    rows, totals = [], {"module": 0.0, "op": 0.0}
    for name, m in mods:
        inp = inputs[name]
        op_calls = calls.get(name, [])
        fns = {"module": lambda m=m, inp=inp: m(*inp),
               "op": lambda c=op_calls: [getattr(torch.ops.effkernels, op)(*args) for op, _, args in c]}
        ts = {k: [] for k in fns}
        for _ in range(a.reps):
            for k, fn in fns.items():
                ts[k].append(timed(fn))
        med = {k: statistics.median(v) for k, v in ts.items()}
        for k in totals:
            totals[k] += med[k]
        shape = "x".join(map(str, inp[0].shape))
        rows.append(f"| {name} | {type(m).__name__} | {shape} | {','.join(op for op, _, _ in op_calls) or '-'} | "
                    f"{med['module']:.3f} | {med['op']:.3f} | {med['module'] - med['op']:.3f} |")
    t_model = []
    for _ in range(a.reps):
        t_model.append(timed(lambda: model(x)))
    print("\n## per module: module call vs its C++ ops called directly (ms, thread CPU time, median)\n")
    print("| module | type | input | ops | module | ops alone | python around |\n|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"| sum | | | | {totals['module']:.3f} | {totals['op']:.3f} | {totals['module'] - totals['op']:.3f} |")
    print(f"\nwhole model forward: {statistics.median(t_model):.3f} ms (median of {a.reps})")
