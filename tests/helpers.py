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
