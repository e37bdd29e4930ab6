"""The benchmark suite's pytest plumbing: options, parametrization (level x phi x shape x provider),
ordering, the session time budget, and what lands in the JSON next to pytest-benchmark's timings.

    pytest benchmarks --benchmark-only -v                       # quick sweep
    pytest benchmarks --benchmark-only --bench-mode full        # every shape, phi 0..7 (GPU)

Triton never runs in the interpreter here: without a GPU its provider skips (see bench_harness).
"""
from __future__ import annotations

import json
import time

import pytest
import torch

import bench_cases
import bench_config
import bench_harness



def pytest_addoption(parser):
    bench_config.add_options(parser)


def pytest_configure(config):
    try:
        cfg = bench_config.from_pytest(config)
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.device == "cuda":
        torch.backends.cudnn.benchmark = True  # eager's strongest cuDNN setting; its autotuning falls in setup_s
        # The profiler (what one call launches) must start once before the first CUDA graph exists, or
        # profiling a graph replay later can fail (pytorch#75504; torch's documented workaround).
        init = getattr(getattr(torch.profiler, "_utils", None), "_init_for_cuda_graphs", None)
        if init is not None:
            init()
    config._effk = {"cfg": cfg, "start": time.monotonic(), "outcomes": {}, "items": {}}


def _state(config) -> dict:
    return config._effk


def pytest_report_header(config):
    c = _state(config)["cfg"]
    return [f"effkernels bench: mode={c.mode} device={c.device} dtype={c.dtype} {c.layout} batch={c.batch} "
            f"levels={','.join(c.levels)} phi={list(c.phis)} model_phi={list(c.model_phis)} "
            f"model_batch={list(c.model_batches)} models={','.join(c.models) or 'none'} "
            f"op_shapes={c.op_shapes or 'all'} blocks={c.blocks or 'all'} "
            f"resolution={c.resolution or 'paper'} budget={f'{c.budget:g}s' if c.budget else 'none'} threads={torch.get_num_threads()}",
            f"effkernels bench providers: {', '.join(c.providers)}"]


def _cases(level: str, c) -> list:
    if level == "op":
        return bench_cases.op_cases(c.phis, c.batch, c.op_shapes, c.resolution)
    if level == "block":
        return bench_cases.block_cases(c.phis, c.batch, c.blocks, c.resolution)
    return bench_cases.model_cases(c.model_phis, c.model_batches, c.models, c.resolution)


def pytest_generate_tests(metafunc):
    level = getattr(metafunc.module, "LEVEL", None)
    if level is None or "case" not in metafunc.fixturenames:
        return
    c = _state(metafunc.config)["cfg"]
    cases = _cases(level, c)  # levels and providers not selected are deselected after collection
    metafunc.parametrize("case", cases, ids=[k.id for k in cases])
    metafunc.parametrize("provider", bench_config.providers_for(level))


def pytest_collection_modifyitems(config, items):
    st = _state(config)
    c = st["cfg"]
    keep, dropped = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        if spec is None or "case" not in spec.params:
            keep.append(item)
            continue
        case, provider = spec.params["case"], spec.params["provider"]
        if case.level not in c.levels or provider not in c.providers:
            dropped.append(item)
            continue
        st["items"][item.nodeid] = (case, provider)
        kw = {"group": f"{case.level} B{case.phi} {case.id}"}
        if c.device == "cuda":
            kw["timer"] = bench_harness.sync_timer
        item.add_marker(pytest.mark.benchmark(**kw))
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    order = {nodeid: i for i, nodeid in enumerate(it.nodeid for it in keep)}

    def key(item):
        if item.nodeid not in st["items"]:
            return (-1, 0, 0, order[item.nodeid])
        case, provider = st["items"][item.nodeid]
        return (bench_config.tier(provider), case.phi, bench_config.LEVELS.index(case.level), case.batch, order[item.nodeid])

    items[:] = sorted(keep, key=key)


def pytest_runtest_setup(item):
    st = _state(item.config)
    budget = st["cfg"].budget
    if item.nodeid in st["items"] and budget and time.monotonic() - st["start"] > budget:
        pytest.skip(f"the session's time budget (--bench-budget {budget:g} s) ran out before this case")


@pytest.fixture
def bench_cfg(request):
    return _state(request.config)["cfg"]


@pytest.fixture
def record_wrong(request):
    outcomes = _state(request.config)["outcomes"]
    return lambda info: outcomes.__setitem__(request.node.nodeid, info)


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each non-timed outcome (skip with its reason, error) for the report."""
    st = _state(item.config)
    if item.nodeid not in st["items"] or call.when == "teardown":
        return
    if call.excinfo is None or item.nodeid in st["outcomes"]:
        return
    case, provider = st["items"][item.nodeid]
    base = dict(level=case.level, phi=case.phi, case=case.id, shape=case.shape, kind=case.kind, provider=provider,
                batch=case.batch, resolution=case.resolution, model=dict(case.params).get("model"))
    exc = call.excinfo.value
    if isinstance(exc, pytest.skip.Exception):
        st["outcomes"][item.nodeid] = dict(base, status="skipped", reason=str(exc.msg))
    else:
        text = call.excinfo.exconly().strip().splitlines()
        st["outcomes"][item.nodeid] = dict(base, status="error", reason=(text[-1] if text else "")[:400])


def _effk_json(config) -> dict:
    st = _state(config)
    c = st["cfg"]
    try:
        dev = bench_harness.device_info(c.device)
    except Exception as e:  # noqa: BLE001 (the report should still say what ran)
        dev = {"device": c.device, "error": repr(e)}
    return {"config": c.as_dict(), "device": dev, "outcomes": list(st["outcomes"].values())}


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["effkernels"] = bench_harness.device_info(_state(config)["cfg"].device)


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["effkernels"] = _effk_json(config)


def pytest_sessionfinish(session, exitstatus):
    path = _state(session.config)["cfg"].outcomes
    if path:
        with open(path, "w") as f:
            json.dump(_effk_json(session.config), f, indent=1, default=str)


def pytest_terminal_summary(terminalreporter, config):
    st = _state(config)
    if not st["items"]:
        return
    info = bench_harness.device_info.cache_info()
    wrong = [o for o in st["outcomes"].values() if o.get("status") == "wrong"]
    terminalreporter.section("effkernels bench")
    if info.currsize:
        d = bench_harness.device_info(st["cfg"].device)
        terminalreporter.write_line(f"device: {d['name']}; measured copy bandwidth {d['copy_bw_gbps']} GB/s")
    for o in wrong:
        terminalreporter.write_line(f"WRONG {o['provider']} {o['case']}: rel err {o['rel_err']:.3e} > {o['tol']:.1e}")
    terminalreporter.write_line("render a report: python benchmarks/report.py <the --benchmark-json file>")
