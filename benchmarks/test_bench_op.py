"""Op level: depthwise conv + BN + SiLU, and squeeze-excitation alone, over the distinct depthwise layer shapes of B{phi}.

Cases come from conftest.py (options --bench-*), timing and checks from bench_harness.run.
"""
import bench_harness

LEVEL = "op"


def test_op(benchmark, case, provider, bench_cfg, record_wrong):
    bench_harness.run(benchmark, case, provider, bench_cfg, record_wrong)
