import os

import torch

# Triton kernels run on the CPU through the interpreter when there is no GPU. This must be set
# before triton is imported anywhere.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def on_device(poisoned):
    """poisoned, and tensors created on helpers.DEVICE unless a test says otherwise."""
    from helpers import DEVICE

    with torch.device(DEVICE):
        yield


@pytest.fixture
def poisoned():
    """Uninitialised allocations come NaN-filled in their own dtype (helpers.poisoned_memory), and
    cuDNN/cuBLAS do not use TF32 (which would make the eager backend's fp32 convs miss the fp32 tolerance)."""
    from helpers import poisoned_memory

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with poisoned_memory():
            yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture
def table_dir(tmp_path, monkeypatch):
    """A folder for per-device config tables (EFFKERNELS_CONFIG_DIR), searched first; the caches of the tables
    and of the kernels' picks are dropped before and after."""
    from effkernels import configs

    monkeypatch.setenv("EFFKERNELS_CONFIG_DIR", str(tmp_path))
    configs.reload()
    yield tmp_path
    monkeypatch.delenv("EFFKERNELS_CONFIG_DIR")
    configs.reload()


def pytest_report_header(config):
    import effkernels

    rows = [f"{k}: {'yes' if ok else 'no'} ({why})" for k, (ok, why) in effkernels.backends_available().items()]
    return ["effkernels backends: " + "; ".join(rows)]
