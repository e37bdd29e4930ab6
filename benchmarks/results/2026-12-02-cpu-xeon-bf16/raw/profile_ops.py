import sys, torch, torchvision
from effkernels.convert import convert
dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[sys.argv[1]]; bs = int(sys.argv[2])
torch.set_num_threads(2)
m = torchvision.models.efficientnet_b0().eval().to(memory_format=torch.channels_last)
cm = convert(m, backend="cpu").to(dt)
x = torch.randn(bs, 3, 224, 224).to(dt).contiguous(memory_format=torch.channels_last)
with torch.no_grad():
    for _ in range(5): cm(x)  # warm
    with torch.profiler.profile() as p:
        for _ in range(10): cm(x)
print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))
