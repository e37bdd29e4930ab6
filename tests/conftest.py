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


@pytest.fixture
def force_path(monkeypatch):
    """force(config, library_project=False): the Triton MBConv block's path and tile (triton/mbconv_fused.py: a
    fused tile or UNFUSED), whatever the table or the interpreter pick, and its project GEMM: the library GEMM
    (`project_into`, where gemm_paths allows one: dense channels_last) or the Triton GEMM. Returns a list of
    what ran, so a test can check it got the path it asked for: "fused" per fused-kernel launch, and per
    `project_into` call the project weights' dim (3 for per-image W', 2 for proj_w). Under the interpreter the
    Triton project gets a big tile (its own tiles are pinned in test_triton_configs.py): C_exp up to 3840 in
    32-channel K steps would dominate the run time."""
    import triton

    import effkernels.triton.mbconv as tm
    import effkernels.triton.mbconv_fused as mf
    import effkernels.triton.pointwise_conv as pw
    from effkernels import backends

    if backends.triton_interpreted():
        big = triton.Config({"BLOCK_M": 64, "BLOCK_N": 256, "BLOCK_K": 256}, num_warps=4)
        monkeypatch.setattr(pw.TABLE, "pick", lambda key, device: big)
    ran = []
    project_into, gemm_paths, fused = tm.project_into, tm.gemm_paths, mf.expand_dw_partials
    monkeypatch.setattr(tm, "project_into", lambda *a: ran.append(a[2].dim()) or project_into(*a))
    monkeypatch.setattr(mf, "expand_dw_partials", lambda *a: ran.append("fused") or fused(*a))

    def force(config, library_project=False):
        monkeypatch.setattr(mf.TABLE, "pick", lambda key, device: config)
        choice = tm._paths(1, int(library_project))
        monkeypatch.setattr(tm, "gemm_paths", lambda *a: gemm_paths(*a[:7], config=choice))  # (a[7]: config)
        return ran
    return force


def pytest_report_header(config):
    import effkernels

    rows = [f"{k}: {'yes' if ok else 'no'} ({why})" for k, (ok, why) in effkernels.backends_available().items()]
    return ["effkernels backends: " + "; ".join(rows)]
