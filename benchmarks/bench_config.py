"""What a benchmark session runs: providers, options (pytest flag or environment variable), the device,
the dtype.

Every option has a pytest flag and an environment variable (flag wins); `quick` and `full` modes
only change the defaults. See benchmarks/README.md for the table. torch and effkernels are imported
only where a session is configured, so report.py reads the provider names without them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

LEVELS = ("op", "block", "model")
# Every provider, in report order. "X+graph": X's call replayed from a CUDA graph captured once (the input
# copied into the graph's static buffer first); "X+compile": torch.compile(X, fullgraph=True).
PROVIDERS = ("eager", "eager+graph", "compile", "compile-max-autotune",
             "effkernels-triton", "effkernels-triton+graph", "effkernels-triton+compile",
             "effkernels-cuda", "effkernels-cuda+graph", "effkernels-cuda+compile",
             "effkernels-cpu", "effkernels-cpu+compile", "onnxruntime", "openvino")
FUSED = {"effkernels-triton": "triton", "effkernels-cuda": "cuda", "effkernels-cpu": "cpu"}
RUNTIMES = ("onnxruntime", "openvino")  # the model exported to ONNX (opset 17), run by that runtime on the CPU
# Whole-model deployments: only at the model level (at the op and block levels the device time shows
# what a CUDA graph would).
MODEL_ONLY = tuple(p for p in PROVIDERS if "+" in p or p in RUNTIMES)
# Models the model level can time beside EfficientNet-B{phi}: name -> (library, phi it is ordered with, resolution)
EXTRA_MODELS = {"tf_efficientnet_b0": ("timm", 0, 224), "efficientnet_v2_s": ("torchvision", 5, 384)}
DTYPES = ("fp32", "fp16", "bf16")


def split(provider: str):
    """("effkernels-cuda", "graph") for "effkernels-cuda+graph"; (provider, "") without a suffix."""
    base, _, wrap = provider.partition("+")
    return base, wrap


def tier(provider: str) -> int:
    """Cases run in the order a time budget should serve them: eager, the fused kernels, CUDA graphs and
    the runtimes first (tier 0), then torch.compile of eager and of the converted models (1), then
    max-autotune (2, the slowest to compile); within a tier, phi by phi across the levels (and by batch
    at the model level), so a budget that runs out cuts the largest models and the slowest compilations.
    run.py runs tier 0 in one pytest process and the others in a second."""
    if provider == "compile-max-autotune":
        return 2
    return 1 if provider == "compile" or split(provider)[1] == "compile" else 0


def default_providers(mode: str) -> tuple:
    """What runs without --bench-providers: every provider (those that cannot run here skip with the
    reason), except in quick mode effkernels-cpu+compile, whose compilation alone would double the
    quick CPU sweep."""
    return tuple(p for p in PROVIDERS if mode == "full" or p != "effkernels-cpu+compile")


def providers_for(level: str) -> tuple:
    return PROVIDERS if level == "model" else tuple(p for p in PROVIDERS if p not in MODEL_ONLY)

# Flag names; each reads the setting EFFKERNELS_BENCH_<NAME> of effkernels/_config.py, whose text is the help.
# Defaults depend on the mode and the device (see from_pytest).
OPTIONS = tuple((name, "EFFKERNELS_BENCH_" + name.upper().replace("-", "_")) for name in (
    "mode", "level", "phi", "model-phi", "model-batch", "models", "batch", "dtype", "layout", "op-shapes", "blocks", "resolution",
    "providers", "case-time", "threads", "budget", "outcomes"))


def add_options(parser) -> None:
    from effkernels import _config as effk_config  # noqa: PLC0415

    group = parser.getgroup("effkernels benchmarks")
    for name, env in OPTIONS:
        group.addoption(f"--bench-{name}", default=None, help=f"{effk_config.SETTINGS[env].meaning} [env {env}]")


def _raw(flag, name: str, env: str):
    from effkernels import _config as effk_config  # noqa: PLC0415

    value = flag(name)
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


def parse_batches(text: str, what: str):
    try:
        out = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise ValueError(f"{what}: expected a comma list of batch sizes like 1,32,256, got {text!r}") from None
    if not out or out[0] < 1:
        raise ValueError(f"{what}: expected batch sizes >= 1, got {text!r}")
    return out


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
    model_batches: tuple   # model level
    models: tuple          # model level, beside B{model_phis}: keys of EXTRA_MODELS
    batch: int             # op and block levels
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
        import torch  # noqa: PLC0415

        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.dtype]

    @property
    def memory_format(self):
        import torch  # noqa: PLC0415

        return torch.channels_last if self.layout == "channels_last" else torch.contiguous_format

    def as_dict(self):
        return asdict(self)


def from_pytest(config) -> BenchConfig:
    """Read every option; raise ValueError naming the option when a value is bad."""
    return from_flags(lambda name: config.getoption(f"--bench-{name}"))


def from_flags(flag) -> BenchConfig:
    """The session's options from flag(name) (the text of --bench-<name>, or None: then the environment
    variable, then the default); raise ValueError naming the option when a value is bad."""
    import torch  # noqa: PLC0415

    v = {name.replace("-", "_"): _raw(flag, name, env) for name, env in OPTIONS}
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
    if v["model_batch"]:
        model_batches = parse_batches(v["model_batch"], "--bench-model-batch")
    else:
        model_batches = [1, 32, 256] if device == "cuda" and not quick else [batch]
    if v["models"]:
        models = () if v["models"] == "none" else _choice_list(v["models"], tuple(EXTRA_MODELS), "--bench-models")
    else:
        models = () if quick else tuple(EXTRA_MODELS)
    dtype = v["dtype"] or ("bf16" if device == "cuda" else "fp32")
    if dtype not in DTYPES:
        raise ValueError(f"--bench-dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    layout = v["layout"] or "channels_last"
    if layout not in ("channels_last", "contiguous"):
        raise ValueError(f"--bench-layout: expected channels_last or contiguous, got {layout!r}")
    return BenchConfig(
        mode=mode, device=device,
        levels=_choice_list(v["level"], LEVELS, "--bench-level") if v["level"] else LEVELS,
        phis=tuple(phis), model_phis=tuple(model_phis), model_batches=tuple(model_batches), models=models, batch=batch, dtype=dtype, layout=layout,
        op_shapes=integer("op_shapes", 2 if quick else 0), blocks=integer("blocks", 1 if quick else 0),
        resolution=integer("resolution", 0),
        providers=(_choice_list(v["providers"], PROVIDERS, "--bench-providers") if v["providers"]
                   else default_providers(mode)),
        case_time=number("case_time", 0.2 if quick else 0.5), threads=integer("threads", 0), budget=number("budget", 0.0),
        outcomes=v["outcomes"] or "",
    )
