"""Every environment setting of effkernels, in one place: its name, default, when it is read, what it means.

All names start with EFFKERNELS_. Values are read when they are used (`get`), never cached at
import, so a test or a tool that sets one before the call sees it take effect, whatever ran before.
This file imports nothing but the standard library: setup.py loads it by path to read the build
settings before torch or the package can be imported.

    python -m effkernels._config             # every setting, its current value and meaning
    python -m effkernels._config --markdown  # the README's table (tests/test_config.py checks they agree)
    python effkernels/_config.py --shell EFFKERNELS_GPU_   # NAME='value' lines for a shell script to eval

Settings that are not ours and that effkernels respects: TRITON_INTERPRET (Triton's, read when triton
is imported: 1 runs Triton kernels on the CPU), TORCH_CUDA_ARCH_LIST and MAX_JOBS (torch's extension
build).
"""
from __future__ import annotations

import os
import sys
from typing import NamedTuple

PREFIX = "EFFKERNELS_"


class Setting(NamedTuple):
    name: str
    default: str
    when: str          # who reads it and when
    meaning: str
    choices: tuple = ()  # allowed values ('' = any)


# (who reads them and when, ((name after the prefix, default, meaning[, allowed values]), ...)), in the README's order.
_TABLE = (
    ("setup.py, when the extension is built", (
        ("EXT", "auto", "what to compile: auto (CUDA + CPU kernels when torch is a CUDA build and nvcc is found, "
         "else CPU only), cuda, cpu, or none (pure Python: Triton and eager backends)", "auto cuda cpu none"),
        ("CPU_ARCH", "auto", "vector ISA of the CPU kernels: auto (the one torch's own kernels use on the build "
         "machine), avx512, avx2 or generic", "auto avx512 avx2 generic"))),
    ("effkernels.triton, when the first Triton kernel picks its tile (effkernels.configs.reload() reads it again)", (
        ("CONFIG_DIR", "", "a folder of per-GPU config tables (<device name>.json, written by `python -m "
         "effkernels.tune`) searched before the ones shipped in effkernels/configs/"),)),
    ("benchmarks/, when a benchmark session starts (the pytest flag --bench-<name> wins)", (
        ("BENCH_MODE", "quick", "quick (a few minutes on a laptop CPU) or full (every shape, phi 0..7)", "quick full"),
        ("BENCH_LEVEL", "", "comma list of levels: op,block,model (default: all)"),
        ("BENCH_PHI", "", "phi list for the op and block levels, e.g. 0,1 or 0-7 (quick: 0,1; full: 0-7)"),
        ("BENCH_MODEL_PHI", "", "phi list for the model level (quick: 0; full: same as the op/block phi)"),
        ("BENCH_MODEL_BATCH", "", "comma list of batch sizes for the model level (default: the batch size; full "
         "mode on a GPU: 1,32,256)"),
        ("BENCH_MODELS", "", "models the model level times beside EfficientNet-B{phi}: comma list of "
         "tf_efficientnet_b0 (timm), efficientnet_v2_s (torchvision), or none (quick: none; full: both)"),
        ("BENCH_BATCH", "", "batch size of the op and block levels, and of the model level unless "
         "EFFKERNELS_BENCH_MODEL_BATCH is set (quick: 2; full: 8)"),
        ("BENCH_DTYPE", "", "bf16 | fp16 | fp32 (default: bf16 on a GPU, fp32 on the CPU)"),
        ("BENCH_LAYOUT", "", "channels_last (default) | contiguous"),
        ("BENCH_OP_SHAPES", "", "op-level shapes per phi, heaviest first (depthwise layers for the dwconv and SE "
         "cases; expand and project 1x1 convs each for the pointwise cases); 0 = every distinct one (quick: 2; "
         "full: 0)"),
        ("BENCH_BLOCKS", "", "stage-first MBConv blocks per phi, heaviest first; 0 = all 7 (quick: 1; full: 0)"),
        ("BENCH_RESOLUTION", "", "input resolution for every phi (default: each variant's paper resolution)"),
        ("BENCH_PROVIDERS", "", "comma list of providers to run (default: all; the rest are deselected)"),
        ("BENCH_CASE_TIME", "", "seconds of timed rounds per case (quick: 0.2; full: 0.5)"),
        ("BENCH_THREADS", "", "CPU runs: torch intra-op threads (default: torch's choice; 1 gives steadier numbers "
         "on a shared machine)"),
        ("BENCH_BUDGET", "", "seconds for the whole session; cases that would start later skip (default: none)"),
        ("BENCH_OUTCOMES", "", "also write the session's skips, wrong outputs and device info to this JSON file"))),
    ("tools/gpu_check.sh, when it starts", (
        ("GPU_CHECK_SECONDS", "470", "overall time budget of the GPU check, in seconds; every step's limit is "
         "taken from it"),
        ("GPU_CHECK_DRY_RUN", "0", "1: print the check's steps and their time limits instead of running them", "0 1"),
        ("GPU_CHECK_SKIP", "", "comma list of steps of the GPU check to leave out (build, errors, tests, sanitizer, "
         "tune, sweep)"),
        ("GPU_TESTS", "tests/test_registration.py tests/test_mbconv.py tests/test_dwconv_bn_act.py "
         "tests/test_squeeze_excite.py tests/test_pointwise_conv.py tests/test_nn.py tests/test_convert.py "
         "tests/test_mbconv_fused.py tests/test_triton_dwconv.py tests/test_triton_configs.py",
         "pytest arguments of the GPU check's test step (the tests that run kernels on the GPU; the rest runs in CI)"),
        ("GPU_TESTS_SECONDS", "90", "time cap of the GPU check's test step (compute-sanitizer runs alongside it), "
         "in seconds"),
        ("GPU_TUNE_ARGS", "--models 0-7 --batch 32 --dtype bf16", "`python -m effkernels.tune` options of the GPU "
         "check's tuning step (the sweep's shapes first)"),
        ("GPU_TUNE_SECONDS", "60", "time budget of the GPU check's tuning step, in seconds"),
        ("GPU_SWEEP_ARGS", "--bench-batch 32 --bench-op-shapes 1 --bench-blocks 1 --bench-case-time 0.2",
         "pytest options of the GPU check's benchmark sweep"),
        ("GPU_SWEEP_RUN_ARGS", "--mode full", "benchmarks/run.py options of the GPU check's sweep"))),
    ("tests/, internal", (
        ("TEST_CHILD", "", "1: the C++ error-path tests run in this process, not in a child (set by those tests for "
         "their child, and by tools/gpu_check.sh to check every C++ exception in one process); not for users"),)),
)
SETTINGS = {PREFIX + name: Setting(PREFIX + name, default, when, meaning, tuple(choices[0].split()) if choices else ())
            for when, rows in _TABLE for name, default, meaning, *choices in rows}


def get(name: str) -> str:
    """The setting's current value (the environment, else its default), checked against its choices."""
    try:
        s = SETTINGS[name]
    except KeyError:
        raise KeyError(f"name: {name!r} is not an effkernels setting (see effkernels/_config.py)") from None
    value = os.environ.get(name, s.default)
    if s.choices and value.lower() not in s.choices:
        raise ValueError(f"{name}: expected one of {', '.join(s.choices)}, got {value!r}")
    return value.lower() if s.choices else value


def markdown() -> str:
    """The table of settings the README carries."""
    rows = ["| setting | default | read by, when | meaning |", "|---|---|---|---|"]
    rows += [f"| `{s.name}` | {('`' + s.default + '`') if s.default else '–'} | {s.when} | {s.meaning} |"
             for s in SETTINGS.values()]
    return "\n".join(rows)


def shell(prefix: str) -> str:
    """`NAME='value'` lines (current values, shell-quoted) of the settings whose names start with prefix."""
    import shlex

    return "\n".join(f"{n}={shlex.quote(get(n))}" for n in SETTINGS if n.startswith(prefix))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--markdown"]:
        print(markdown())
        return 0
    if len(argv) == 2 and argv[0] == "--shell":
        print(shell(argv[1]))
        return 0
    if argv:
        print("usage: python -m effkernels._config [--markdown | --shell PREFIX]", file=sys.stderr)
        return 2
    for s in SETTINGS.values():
        print(f"{s.name}={os.environ.get(s.name, s.default)!s:<14} {s.meaning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
