"""One dispatch path for every op (docs/CONTRACTS.md).

An op module (effkernels/ops/<op>.py) checks its arguments, resolves the backend, runs the eager reference
itself for "eager", and otherwise calls `run(op, backend, *kernel_args)` with the schema's arguments:

- "cuda" / "cpu": the C++ op torch.ops.effkernels.<op> (csrc/ops.cpp holds the schemas);
- "triton" called eagerly: the launcher in effkernels/triton/ directly, with its tile from the tuned table
  or the heuristic (triton/_common.py). No torch.library hop: a custom op's Python dispatch cost ~60 us per
  call on the H200's host (torch 2.11), more than the kernel on most EfficientNet layers;
- "triton" under torch.compile: the custom op torch.ops.effkernels_triton.<op>, an opaque node whose body
  is that same launcher, so the compiled graph and CUDA graphs see one op per launch.

`define` registers an op: the effkernels_triton custom op (when it has a Triton launcher) and the fake
(meta) kernel of both namespaces, so both trace under torch.compile.
"""
from __future__ import annotations

import importlib

import torch

from . import _ext

_LAUNCHERS: dict = {}   # op -> "effkernels.triton.<module>:<function>", then the function once imported


def define(op: str, fake, schema: str | None = None, launcher: str | None = None, native: bool = True) -> None:
    """Register `op`. fake: its meta function; schema: its arguments and results as in csrc/ops.cpp, without
    the name ("(Tensor x, int stride) -> Tensor"), and launcher: "module:function" of the Triton launcher
    taking the schema's arguments (both None: no Triton kernel); native: the C++ extension has the op."""
    if launcher is not None:
        _LAUNCHERS[op] = launcher

        def body(*args):  # triton is imported when the op first runs, not when effkernels is
            return triton_launcher(op)(*args)

        custom = torch.library.custom_op(f"effkernels_triton::{op}", body, mutates_args=(), schema=schema)
        custom.register_fake(fake)
    if native and _ext.loaded():
        torch.library.register_fake(f"effkernels::{op}")(fake)


def triton_launcher(op: str):
    fn = _LAUNCHERS[op]
    if isinstance(fn, str):
        module, _, name = fn.partition(":")
        fn = _LAUNCHERS[op] = getattr(importlib.import_module(module), name)
    return fn


def run(op: str, backend: str, *args):
    """Run `op` on a resolved non-eager backend with the schema's arguments."""
    if backend == "triton":
        if torch.compiler.is_compiling():
            return getattr(torch.ops.effkernels_triton, op)(*args)
        return triton_launcher(op)(*args)
    return getattr(torch.ops.effkernels, op)(*args)


def native(op: str):
    """The C++ op's default overload, torch.ops.effkernels.<op>.default, for a caller that replays recorded calls of
    `run(op, "cpu" or "cuda", ...)` (nn.BlockSequence): the same kernel without the per-call lookup."""
    return getattr(torch.ops.effkernels, op).default
