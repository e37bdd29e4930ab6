"""Block level: the first MBConv of every stage of B{phi} (torchvision MBConv vs its converted copy).

Cases come from conftest.py (options --bench-*), timing and checks from bench_harness.run.
"""
import bench_harness

LEVEL = "block"


def test_block(benchmark, case, provider, bench_cfg, record_wrong):
    bench_harness.run(benchmark, case, provider, bench_cfg, record_wrong)
