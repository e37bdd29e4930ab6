"""What every Triton kernel module shares: the activation, dtype names, and each kernel's tile choice.

Tile choice (`KernelConfigs`): a kernel declares its candidate `triton.Config`s (what the tuner times and
what tests/test_triton_aot.py compiles), a heuristic, and the fields of its key. A launcher calls
`pick(key)`: the first call for a key looks in the device's tuned table (effkernels.configs: exact key,
else the nearest of its shape class), else asks the heuristic; later calls are one dict lookup. No
autotuning ever runs on the call path. Under the interpreter (TRITON_INTERPRET=1, the CPU tests) the
kernel's interpreter config is used instead: the interpreter's cost is per program, so one big tile keeps
the tests fast, and the tests pin every candidate explicitly.

Every KernelConfigs is listed in KERNELS by name; `@<table>.runner` pairs it with a function that builds
random inputs for a key and launches the kernel with a given config, which is what `python -m
effkernels.tune` times (docs/CONTRACTS.md, "Tuning").
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import configs as _tables
from ..backends import triton_interpreted

TRITON_DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a TRITON_DTYPES name (a table key's dtype field)."""
    return next(d for d, n in TRITON_DTYPES.items() if n == name)

_LOG2E = tl.constexpr(1.4426950408889634)  # a constexpr: @triton.jit code reads no other globals
# The interpreter (TRITON_INTERPRET=1, read once at import like triton itself) runs no inline PTX.
_INTERPRETED = tl.constexpr(triton_interpreted())


@triton.jit
def _tanh_approx(x):
    """MUFU.TANH (sm_75+): one special-function op."""
    return tl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=f,f", [x], dtype=tl.float32, is_pure=True, pack=1)


@triton.jit
def activation(x, ACT: tl.constexpr, FAST: tl.constexpr = False):
    """The activation of effkernels._common.ACTIVATIONS code ACT, on fp32 values.

    SiLU and sigmoid take one exp2 and one fast reciprocal (two MUFU ops; tl.sigmoid's IEEE division is ~18
    instructions): relative error ~1e-7, and the same limits as torch (silu(-inf) = nan, silu(+-large) ->
    +large / -0). FAST (the kernels set it for fp16/bf16 outputs): SiLU as x/2 * (1 + tanh.approx(x/2)), one
    MUFU op and two FP instructions, same limits; its error, up to ~6e-6 * |x| (tanh.approx's measured maximum
    relative error is 1.1e-5), is far below an fp16/bf16 rounding but not below the fp32 tolerance (1e-5), so
    fp32 outputs keep the exact form, and so does the interpreter (it runs no inline PTX).
    tests/test_triton_configs.py checks the extremes against torch (the FAST form on a GPU only).
    """
    if ACT == 1:  # relu
        x = tl.maximum(x, 0.0)
    elif ACT == 2:  # relu6
        x = tl.minimum(tl.maximum(x, 0.0), 6.0)
    elif ACT == 3:  # silu
        if FAST and not _INTERPRETED:  # x/2 * (1 + tanh(x/2)): one MUFU op
            h = 0.5 * x
            x = h + h * _tanh_approx(h)
        else:
            x = x * tl.fdiv(1.0, 1.0 + tl.exp2(x * -_LOG2E), ieee_rounding=False)
    elif ACT == 4:  # hardswish
        x = x * tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) * (1.0 / 6.0)
    elif ACT == 5:  # sigmoid
        x = tl.fdiv(1.0, 1.0 + tl.exp2(x * -_LOG2E), ieee_rounding=False)
    elif ACT == 6:  # hardsigmoid
        x = tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) * (1.0 / 6.0)
    return x


@triton.jit
def multiples_of(values, VEC: tl.constexpr):
    """`values` (a tuple of ints) rewritten as multiples of VEC, which the launcher checked divides each
    (`vector_width`). Triton's JIT only knows which arguments are multiples of 16; written this way, it can
    prove 16-byte alignment, and so emit vector accesses, for channel counts and strides such as 24 or 40."""
    out = ()
    for i in tl.static_range(len(values)):
        out = out + (values[i] // VEC * VEC,)
    return out


def vector_width(x: torch.Tensor, values) -> int:
    """The VEC of `multiples_of` for a kernel on x's elements: 16 bytes of them when that divides every
    value (channel counts and strides, in elements), else 1."""
    vec = 16 // x.element_size()
    return vec if all(v % vec == 0 for v in values) else 1


def device_name(device) -> str:
    return torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else "cpu"


def launch_options(cfg: triton.Config) -> dict:
    """A config as keyword arguments of `kernel[grid](...)`."""
    return {**cfg.kwargs, "num_warps": cfg.num_warps, "num_stages": cfg.num_stages}


KERNELS: dict = {}  # name -> KernelConfigs, filled as the kernel modules are imported


class KernelConfigs:
    """One kernel's tile choice (module docstring).

    name: the kernel's name in the tables; fields: names of the key's entries; categorical: the fields a
    nearest-shape match must share (dtype, kernel size, stride, layout...); candidates(key): the configs
    worth timing for a key (all of them are compiled ahead of time); heuristic(key): the config without a
    table; interpreter: the config under TRITON_INTERPRET=1.
    make_runner(key, device) -> run(config): set by the `runner` decorator, used by the tuner.
    """

    def __init__(self, name: str, fields: tuple, categorical: tuple, candidates, heuristic,
                 interpreter: triton.Config):
        self.name, self.fields, self.categorical = name, tuple(fields), tuple(categorical)
        self.candidates, self.heuristic, self.interpreter = candidates, heuristic, interpreter
        self._cache: dict = {}
        self.make_runner = None
        _tables.on_reload(self._cache.clear)
        KERNELS[name] = self

    def runner(self, make_runner):
        """Decorator: `make_runner(key, device)` allocates random inputs shaped by `key` on `device` and returns
        `run(config)`, which launches this kernel once on them with `config` (the launcher's config=)."""
        self.make_runner = make_runner
        return make_runner

    def params(self) -> tuple:
        """What a config may set: the tile constexprs of the candidates, plus the launch options."""
        names = {k for cfg in self.all_configs() for k in cfg.kwargs}
        return tuple(sorted(names)) + ("num_warps", "num_stages")

    def all_configs(self) -> list:
        """Every config the launcher can run (the union over keys is what candidates() returns for key=None)."""
        return self.candidates(None)

    def pick(self, key: tuple, device) -> triton.Config:
        """The config for `key` on `device` (a tuple of plain values; cached per key and device)."""
        cfg = self._cache.get((key, device))
        if cfg is None:
            cfg = self._cache[(key, device)] = self._resolve(key, device)
        return cfg

    def _resolve(self, key: tuple, device) -> triton.Config:
        if triton_interpreted():
            return self.interpreter
        found = _tables.lookup(device_name(device), self.name, self.fields, key, self.categorical, self.params())
        if found is None:
            return self.heuristic(key)
        tile = {k: v for k, v in found.items() if k not in ("num_warps", "num_stages")}
        return triton.Config(tile, num_warps=found.get("num_warps", 4), num_stages=found.get("num_stages", 1))
