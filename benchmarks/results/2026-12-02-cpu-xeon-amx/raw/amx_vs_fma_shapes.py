"""B0's 1x1 GEMM shapes at batch 8, bf16: pointwise_conv_packed on AMX panels (pack of the bf16 weight) against
fp32 panels (pack of the fp32 weight: the AVX-512 FMA GEMM), interleaved in one process, medians of 15 rounds."""
import statistics, sys, time
import torch, effkernels
from effkernels._common import ACTIVATIONS
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
ops = torch.ops.effkernels
N = 8
shapes = [(16, 96, 112, "silu"), (24, 144, 56, "silu"), (40, 240, 28, "silu"), (80, 480, 14, "silu"), (112, 672, 14, "silu"),
          (192, 1152, 7, "silu"), (96, 24, 56, "none"), (144, 40, 28, "none"), (240, 80, 14, "none"), (480, 112, 14, "none"),
          (672, 192, 7, "none"), (1152, 320, 7, "none"), (320, 1280, 7, "silu")]
print(f"threads {torch.get_num_threads()}, amx panels: {ops.pack_pointwise_weight(torch.zeros(1, 1, dtype=torch.bfloat16)).dim() == 4}")
for k, c, hw, act in shapes:
    x = torch.randn(N, k, hw, hw).bfloat16().contiguous(memory_format=torch.channels_last)
    w = (torch.randn(c, k) * k ** -0.5).bfloat16(); b = torch.randn(c).bfloat16()
    packs = {"amx": ops.pack_pointwise_weight(w), "fma": ops.pack_pointwise_weight(w.float())}
    ref = torch.nn.functional.conv2d(x.double(), w.double()[:, :, None, None], b.double())
    if act == "silu": ref = torch.nn.functional.silu(ref)
    times = {p: [] for p in packs}
    for name, p in packs.items():
        out = ops.pointwise_conv_packed(x, p, b, ACTIVATIONS[act], None, None)
        err = ((out.double() - ref).norm() / ref.norm()).item()
        assert err < 1e-2, (name, err)
    reps = max(3, int(2e8 / (N * hw * hw * k * c)))
    for r in range(15):
        for name, p in (packs.items() if r % 2 else reversed(packs.items())):
            t = time.perf_counter()
            for _ in range(reps): ops.pointwise_conv_packed(x, p, b, ACTIVATIONS[act], None, None)
            times[name].append((time.perf_counter() - t) / reps * 1e3)
    a, f = statistics.median(times["amx"]), statistics.median(times["fma"])
    print(f"K {k:4d} C_out {c:4d} {hw:3d}x{hw:<3d} {act:4s}: amx {a:.3f} ms  fma {f:.3f} ms  fma/amx {f / a:.2f}x")
