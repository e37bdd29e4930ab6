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


def pytest_report_header(config):
    import effkernels

    rows = [f"{k}: {'yes' if ok else 'no'} ({why})" for k, (ok, why) in effkernels.backends_available().items()]
    return ["effkernels backends: " + "; ".join(rows)]
