"""tools/gpu_check.sh and tools/sanitize_ops.py without a GPU: the check's dry run (its steps in order, each
limit within the budget even when every step runs to its limit, the settings read from effkernels/_config.py),
the tests it selects exist, and the sanitizer script has a case for every registered op."""
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_check.sh"
STEP = re.compile(r"^=== \[(\w+)\] (?:in the background, )?limit (\d+)s", re.M)


def _dry_run(tmp_path, **settings):
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFFKERNELS_GPU_")}
    env.update(EFFKERNELS_GPU_CHECK_DRY_RUN="1", PYTHON=sys.executable, **settings)
    out = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _total(log):
    return int(re.search(r"^total (\d+)s of (\d+)s", log, re.M).group(1))


def test_dry_run_steps_in_order_within_budget(tmp_path):
    log = _dry_run(tmp_path)
    steps = STEP.findall(log)
    assert [s for s, _ in steps] == ["build", "errors", "sanitizer", "tests", "tune", "sweep"]
    assert _total(log) <= 470, "the worst case (every step to its limit) overruns the default budget"
    assert "EFFKERNELS_TEST_CHILD=1" in log.split("=== [errors] limit")[1].splitlines()[0]
    tune_budget = int(re.search(r"effkernels\.tune .*--budget (\d+)", log).group(1))
    sweep_budget = int(re.search(r"run\.py .*--budget (\d+)", log).group(1))
    assert tune_budget >= 20 and sweep_budget >= 50
    summary = log.split("effkernels GPU check: summary")[1]
    assert "files (" in summary and summary.rstrip().splitlines()[-1].startswith("total ")
    assert (tmp_path / "out" / "log.txt").read_text() == log


def test_dry_run_follows_the_settings(tmp_path):
    log = _dry_run(tmp_path, EFFKERNELS_GPU_CHECK_SECONDS="900", EFFKERNELS_GPU_TUNE_SECONDS="123",
                   EFFKERNELS_GPU_CHECK_SKIP="build,errors", EFFKERNELS_GPU_TUNE_ARGS="--models b0 --batch 1")
    assert [s for s, _ in STEP.findall(log)] == ["sanitizer", "tests", "tune", "sweep"]
    assert "effkernels.tune --models b0 --batch 1 --budget 123" in log
    assert _total(log) <= 900
    short = _dry_run(tmp_path, EFFKERNELS_GPU_CHECK_SECONDS="200")  # too short for everything: steps drop out
    assert _total(short) <= 200 and "skipped (no time left)" in short


def test_selected_tests_exist():
    """The files of the default test step, and a test for each name of the error-path selection."""
    from effkernels import _config

    for path in _config.SETTINGS["EFFKERNELS_GPU_TESTS"].default.split():
        assert (ROOT / path).is_file(), f"EFFKERNELS_GPU_TESTS names {path}, which does not exist"
    names = re.search(r'^ERROR_TESTS="([^"]+)"', SCRIPT.read_text(), re.M).group(1).split(" or ")
    sources = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for name in names:
        assert re.search(rf"def test_\w*{name}", sources), f"gpu_check.sh's error tests: no test matches {name}"


def test_sanitize_ops_covers_every_op(monkeypatch, capsys):
    """Every op with a CPU kernel runs with a finite output, and an op without a case is reported."""
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    import sanitize_ops
    import torch

    real = sanitize_ops.registered_ops("cpu")
    monkeypatch.setattr(sanitize_ops, "registered_ops", lambda backend: real | {"made_up_op"})
    failed = sanitize_ops.check("cpu")
    if failed is None:
        pytest.skip("the cpu backend is unavailable (effkernels._C is not built)")
    out = capsys.readouterr().out
    assert {"dwconv_bn_act", "channel_sums", "se_excite", "se_scale", "pointwise_conv", "mbconv"} <= real
    assert failed == 1 and "cpu made_up_op: FAILED no case reaches it" in out, out
    assert out.count(": ok") == 2 * len(sanitize_ops.cases(torch.float32, "cpu", "cpu")), out


def test_summary_reads_each_step(tmp_path):
    """A real (not dry) run with stand-ins for python and compute-sanitizer that print what the real ones print:
    every step runs under its limit, the config table is copied, and the summary reports each step's result."""
    fake = tmp_path / "bin"
    fake.mkdir()
    table = tmp_path / "NVIDIA_Fake.json"
    table.write_text("{}")
    (fake / "python").write_text(f"""#!/usr/bin/env bash
case "$*" in
  *"_config.py --shell"*) exec {sys.executable} "$@" ;;
  *"-m pytest"*) echo "7 passed, 2 skipped in 0.5s" ;;
  *"-m effkernels.tune"*) echo "tune: wrote {table}"; echo "  dwconv_nhwc  3 keys tuned" ;;
  *default_path*) echo "{table}" ;;
  *) echo "stand-in python: $*" ;;
esac
""")
    (fake / "compute-sanitizer").write_text("#!/usr/bin/env bash\necho '========= ERROR SUMMARY: 0 errors'\n")
    for f in fake.iterdir():
        f.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFFKERNELS_GPU_")}
    env.update(PYTHON=str(fake / "python"), PATH=f"{fake}:{env['PATH']}")
    out = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = out.stdout.split("effkernels GPU check: summary")[1]
    for step in ("build", "errors", "tests", "sanitizer", "tune", "sweep"):
        assert re.search(rf"^{step} +ok ", summary, re.M), (step, summary)
    assert re.search(r"^errors: +7 passed, 2 skipped", summary, re.M)
    assert re.search(r"^tests: +7 passed, 2 skipped", summary, re.M)
    assert "ERROR SUMMARY: 0 errors" in summary and "  dwconv_nhwc  3 keys tuned" in summary
    assert (tmp_path / "out" / table.name).is_file()
