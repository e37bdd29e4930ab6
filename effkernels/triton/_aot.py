"""Ahead-of-time compilation of the Triton kernels for a GPU that is not here.

Convention (docs/CONTRACTS.md): every module effkernels/triton/<op>.py defines
`aot_variants()` -> [(kernel, signature, constexprs), ...], one per (autotune config x dtype)
its launcher can pick. The signature maps every kernel argument to a Triton type in the
notation of triton/tools/compile.py: "*fp16", "i32", "fp32", "constexpr", with ":16" appended
where the launcher's arguments are normally multiples of 16 (Triton's JIT specializes on that:
it is what lets loads become 128-bit), e.g. {"x_ptr": "*fp16:16", "C": "i32:16", "K": "constexpr"}.
`constexprs` holds the value of every "constexpr" argument plus the launch options num_warps
and num_stages.

Needs real @triton.jit kernels: run it with TRITON_INTERPRET unset or 0 (the interpreter
replaces them). Written against the triton >= 3.3 ASTSource API.
"""
from __future__ import annotations

import ast
import importlib
import pkgutil

import triton
from triton.backends.compiler import GPUTarget
from triton.runtime.jit import JITFunction

_OPTION_KEYS = ("num_warps", "num_stages")


def base_jit(obj):
    """The JITFunction under autotune/heuristics wrappers, or None for anything else."""
    while not isinstance(obj, JITFunction) and hasattr(obj, "fn"):
        obj = obj.fn
    return obj if isinstance(obj, JITFunction) else None


def compile_variant(kernel, signature: dict, constexprs: dict, arch: int):
    """Compile one kernel variant for sm_<arch> and return triton's CompiledKernel
    (.asm["ptx"], .asm["cubin"], .metadata). No GPU needed."""
    fn = base_jit(kernel)
    if fn is None:
        raise TypeError(f"kernel: expected a @triton.jit kernel, got {type(kernel).__name__} "
                        "(under TRITON_INTERPRET=1 kernels are interpreted and cannot be compiled)")
    missing = set(fn.arg_names) ^ set(signature)
    if missing:
        raise ValueError(f"signature: must name exactly the arguments of {fn.__name__}; differs on {sorted(missing)}")
    types, attrs = {}, {}
    for i, name in enumerate(fn.arg_names):
        ty, _, hint = signature[name].partition(":")
        types[name] = ty
        if hint:
            if hint != "16":
                raise ValueError(f"signature: {name}: only the ':16' divisibility hint is supported, got {hint!r}")
            attrs[(i,)] = [["tt.divisibility", 16]]
    consts = {k: v for k, v in constexprs.items() if k not in _OPTION_KEYS}
    unset = [k for k, t in types.items() if t == "constexpr" and k not in consts]
    if unset:
        raise ValueError(f"constexprs: no value for constexpr argument(s) {unset} of {fn.__name__}")
    options = {k: constexprs[k] for k in _OPTION_KEYS if k in constexprs}
    src = triton.compiler.ASTSource(fn, types, consts, attrs)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)


def variant_name(kernel, constexprs: dict) -> str:
    return base_jit(kernel).__name__ + "[" + ",".join(f"{k}={v}" for k, v in constexprs.items()) + "]"


def kernel_modules():
    """Every effkernels.triton.<op> module (the private helpers like this one excluded)."""
    import effkernels.triton as pkg

    return [importlib.import_module(f"{pkg.__name__}.{m.name}")
            for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]


def jit_functions(module) -> dict:
    """{name: JITFunction} of the @triton.jit functions (autotuned or not) defined in `module`."""
    out = {}
    for name, obj in vars(module).items():
        fn = base_jit(obj)
        if fn is not None and fn.fn.__module__ == module.__name__:
            out[name] = fn
    return out


def _called_names(fn: JITFunction) -> set:
    return {node.func.id for node in ast.walk(ast.parse(fn.src))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}


def uncovered(module) -> list:
    """Names of the module's @triton.jit functions that its aot_variants() neither compiles as a
    kernel nor reaches by calls from one: a kernel someone forgot to add."""
    funcs = jit_functions(module)
    reached = {base_jit(k) for k, _, _ in module.aot_variants()}
    todo = list(reached)
    while todo:  # helpers called by kernels, and helpers they call
        for name in _called_names(todo.pop()):
            fn = funcs.get(name)
            if fn is not None and fn not in reached:
                reached.add(fn)
                todo.append(fn)
    return sorted(name for name, fn in funcs.items() if fn not in reached)
