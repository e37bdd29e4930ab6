"""Backend names and the "auto" choice.

- "triton": the fused Triton kernels (CUDA tensors; CPU tensors only under TRITON_INTERPRET=1)
- "cuda":   the hand-written CUDA kernels of effkernels._C (CUDA tensors)
- "cpu":    the C++ CPU kernels of effkernels._C (CPU tensors)
- "eager":  effkernels.reference, plain PyTorch (any device)
"""
from __future__ import annotations

import os

import torch

from . import _ext

BACKENDS = ("triton", "cuda", "cpu", "eager")


# Read once: triton reads TRITON_INTERPRET when it is imported, and ops consult these on every
# call (a function call into the extension per op would also break torch.compile graphs).
_TRITON_INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_interpreted() -> bool:
    """True when Triton kernels run in the interpreter (TRITON_INTERPRET=1), i.e. on the CPU."""
    return _TRITON_INTERPRETED


def _triton_status():
    try:
        import triton
    except ImportError as e:
        return False, f"triton is not importable ({e}); `pip install triton` (Linux)"
    return True, f"triton {triton.__version__}" + (" (interpreter, TRITON_INTERPRET=1)" if _TRITON_INTERPRETED else "")


def _status() -> dict:
    out = {"triton": _triton_status()}
    if not _ext.loaded():
        out["cuda"] = (False, _ext.load_error)
        out["cpu"] = (False, _ext.load_error)
    else:
        out["cpu"] = (True, "effkernels._C CPU kernels")
        out["cuda"] = ((True, "effkernels._C CUDA kernels") if _ext.built_with_cuda() else
                       (False, "effkernels._C was built without CUDA (no nvcc or a CPU-only torch at build "
                               "time); rebuild on a machine with a CUDA toolchain"))
    out["eager"] = (True, "plain PyTorch (effkernels.reference)")
    return out


_STATUS = _status()


def backends_available() -> dict:
    """{name: (available, reason)} for every backend on this machine (decided at import)."""
    return dict(_STATUS)


def _serves(name: str, device: torch.device) -> bool:
    if name == "eager":
        return True
    if name == "cpu":
        return device.type == "cpu"
    if name == "cuda":
        return device.type == "cuda"
    return device.type == "cuda" or (device.type == "cpu" and triton_interpreted())  # triton


def resolve(backend: str, device) -> str:
    """The concrete backend that runs on `device` for the user's `backend` choice.

    "auto": triton, then cuda, on CUDA devices; cpu on the CPU; eager where nothing else serves.
    An explicit backend that is unavailable or cannot serve the device raises ValueError.
    """
    device = torch.device(device)
    avail = _STATUS
    if backend == "auto":
        order = ("triton", "cuda") if device.type == "cuda" else ("cpu",)
        for name in order:
            if avail[name][0] and _serves(name, device):
                return name
        return "eager"
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected 'auto' or one of {list(BACKENDS)}, got {backend!r}")
    ok, why = avail[backend]
    if not ok:
        raise ValueError(f"backend: {backend!r} is not available here: {why}")
    if not _serves(backend, device):
        hint = " (set TRITON_INTERPRET=1 before importing triton to run it on the CPU)" if backend == "triton" else ""
        raise ValueError(f"backend: {backend!r} cannot run on a tensor on {device}{hint}")
    return backend
