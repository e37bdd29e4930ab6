"""Per-GPU tables of tuned Triton tile configs, written by `python -m effkernels.tune`, read at run time.

One JSON file per device name (`NVIDIA_H200.json`; the convention vLLM uses for its fused-MoE kernels):

    {"format": 1, "device": "NVIDIA H200", "torch": "2.11.0", "triton": "3.6.0", "date": "2026-12-01",
     "kernels": {"<kernel>": {"fields": ["dtype", "N", "C", ...],
                              "entries": [{"key": ["bf16", 128, 96, ...],
                                           "config": {"BLOCK_P": 32, "num_warps": 4, "num_stages": 1},
                                           "us": 91.3}, ...]}}}

A kernel asks `lookup(kernel, fields, key, categorical)` once per distinct key (triton._common caches the
answer): the exact key, else the nearest entry of the same shape class (the same categorical fields:
dtype, kernel size, stride, ...; nearest by the sum of |log2| ratios of the numeric fields), else None and
the kernel's heuristic. Folders searched, first hit wins: $EFFKERNELS_CONFIG_DIR, then this package.
A malformed or stale table (another format version, a kernel whose key fields changed, a config naming
parameters the kernel does not take) gives one warning and the heuristic, never an exception.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import re
import warnings

from .. import _config

FORMAT = 1
_HERE = os.path.dirname(os.path.abspath(__file__))

_tables: dict = {}          # device name -> {kernel: {"fields": tuple, "entries": {key: config}}} or {}
_listeners: list = []       # callables run by reload() (the per-kernel config caches)


def file_name(device: str) -> str:
    """The table's file name for a device name: 'NVIDIA H200' -> 'NVIDIA_H200.json'."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", device).strip("_") + ".json"


def search_path() -> list:
    extra = _config.get("EFFKERNELS_CONFIG_DIR")
    return ([extra] if extra else []) + [_HERE]


def on_reload(fn) -> None:
    """Register a cache to clear when the tables are re-read."""
    _listeners.append(fn)


def reload() -> None:
    """Forget every table read so far (and every kernel's cached pick): the next lookup reads the files again,
    honouring a changed EFFKERNELS_CONFIG_DIR."""
    _tables.clear()
    for fn in _listeners:
        fn()


def _warn(path: str, why: str) -> None:
    warnings.warn(f"effkernels: ignoring the config table {path}: {why}; the Triton kernels use their built-in "
                  "heuristic (re-run `python -m effkernels.tune` on this GPU to write a fresh one)", stacklevel=3)


def _parse(path: str, data) -> dict:
    """{kernel: {"fields": tuple, "entries": {key tuple: config dict}}}; raises ValueError on a bad file."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"expected format {FORMAT}, got {data.get('format') if isinstance(data, dict) else data!r}")
    kernels = data.get("kernels")
    if not isinstance(kernels, dict):
        raise ValueError("no 'kernels' object")
    out = {}
    for name, table in kernels.items():
        fields = tuple(table["fields"])
        entries = {}
        for e in table["entries"]:
            key, cfg = tuple(e["key"]), e["config"]
            if len(key) != len(fields) or not isinstance(cfg, dict):
                raise ValueError(f"kernel {name}: entry {e!r} does not match fields {list(fields)}")
            entries[key] = cfg
        out[name] = {"fields": fields, "entries": entries}
    return out


def table(device: str) -> dict:
    """The parsed table of `device` ({} when there is none, or when it is malformed: one warning)."""
    if device in _tables:
        return _tables[device]
    parsed = {}
    for folder in search_path():
        path = os.path.join(folder, file_name(device))
        if not os.path.exists(path):
            continue
        try:
            with open(path) as f:
                parsed = _parse(path, json.load(f))
        except (OSError, ValueError, KeyError, TypeError) as e:  # json.JSONDecodeError is a ValueError
            _warn(path, f"malformed ({type(e).__name__}: {e})")
            parsed = {}
        parsed = {k: dict(v, path=path) for k, v in parsed.items()}
        break
    _tables[device] = parsed
    return parsed


def _distance(a: tuple, b: tuple, numeric: list) -> float:
    return sum(abs(math.log2((a[i] + 1) / (b[i] + 1))) for i in numeric)


def lookup(device: str, kernel: str, fields: tuple, key: tuple, categorical: tuple, params: tuple):
    """The tuned config dict for `key` (exact, else nearest of the same class), or None.

    fields: the kernel's key field names (a table keyed otherwise is stale); params: the names a config may
    set (the kernel's tile constexprs plus num_warps / num_stages).
    """
    t = table(device).get(kernel)
    if t is None:
        return None
    if t["fields"] != tuple(fields):
        _warn(t["path"], f"kernel {kernel} is keyed by {list(t['fields'])}, the code now keys it by {list(fields)}")
        table(device).pop(kernel)
        return None
    entries = t["entries"]
    bad = {p for cfg in entries.values() for p in cfg if p not in params}
    if bad:
        _warn(t["path"], f"kernel {kernel}: configs set {sorted(bad)}, which it does not take (it takes {list(params)})")
        table(device).pop(kernel)
        return None
    cfg = entries.get(tuple(key))
    if cfg is not None:
        return cfg
    cat = [i for i, f in enumerate(fields) if f in categorical]
    numeric = [i for i in range(len(fields)) if i not in cat]
    same_class = [k for k in entries if all(k[i] == key[i] for i in cat)]
    if not same_class:
        return None
    return entries[min(same_class, key=lambda k: _distance(k, key, numeric))]


def write(path: str, device: str, kernels: dict, versions: dict) -> None:
    """Write a table: kernels = {name: {"fields": [...], "entries": [{"key": [...], "config": {...}, "us": t}]}}."""
    data = {"format": FORMAT, "device": device, **versions, "date": datetime.date.today().isoformat(),
            "kernels": kernels}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
