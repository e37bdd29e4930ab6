"""Loads the compiled extension effkernels._C, if it was built, and says why not otherwise.

Importing effkernels never fails because of the extension: a missing, broken or
ABI-mismatched build only makes the "cuda"/"cpu" backends unavailable, with the reason kept
in `load_error`.
"""
from __future__ import annotations

_C = None
load_error = None
try:
    from . import _C  # noqa: F811  (registers the effkernels:: ops with the dispatcher)
except ImportError as e:  # not built (pure-Python install) or built against another torch
    load_error = (f"the C++/CUDA extension effkernels._C is not importable ({e}); build it with "
                  "`pip install --no-build-isolation -e .` (see README)")
except OSError as e:  # a shared library it links to is missing
    load_error = f"effkernels._C failed to load ({e})"


def loaded() -> bool:
    return _C is not None


_BUILT_WITH_CUDA = _C is not None and bool(_C.built_with_cuda())


def built_with_cuda() -> bool:
    """True when the extension holds CUDA kernels (built where nvcc and a CUDA torch were)."""
    return _BUILT_WITH_CUDA
