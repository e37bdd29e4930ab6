import os, time, torch
torch.set_num_threads(1)
a = torch.randn(512, 512); b = torch.randn(512, 512)
res = {0: [], 1: []}
for r in range(40):
    for c in ((0, 1) if r % 2 else (1, 0)):
        os.sched_setaffinity(0, {c})
        a @ b; t0 = time.perf_counter()
        for _ in range(20): a @ b
        res[c].append((time.perf_counter() - t0) / 20 * 1e3)
import statistics as st
print("cpu0 %.3f ms  cpu1 %.3f ms" % (st.median(res[0]), st.median(res[1])), "paired", sorted(round(y / x, 2) for x, y in zip(res[0], res[1]))[::4])
