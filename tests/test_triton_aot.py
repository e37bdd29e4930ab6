"""Every Triton kernel compiles ahead of time for sm_80 and sm_90, without a GPU.

Each effkernels/triton/<op>.py module must define aot_variants() (docs/CONTRACTS.md) covering every
@triton.jit kernel it defines. The compile runs in a subprocess with TRITON_INTERPRET=0: under the
interpreter (how the other tests run Triton on the CPU) @triton.jit kernels cannot be compiled.
"""
import json
import os
import pkgutil
import subprocess
import sys

import pytest

import effkernels.triton
from effkernels import backends

ARCHS = (80, 90)
MODULES = [m.name for m in pkgutil.iter_modules(effkernels.triton.__path__) if not m.name.startswith("_")]

_SCRIPT = r"""
import importlib, json, sys
from effkernels.triton import _aot
mod = importlib.import_module("effkernels.triton." + sys.argv[1])
archs = [int(a) for a in sys.argv[2:]]
out = {"has_aot_variants": hasattr(mod, "aot_variants"), "kernels": sorted(_aot.jit_functions(mod))}
if out["has_aot_variants"]:
    variants = mod.aot_variants()
    out["n_variants"] = len(variants)
    out["uncovered"] = _aot.uncovered(mod)
    out["errors"] = []
    for kernel, sig, consts in variants:
        for arch in archs:
            try:
                ck = _aot.compile_variant(kernel, sig, consts, arch)
                assert ck.asm.get("cubin"), "no cubin produced"
            except Exception as e:
                out["errors"].append(f"sm_{arch} {_aot.variant_name(kernel, consts)}: {type(e).__name__}: {e}"[:2000])
print(json.dumps(out))
"""


def test_every_op_module_is_found():
    assert "dwconv_bn_act" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_module_compiles_ahead_of_time(module):
    env = dict(os.environ, TRITON_INTERPRET="0")
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, module, *map(str, ARCHS)], env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["has_aot_variants"], f"effkernels/triton/{module}.py defines no aot_variants()"
    assert res["n_variants"] > 0 or not res["kernels"], f"{module}: aot_variants() is empty"
    assert not res["uncovered"], f"{module}: kernels missing from aot_variants(): {res['uncovered']}"
    assert not res["errors"], "\n".join(res["errors"])


@pytest.mark.skipif(not backends.triton_interpreted(), reason="checks the interpreter's error message")
def test_compile_variant_refuses_interpreted_kernels():
    from effkernels.triton import _aot
    from effkernels.triton.dwconv_bn_act import aot_variants

    kernel, sig, consts = aot_variants()[0]
    with pytest.raises(TypeError, match="TRITON_INTERPRET"):
        _aot.compile_variant(kernel, sig, consts, 90)
