"""``--backend rllib`` where Ray is not installed: one line that says how to install it."""

from __future__ import annotations

import importlib.util

import typer
from mechgym.training.commands import add_commands
from typer.testing import CliRunner


def test_backend_rllib_without_ray_says_how_to_install(tmp_path) -> None:
    if importlib.util.find_spec("ray") is not None:
        from mechgym.training.rllib_jobs import load_rllib

        assert load_rllib().INSTALL_HINT  # installed: the backend loads
        return
    app = typer.Typer()
    add_commands(app)
    out = tmp_path / "o"
    for args in (
        ["train", "best_belief", "--backend", "rllib"],
        ["converge", "--backend", "rllib", "--quick"],
    ):
        res = CliRunner().invoke(app, [*args, "--out", str(out)])
        assert res.exit_code == 2, res.output
        text = " ".join(res.output.split())
        assert "pip install" in text and "rllib" in text and "Traceback" not in res.output
        assert not out.exists() or not any(out.iterdir())


def test_bench_reports_rllib_sampling_or_that_it_is_missing() -> None:
    from mechgym.bench import rllib_speed

    r = rllib_speed(quick=True)
    if importlib.util.find_spec("ray") is None:
        assert r["installed"] is False and "pip install" in r["skipped"]
        return
    assert r["installed"] is True
    for kind, envs in (("single", 1), ("vector", 64)):
        assert r[kind]["num_envs"] == envs and r[kind]["agent_steps_per_second"] > 0
    assert r["speedup"] > 0
