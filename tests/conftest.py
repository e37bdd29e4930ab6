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
def on_device(monkeypatch):
    """Create tensors on helpers.DEVICE by default; cuDNN's default TF32 would make the eager
    backend's fp32 convs miss the fp32 tolerance, so it is off."""
    from helpers import DEVICE

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    with torch.device(DEVICE):
        yield


@pytest.fixture
def poisoned_empty(monkeypatch):
    """torch.empty returns NaN-filled tensors, so output elements a kernel never writes show up."""
    from helpers import poison_

    empty = torch.empty

    def nan_empty(*args, **kwargs):
        t = empty(*args, **kwargs)
        return poison_(t) if t.is_floating_point() else t

    monkeypatch.setattr(torch, "empty", nan_empty)


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
