"""Helpers shared by the tests: comparison with a float64 oracle, poisoned allocations, backends."""
import contextlib
import copy
import os
import subprocess
import sys

import pytest
import torch

# Relative-error (||out - ref|| / ||ref||) and max-abs limits per dtype. fp32 kernels accumulate
# in fp32; fp16/bf16 kernels accumulate in fp32 but round inputs and outputs.
TOL = {
    torch.float32: dict(rel=1e-5, abs=1e-4),
    torch.float16: dict(rel=2e-3, abs=2e-2),
    torch.bfloat16: dict(rel=1e-2, abs=1e-1),
}


def assert_close_to_ref(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, rel=None, abs_=None, what="output"):
    """Check out against a float64 reference by relative L2 error and max abs error."""
    assert out.shape == ref.shape, f"{what}: shape {tuple(out.shape)} != reference {tuple(ref.shape)}"
    o = out.detach().to("cpu", torch.float64)
    r = ref.detach().to("cpu", torch.float64)
    assert torch.isfinite(o).all(), f"{what}: non-finite values (unwritten elements?)"
    rel = TOL[dtype]["rel"] if rel is None else rel
    abs_ = TOL[dtype]["abs"] if abs_ is None else abs_
    err = (o - r).norm() / r.norm().clamp_min(1e-30)
    max_abs = (o - r).abs().max().item() if o.numel() else 0.0
    assert err <= rel, f"{what}: relative error {err:.3e} > {rel:.1e} ({dtype})"
    assert max_abs <= abs_, f"{what}: max abs error {max_abs:.3e} > {abs_:.1e} ({dtype})"


@contextlib.contextmanager
def poisoned_memory():
    """Within: every uninitialised allocation (torch.empty and friends from Python, at::empty inside
    the C++ kernels, the Triton launchers' buffers) comes filled with NaN in its own dtype, on any
    device, so an output element a kernel forgets to write shows as NaN. This is torch's
    deterministic mode with fill_uninitialized_memory (the fill happens in aten's empty kernels,
    which every allocation goes through); warn_only, so ops without a deterministic variant only warn."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.utils.deterministic.fill_uninitialized_memory)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.utils.deterministic.fill_uninitialized_memory = saved[2]


# Where the Triton kernels run: the GPU when there is one, else the CPU through the interpreter.
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BACKENDS = ("triton", "cpu", "cuda", "eager")


def backend_device(backend: str) -> torch.device:
    """The device a backend's tests run on: the C++ backends their own, triton and eager DEVICE."""
    return torch.device(backend) if backend in ("cpu", "cuda") else DEVICE


def backend_unavailable(backend: str):
    """Why `backend` cannot run its tests on this machine, or None when it can."""
    from effkernels.backends import backends_available, triton_interpreted

    if backend == "cuda" and not torch.cuda.is_available():
        return "needs CUDA GPU"
    if backend == "triton" and DEVICE.type == "cpu" and not triton_interpreted():
        return "no GPU and TRITON_INTERPRET is not 1"
    ok, why = backends_available()[backend]
    return None if ok else why


def backend_params(backends=BACKENDS):
    """pytest params for `backends`, each marked with its backend's marker (pytest -m cpu selects
    the C++ CPU kernels' tests) and skipped, with the reason, where it cannot run."""
    params = []
    for b in backends:
        why = backend_unavailable(b)
        marks = [getattr(pytest.mark, b)] + ([pytest.mark.skip(reason=why)] if why else [])
        params.append(pytest.param(b, marks=marks, id=b))
    return params


def interpreted(backend: str) -> bool:
    """True for the Triton backend running in the interpreter (no GPU), where a call costs 0.1-2 s."""
    from effkernels.backends import triton_interpreted

    return backend == "triton" and DEVICE.type == "cpu" and triton_interpreted()


def rotate_layout(i, j, k, n_dtypes, n_layouts):
    """A sampled backend's share of a case x dtype x layout matrix: case i in every dtype j, in one layout k
    rotating with i and j, so across the cases every dtype meets every layout."""
    return k == (i + j) % n_layouts


def sampled(backend: str) -> bool:
    """Backends whose correctness tests run a share of the case x dtype x layout product: the Triton
    interpreter (0.1-2 s a call: CI's two cores cannot afford the full product) and eager (plain torch
    ops, whose code does not branch on the case the way the kernels do)."""
    return backend == "eager" or interpreted(backend)


def matrix(ids, dtypes, layouts, backends=BACKENDS, share=rotate_layout):
    """pytest params (case index, dtype, layout, backend) of a correctness test: the full product on the
    kernels' backends, on the sampled ones the share that `share(i, j, k, n_dtypes, n_layouts)` keeps."""
    params = []
    for bp in backend_params(backends):
        backend = bp.values[0]
        for i, case_id in enumerate(ids):
            for j, dtype in enumerate(dtypes):
                for k, layout in enumerate(layouts):
                    if sampled(backend) and not share(i, j, k, len(dtypes), len(layouts)):
                        continue
                    name = f"{case_id}-{str(dtype).replace('torch.', '')}-{_name(layout)}-{backend}"
                    params.append(pytest.param(i, dtype, layout, backend, marks=bp.marks, id=name))
    return params


def _name(option):
    return "/".join(option) if isinstance(option, tuple) else str(option)


def cxx_error_inputs(device: str, request):
    """(torch.ops.effkernels, x [2, 8, 9, 9] on device) for a C++ error-path test, or None where the test
    has run, and passed, in a child process instead (CUDA: raised_in_child)."""
    if device == "cuda" and raised_in_child(request):
        return None
    return torch.ops.effkernels, torch.randn(2, 8, 9, 9, device=device)


def raised_in_child(request) -> bool:
    """Run the calling test again in a child pytest and assert it passed; False inside the child,
    where the test body runs. On an H200 (torch 2.11, 2026-11-27) the first C++ error raised by a
    CUDA call killed the process with a segmentation fault
    (benchmarks/results/2026-11-27-nvidia-h200/NOTES.md); in a child, a crash is this test's
    failure, with the child's output, not the end of the suite."""
    from effkernels import _config

    if _config.get("EFFKERNELS_TEST_CHILD"):
        return False
    child = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-m", "pytest", "-q", "-p", "no:cacheprovider", request.node.nodeid],
        cwd=request.config.rootpath, env={**os.environ, "EFFKERNELS_TEST_CHILD": "1"}, capture_output=True, text=True,
        timeout=600)
    assert child.returncode == 0, f"exit {child.returncode}\n{child.stdout[-4000:]}\n{child.stderr[-4000:]}"
    return True


def check_in_precision(model, source, x, dtype, how):
    """Runs model and source on a float32 x in `dtype` (how="cast" converts both modules and x,
    how="autocast" runs them under torch.autocast("cpu", dtype)); asserts model's output is in `dtype`
    and within TOL[dtype] of source in float64. Returns (model's, source's) relative L2 errors against it."""
    with torch.no_grad():
        ref = copy.deepcopy(source).double()(x.double())
        if how == "cast":
            out, eager = model.to(dtype)(x.to(dtype)), source.to(dtype)(x.to(dtype))
        else:
            with torch.autocast("cpu", dtype=dtype):
                out, eager = model(x), source(x)
    assert out.dtype == eager.dtype == dtype
    assert_close_to_ref(out, ref, dtype)
    return tuple(((t.double() - ref).norm() / ref.norm()).item() for t in (out, eager))


def fused_test_tile(c_in, c_exp):
    """The fused expand + depthwise tile tests pin (triton/mbconv_fused.py): under the interpreter a big one (its
    cost is per program and per tap, and ONE_K loads W_exp once); on a GPU a real candidate. Every candidate
    runs once in tests/test_mbconv_fused.py::test_every_config."""
    import triton

    from effkernels import backends
    from effkernels.triton.mbconv_fused import FUSED_CONFIGS

    if backends.triton_interpreted():
        return triton.Config({"BLOCK_P": 64, "BLOCK_C": min(1024, max(16, triton.next_power_of_2(c_exp))),
                              "BLOCK_K": max(16, triton.next_power_of_2(c_in))}, num_warps=4)
    return FUSED_CONFIGS[1]
