import torch, time, effkernels
torch.set_num_threads(1)
ops = torch.ops.effkernels
res = {}
for rep in range(5):
    for dt in (torch.float32, torch.bfloat16):
        x = torch.randn(8, 3, 224, 224).to(dt).contiguous(memory_format=torch.channels_last)
        w = torch.randn(32, 3, 3, 3).to(dt); b = torch.randn(32).to(dt)
        for _ in range(3): ops.conv_bn_act(x, w, b, [2, 2], 0, 0, 112, 112, 3)
        t = time.perf_counter()
        for _ in range(10): ops.conv_bn_act(x, w, b, [2, 2], 0, 0, 112, 112, 3)
        res.setdefault(dt, []).append((time.perf_counter() - t) / 10 * 1e3)
for dt, v in res.items(): print(dt, sorted(v)[2], "ms")
