"""Model level: EfficientNet-B{phi} inference (torchvision, or timm without torchvision) vs its converted copy.

Cases come from conftest.py (options --bench-*), timing and checks from bench_harness.run.
"""
import bench_harness

LEVEL = "model"


def test_model(benchmark, case, provider, bench_cfg, record_wrong):
    bench_harness.run(benchmark, case, provider, bench_cfg, record_wrong)
