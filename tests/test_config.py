"""The settings table: every EFFKERNELS_* name used in the repository is declared in effkernels/_config.py,
the README lists them all, and values are read when used (not at import)."""
import pathlib
import re
import subprocess

import pytest

from effkernels import _config

ROOT = pathlib.Path(__file__).resolve().parents[1]
# C/C++ macros share the prefix's first letters but are not settings.
_NAME = re.compile(r"\bEFFKERNELS_[A-Z0-9_]*[A-Z0-9]\b")


def _tracked_text_files():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"not a git checkout ({out.stderr.strip()}): the repository scan needs the file list")
    for rel in out.stdout.split():
        path = ROOT / rel
        if "results" in path.parts or path.suffix in (".png", ".json", ".so"):
            continue
        try:
            yield rel, path.read_text()
        except (UnicodeDecodeError, FileNotFoundError):
            continue


def test_every_setting_used_is_declared():
    used = {}
    for rel, text in _tracked_text_files():
        for name in _NAME.findall(text):
            used.setdefault(name, rel)
    undeclared = {n: f for n, f in used.items() if n not in _config.SETTINGS}
    assert not undeclared, f"settings used but not declared in effkernels/_config.py: {undeclared}"
    assert used, "the scan found no setting at all: the pattern or the file list is wrong"


def test_no_old_prefix():
    offenders = [rel for rel, text in _tracked_text_files()
                 if re.search(r"\bEFFK_(BENCH|GPU|TEST)_", text)]
    assert not offenders, f"EFFK_* settings are now EFFKERNELS_*: {offenders}"


def test_readme_lists_every_setting():
    readme = (ROOT / "README.md").read_text()
    assert _config.markdown() in readme, "README.md's settings table differs from `python -m effkernels._config --markdown`"


def test_read_when_used(monkeypatch):
    monkeypatch.setenv("EFFKERNELS_BENCH_MODE", "full")
    assert _config.get("EFFKERNELS_BENCH_MODE") == "full"
    monkeypatch.delenv("EFFKERNELS_BENCH_MODE")
    assert _config.get("EFFKERNELS_BENCH_MODE") == "quick"


def test_bad_value_names_the_setting(monkeypatch):
    monkeypatch.setenv("EFFKERNELS_EXT", "gpu")
    with pytest.raises(ValueError, match="EFFKERNELS_EXT: expected one of auto, cuda, cpu, none"):
        _config.get("EFFKERNELS_EXT")
    with pytest.raises(KeyError, match="not an effkernels setting"):
        _config.get(_config.PREFIX + "NOPE")  # built, so the repository scan does not see it
