"""Comparison helpers shared by the tests: outputs against a float64 reference."""
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


def poison_(t: torch.Tensor) -> torch.Tensor:
    """Fill with NaN so elements a kernel forgets to write show up."""
    return t.fill_(float("nan"))


# Where the op tests run: the GPU when there is one, else the CPU (Triton through its interpreter).
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
NATIVE = DEVICE.type  # the C++ backend that serves DEVICE: "cuda" or "cpu"


def backends_for(op: str):
    """Backends that can run `op` on DEVICE here: triton, the C++ kernels when built, eager."""
    from effkernels import _ext
    from effkernels.backends import backends_available, triton_interpreted

    native = _ext.loaded() and torch._C._dispatch_has_kernel_for_dispatch_key(f"effkernels::{op}", NATIVE.upper())
    triton_ok = backends_available()["triton"][0] and (DEVICE.type == "cuda" or triton_interpreted())
    return [b for b, ok in (("triton", triton_ok), (NATIVE, native), ("eager", True)) if ok]


def run_in_precision(model, source, x, dtype, how):
    """(model's output, source's output) for a float32 x run in `dtype`: how="cast" converts both modules
    and x, how="autocast" runs them under torch.autocast("cpu", dtype)."""
    if how == "cast":
        return model.to(dtype)(x.to(dtype)), source.to(dtype)(x.to(dtype))
    with torch.autocast("cpu", dtype=dtype):
        return model(x), source(x)
