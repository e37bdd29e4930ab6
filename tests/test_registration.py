"""torch.library.opcheck over every (namespace, op, device): the C++ ops (namespace effkernels) and the
Triton custom ops (effkernels_triton), on every device that serves them here.

opcheck checks the schema (aliasing, mutation), the fake (meta) kernel against the real one, the
autograd registration, and tracing through AOTAutograd with dynamic shapes. An op without a fake
kernel fails here (it would break torch.compile), and so does an op without samples: the ops are
listed from the dispatcher, not by hand, so a new op cannot go unchecked.
"""
import pytest
import torch

import effkernels.ops  # noqa: F401  (registers the Triton custom ops and every fake kernel)
from effkernels import _ext
from helpers import backend_device, backend_unavailable
from op_cases import lowered_samples

NAMESPACES = {"effkernels": ("cpu", "cuda"), "effkernels_triton": ("triton",)}
# No tensor argument, so no kernel and no fake: each is checked where it is used (mbconv_path in
# test_cpu_mbconv_fused.py, parallel_tasks_trace in test_cpu_parallel.py).
NO_KERNEL = {"mbconv_path", "parallel_tasks_trace"}
# The cpu backend's packed-weight ops (docs/CONTRACTS.md): a CPU kernel only.
CPU_ONLY = {"pack_pointwise_weight", "pointwise_conv_packed", "mbconv_packed", "activation_", "conv_bn_act"}


def _ops(namespace):
    return sorted(n.split("::")[1] for n in torch._C._dispatch_get_all_op_names() if n.startswith(namespace + "::"))


def _params():
    params = []
    for namespace, backends in NAMESPACES.items():
        names = _ops(namespace)
        if namespace == "effkernels" and not _ext.loaded():
            params.append(pytest.param(namespace, "*", "cpu", marks=[pytest.mark.cpu, pytest.mark.skip(
                reason=f"no C++ ops to check: {_ext.load_error}")], id=f"{namespace}-cpu"))
            continue
        assert names, f"no {namespace}:: op is registered"
        for backend in backends:
            why = backend_unavailable(backend)
            device = backend_device(backend).type
            for name in names:
                if name in NO_KERNEL or (backend == "cuda" and name in CPU_ONLY):
                    continue
                marks = [getattr(pytest.mark, backend)] + ([pytest.mark.skip(reason=why)] if why else [])
                params.append(pytest.param(namespace, name, device, marks=marks, id=f"{namespace}::{name}-{device}"))
    return params


@pytest.mark.parametrize("namespace,name,device", _params())
def test_opcheck(namespace, name, device):
    samples = lowered_samples(device)
    assert name in samples, f"no sample for {namespace}::{name}: add one to tests/op_cases.py lowered_samples"
    op = getattr(getattr(torch.ops, namespace), name).default
    if namespace == "effkernels":
        key = "CUDA" if device == "cuda" else "CPU"
        assert torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), key), f"{op.name()} has no {key} kernel"
    for args in samples[name]:
        torch.library.opcheck(op, args)
