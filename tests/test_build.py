"""Build and packaging checks: how effkernels._C is linked, what a build for a wider ISA than the
running CPU does, and that a broken extension never breaks `import effkernels`."""
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest

from effkernels import _ext

ROOT = pathlib.Path(__file__).resolve().parents[1]
needs_ext = pytest.mark.skipif(not _ext.loaded(), reason=f"extension not built: {_ext.load_error}")


def _run_python(code, cwd, timeout=300):
    """Run `code` in a fresh interpreter whose `import effkernels` finds the package under cwd."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.ext
@needs_ext
@pytest.mark.skipif(sys.platform != "linux", reason="an ELF check")
def test_no_private_cxx_runtime():
    """_C.so must use the process's shared libstdc++, not a copy linked in by -static-libstdc++: with a private
    copy, every C++ exception of ours crashed the process (H200 machine, 2026-11-28; setup.py's -Wl,-lstdc++)."""
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf (binutils) is not installed")
    symbols = subprocess.run([readelf, "-sW", _ext._C.__file__], capture_output=True, text=True, check=True).stdout
    defined = {f[7] for f in (line.split() for line in symbols.splitlines())
               if len(f) >= 8 and f[7] in ("__cxa_throw", "__cxa_begin_catch") and f[6] != "UND"}
    assert not defined, f"{_ext._C.__file__} defines {sorted(defined)}: it was linked with a static libstdc++"


# ---------------------------------------------------------------- a build for a wider ISA

# csrc/cpu/vec.h check_cpu_capability(): the message compiled in names the ISA the build targets, and
# the CPU flags (as /proc/cpuinfo spells them) it needs.
_ISA_CHECKS = {
    "AVX-512": (b"were built for AVX-512, which this CPU lacks", {"avx512f", "avx512bw", "avx512vl", "avx512dq"}),
    "AVX2+FMA": (b"were built for AVX2+FMA, which this CPU lacks", {"avx2", "fma"}),
}

# Every C++ op the dispatcher lists, once, on the registration test's samples (tests/op_cases.py); prints
# the number of ops, then one line per op: its name and "ok" or the error.
_CALL_EVERY_OP = r"""
import sys
import torch, effkernels
from effkernels import _ext
sys.path.insert(0, "tests")
from op_cases import lowered_samples
assert _ext.loaded(), _ext.load_error
names = sorted(n.split("::")[1] for n in torch._C._dispatch_get_all_op_names() if n.startswith("effkernels::"))
samples = lowered_samples("cpu")
print(len(names), "ops", flush=True)
for name in names:
    try:
        getattr(torch.ops.effkernels, name)(*samples[name][0])
        print(name, "ok", flush=True)
    except RuntimeError as e:
        print(name, "error:", str(e).splitlines()[0], flush=True)
"""


def _cpu_flags():
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), None)
    return None if line is None else set(line.split(":", 1)[1].split())


@pytest.mark.ext
@needs_ext
def test_wider_isa_fails_clearly():
    """A build for an ISA the CPU lacks imports, and every CPU op then raises the clear error of
    csrc/cpu/vec.h (naming the ISA and the EFFKERNELS_CPU_ARCH to rebuild with) instead of dying on an
    illegal instruction. Runs where the loaded build targets an ISA this CPU lacks (e.g. an AVX-512
    build on an AVX2 machine); the child process survives a SIGILL to report it."""
    binary = pathlib.Path(_ext._C.__file__).read_bytes()
    built_for = [isa for isa, (message, _) in _ISA_CHECKS.items() if message in binary]
    assert len(built_for) <= 1, f"{_ext._C.__file__} holds the checks of {built_for}: one ISA per build"
    if not built_for:
        pytest.skip("a generic (baseline ISA) build: every x86-64 CPU runs it")
    flags = _cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo flags to compare the build's ISA with")
    isa = built_for[0]
    missing = _ISA_CHECKS[isa][1] - flags
    if not missing:
        pytest.skip(f"this CPU has {isa}, the ISA of the loaded build: the error path needs a CPU without it")
    child = _run_python(_CALL_EVERY_OP, cwd=ROOT)
    assert child.returncode == 0, f"exit {child.returncode} (SIGILL is -4)\n{child.stdout}\n{child.stderr[-3000:]}"
    count, *lines = child.stdout.splitlines()
    assert int(count.split()[0]) == len(lines) > 0, child.stdout
    for line in lines:
        assert f"error: effkernels: the CPU kernels were built for {isa}, which this CPU lacks; rebuild with " \
               "EFFKERNELS_CPU_ARCH=" in line, line


# ---------------------------------------------------------------- a broken extension

_IMPORT_WITHOUT_EXTENSION = r"""
import torch, effkernels
from effkernels import _ext, backends
assert effkernels.__file__.startswith(__import__("os").getcwd()), effkernels.__file__
assert not _ext.loaded() and "effkernels._C" in _ext.load_error, _ext.load_error
avail = effkernels.backends_available()
assert not avail["cpu"][0] and avail["cpu"][1] == _ext.load_error, avail
assert not avail["cuda"][0] and avail["eager"][0], avail
assert backends.resolve("auto", "cpu") == "eager"
x, w, b = torch.randn(1, 8, 5, 5), torch.randn(8, 1, 3, 3), torch.randn(8)
torch.testing.assert_close(effkernels.ops.dwconv_bn_act(x, w, b), effkernels.ops.dwconv_bn_act(x, w, b, backend="eager"))
try:
    effkernels.ops.dwconv_bn_act(x, w, b, backend="cpu")
    raise SystemExit("backend='cpu' ran without the extension")
except ValueError as e:
    assert str(e).startswith("backend: 'cpu' is not available here: ") and _ext.load_error in str(e), e
print("imported without the extension:", _ext.load_error)
"""


def _broken_garbage(path):
    path.write_bytes(b"\x7fELF not really a shared library")


def _broken_not_a_module(path):
    """A valid shared library that is not a Python extension (no PyInit__C): libm."""
    import ctypes.util

    lib = ctypes.util.find_library("m")
    candidates = [pathlib.Path(p) / lib for p in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64",
                                                   "/usr/lib64", "/lib", "/usr/lib")] if lib else []
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        pytest.skip("no libm shared library found to stand in for a non-module _C")
    shutil.copy(found, path)


@pytest.mark.skipif(sys.platform != "linux", reason="builds a Linux shared-library stand-in")
@pytest.mark.parametrize("make_broken", [_broken_garbage, _broken_not_a_module], ids=["garbage", "not-a-module"])
def test_broken_extension_never_breaks_import(make_broken, tmp_path):
    """A copy of the package whose _C is broken: `import effkernels` works, the C++ backends are
    unavailable with the load error as the reason, and "auto" falls back to eager."""
    shutil.copytree(ROOT / "effkernels", tmp_path / "effkernels",
                    ignore=shutil.ignore_patterns("_C*.so", "_C*.pyd", "__pycache__"))
    make_broken(tmp_path / "effkernels" / f"_C{sysconfig.get_config_var('EXT_SUFFIX')}")
    child = _run_python(_IMPORT_WITHOUT_EXTENSION, cwd=tmp_path)
    assert child.returncode == 0, f"exit {child.returncode}\n{child.stdout}\n{child.stderr[-3000:]}"
    assert "imported without the extension" in child.stdout
