"""The one record of the machine behind a result (mechgym.machine)."""

from __future__ import annotations

import json
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from mechgym import machine as machine_module
from mechgym.machine import PACKAGES, git_commit, machine

ROOT = Path(__file__).resolve().parents[1]


def test_record_states_the_machine_and_is_json() -> None:
    info = machine()
    assert set(info) == {
        "platform",
        "cpu",
        "cores",
        "python",
        "versions",
        "commit",
        "load_average",
    }
    assert info["cores"] == os.cpu_count()
    assert info["python"] == platform.python_version()
    assert info["platform"] == platform.platform()
    assert isinstance(info["cpu"], str) and info["cpu"]
    assert json.loads(json.dumps(info))["versions"] == info["versions"]


def test_versions_are_those_importlib_metadata_reports() -> None:
    versions = machine()["versions"]
    assert set(versions) == set(PACKAGES)
    assert {"numpy", "torch", "gymnasium", "pettingzoo", "stable-baselines3", "torchrl"} <= set(
        versions
    )
    for name, got in versions.items():
        try:
            expected: str | None = version(name)
        except PackageNotFoundError:
            expected = None
        assert got == expected, name
    assert versions["numpy"] is not None and versions["mechgym"] is not None


def test_commit_of_a_checkout() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not run from a git checkout")
    commit = git_commit(ROOT)
    assert commit is not None and all(c in "0123456789abcdef" for c in commit)


def test_works_outside_a_checkout_and_without_git(tmp_path: Path, monkeypatch) -> None:
    # a folder that is no git repository: no commit, the rest of the record as usual
    assert machine(tmp_path)["commit"] is None
    # no git program at all
    monkeypatch.setenv("PATH", str(tmp_path))
    assert git_commit(ROOT) is None
    assert machine(ROOT)["versions"]["numpy"] is not None


def test_cpu_model_without_proc_cpuinfo(monkeypatch) -> None:
    def no_file(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr("builtins.open", no_file)
    assert machine_module.cpu_model() == (platform.processor() or platform.machine())


def test_every_results_writer_uses_the_one_record() -> None:
    # no script or command builds a machine record of its own
    for folder in ("experiments", "mechgym", "training"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "machine.py":
                continue
            text = path.read_text(encoding="utf-8")
            assert "def machine(" not in text, path
            assert "platform.python_version" not in text, path
