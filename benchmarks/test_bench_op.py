"""Op level: depthwise conv + BN + SiLU, and squeeze-excitation alone, over the distinct depthwise layer shapes of B{phi};
and the expand / project 1x1 convs (pointwise: the fused GEMM against a plain torch.matmul of the same GEMM).

Cases come from conftest.py (options --bench-*), timing and checks from bench_harness.run.
"""
import bench_harness

LEVEL = "op"


def test_op(benchmark, case, provider, bench_cfg, record_wrong):
    bench_harness.run(benchmark, case, provider, bench_cfg, record_wrong)
