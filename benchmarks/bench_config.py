"""What a benchmark session runs: options (pytest flag or environment variable), the device, the dtype.

Every option has a pytest flag and an environment variable (flag wins); `quick` and `full` modes
only change the defaults. See benchmarks/README.md for the table.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from effkernels import _config as effk_config

LEVELS = ("op", "block", "model")
PROVIDERS = ("eager", "compile", "compile-max-autotune", "effkernels-triton", "effkernels-cuda", "effkernels-cpu")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# Flag names; each reads the setting EFFKERNELS_BENCH_<NAME> of effkernels/_config.py, whose text is the help.
# Defaults depend on the mode and the device (see from_pytest).
OPTIONS = tuple((name, "EFFKERNELS_BENCH_" + name.upper().replace("-", "_")) for name in (
    "mode", "level", "phi", "model-phi", "batch", "dtype", "layout", "op-shapes", "blocks", "resolution",
    "providers", "case-time", "threads", "budget", "outcomes"))


def add_options(parser) -> None:
    group = parser.getgroup("effkernels benchmarks")
    for name, env in OPTIONS:
        group.addoption(f"--bench-{name}", default=None, help=f"{effk_config.SETTINGS[env].meaning} [env {env}]")


def _raw(config, name: str, env: str):
    value = config.getoption(f"--bench-{name}")
    return value if value is not None else (effk_config.get(env) or None)


def parse_phis(text: str, what: str):
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        except ValueError:
            raise ValueError(f"{what}: expected integers like 0,1 or 0-7, got {text!r}") from None
    if not out or any(p < 0 or p > 7 for p in out):
        raise ValueError(f"{what}: expected phi values in 0..7 (EfficientNet-B0..B7), got {text!r}")
    return sorted(set(out))


def _choice_list(text: str, allowed, what: str):
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise ValueError(f"{what}: expected a comma list of {', '.join(allowed)}, got {text!r}")
    return tuple(t for t in allowed if t in items)


@dataclass(frozen=True)
class BenchConfig:
    mode: str
    device: str            # "cuda" or "cpu": where every provider runs
    levels: tuple
    phis: tuple            # op and block levels
    model_phis: tuple
    batch: int
    dtype: str             # key of DTYPES
    layout: str
    op_shapes: int         # 0 = all
    blocks: int            # 0 = all
    resolution: int        # 0 = each variant's paper resolution
    providers: tuple
    case_time: float
    threads: int           # 0 = torch's default
    budget: float          # 0 = none
    outcomes: str          # path or ""

    @property
    def torch_dtype(self):
        return DTYPES[self.dtype]

    @property
    def memory_format(self):
        return torch.channels_last if self.layout == "channels_last" else torch.contiguous_format

    def as_dict(self):
        return asdict(self)


def from_pytest(config) -> BenchConfig:
    """Read every option; raise ValueError naming the option when a value is bad."""
    v = {name.replace("-", "_"): _raw(config, name, env) for name, env in OPTIONS}
    mode = v["mode"] or "quick"
    if mode not in ("quick", "full"):
        raise ValueError(f"--bench-mode: expected quick or full, got {mode!r}")
    quick = mode == "quick"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    phis = parse_phis(v["phi"] or ("0,1" if quick else "0-7"), "--bench-phi")
    model_phis = parse_phis(v["model_phi"], "--bench-model-phi") if v["model_phi"] else ([0] if quick else phis)

    def integer(name, default):
        text = v[name]
        try:
            n = int(text) if text is not None else default
        except ValueError:
            raise ValueError(f"--bench-{name.replace('_', '-')}: expected an integer, got {text!r}") from None
        if n < 0:
            raise ValueError(f"--bench-{name.replace('_', '-')}: expected >= 0, got {n}")
        return n

    def number(name, default):
        text = v[name]
        try:
            return float(text) if text is not None else default
        except ValueError:
            raise ValueError(f"--bench-{name.replace('_', '-')}: expected a number of seconds, got {text!r}") from None

    batch = integer("batch", 2 if quick else 8)
    if batch < 1:
        raise ValueError("--bench-batch: expected >= 1")
    dtype = v["dtype"] or ("bf16" if device == "cuda" else "fp32")
    if dtype not in DTYPES:
        raise ValueError(f"--bench-dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    layout = v["layout"] or "channels_last"
    if layout not in ("channels_last", "contiguous"):
        raise ValueError(f"--bench-layout: expected channels_last or contiguous, got {layout!r}")
    return BenchConfig(
        mode=mode, device=device,
        levels=_choice_list(v["level"], LEVELS, "--bench-level") if v["level"] else LEVELS,
        phis=tuple(phis), model_phis=tuple(model_phis), batch=batch, dtype=dtype, layout=layout,
        op_shapes=integer("op_shapes", 2 if quick else 0), blocks=integer("blocks", 1 if quick else 0),
        resolution=integer("resolution", 0),
        providers=_choice_list(v["providers"], PROVIDERS, "--bench-providers") if v["providers"] else PROVIDERS,
        case_time=number("case_time", 0.2 if quick else 0.5), threads=integer("threads", 0), budget=number("budget", 0.0),
        outcomes=v["outcomes"] or "",
    )
