"""``mechgym bench``: speed figures and ratios, printed, never asserted.

* agent-steps per second of every mechgym env under random legal play, against PettingZoo's
  ``rps_v2`` measured in the same run (ratio = env / rps);
* the exact subset DP against the HiGHS MILP on random packing instances (ratio = MILP / DP);
* the share of wall-clock spent inside the env during a short PPO run (needs the ``train``
  extra).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

SOLVER_CASES = ((4, 6), (6, 10), (4, 12))


def agent_steps_per_second(env: Any, seconds: float, sampler: Any) -> float:
    """Run whole episodes for about ``seconds``; count every ``step`` call."""
    env.reset(seed=0)
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for agent in env.agent_iter():
            obs, _, term, trunc, _ = env.last()
            env.step(None if term or trunc else sampler(env, agent, obs))
            steps += 1
        env.reset()
    return steps / (time.perf_counter() - start)


def env_throughput(seconds: float) -> dict[str, Any]:
    """Throughput of each available env and of rps_v2."""
    from mechgym.agents.base import MaskSampler
    from mechgym.envs.pettingzoo.registry import available

    out: dict[str, Any] = {}
    try:
        from pettingzoo.classic import rps_v2

        ref = agent_steps_per_second(
            rps_v2.env(), seconds, lambda env, a, obs: env.action_space(a).sample()
        )
    except ImportError:  # rps_v2 needs pygame (the 'bench' extra)
        ref = None
    out["rps_v2"] = ref
    rng = np.random.default_rng(0)
    envs = {}
    for e in available():
        env = e.load_env_module().env(seed=0)
        lay = env.unwrapped.layout
        draw = MaskSampler(rng, lay.sizes, lay.offsets)

        def sampler(env: Any, agent: str, obs: Any, draw: Any = draw) -> np.ndarray:
            return draw(obs["action_mask"])

        sps = agent_steps_per_second(env, seconds, sampler)
        envs[e.name] = {"steps_per_second": sps, "ratio_to_rps": sps / ref if ref else None}
    out["envs"] = envs
    return out


def solver_speed(repeats: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """Median time of the DP and of the MILP on random instances, and the ratio."""
    from mechgym.envs.solvers.packing import pack_dp, pack_milp

    rng = np.random.default_rng(seed)
    rows = []
    for k, m in SOLVER_CASES:
        pack_dp(np.zeros((k, 1 << m), dtype=np.int64))  # builds the DP's index tables for m once
        dp_t, milp_t = [], []
        for _ in range(repeats):
            W = rng.integers(0, 100, size=(k, 1 << m))
            W[rng.random(W.shape) < 0.5] = 0
            W[:, 0] = 0
            t = time.perf_counter()
            a = pack_dp(W)
            dp_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            b = pack_milp(W)
            milp_t.append(time.perf_counter() - t)
            if a.value != b.value:
                raise RuntimeError(
                    f"DP and MILP disagree on a ({k}, {m}) instance: {a.value} != {b.value}"
                )
        dp, milp = statistics.median(dp_t), statistics.median(milp_t)
        rows.append(
            {"n": k, "m": m, "dp_seconds": dp, "milp_seconds": milp, "ratio_milp_to_dp": milp / dp}
        )
    return rows


def run_bench(seconds: float = 1.5, training: bool = True, console: Any = None) -> dict[str, Any]:
    """All figures of ``mechgym bench``."""
    if console:
        console.print("[dim]measuring env throughput ...[/]")
    result: dict[str, Any] = {"throughput": env_throughput(seconds)}
    if console:
        console.print("[dim]timing DP against MILP ...[/]")
    result["solvers"] = solver_speed()
    result["training"] = None
    if training:
        try:
            from mechgym.training.bench import env_time_share
        except ImportError:
            result["training"] = {"skipped": "install the 'train' extra to time a PPO run"}
        else:
            if console:
                console.print("[dim]timing a short PPO run ...[/]")
            result["training"] = env_time_share()
    return result


def show_bench(result: dict[str, Any], console: Any) -> None:
    """Print the bench figures as tables."""
    from rich.table import Table

    thr = result["throughput"]
    t = Table(title="agent-steps per second (random legal play)")
    t.add_column("env")
    t.add_column("steps/s", justify="right")
    t.add_column("ratio to rps_v2", justify="right")
    ref = thr["rps_v2"]
    t.add_row("pettingzoo rps_v2", f"{ref:,.0f}" if ref else "n/a (install pygame)", "1.00")
    for name, r in thr["envs"].items():
        ratio = f"{r['ratio_to_rps']:.2f}" if r["ratio_to_rps"] else "n/a"
        t.add_row(name, f"{r['steps_per_second']:,.0f}", ratio)
    console.print(t)
    s = Table(title="exact subset DP vs HiGHS MILP (median seconds)")
    for col in ("n", "m", "DP", "MILP", "MILP / DP"):
        s.add_column(col, justify="right")
    for r in result["solvers"]:
        s.add_row(
            str(r["n"]),
            str(r["m"]),
            f"{r['dp_seconds']:.4f}",
            f"{r['milp_seconds']:.4f}",
            f"{r['ratio_milp_to_dp']:.1f}x",
        )
    console.print(s)
    tr = result.get("training")
    if tr:
        if "skipped" in tr:
            console.print(f"training: {tr['skipped']}")
        else:
            console.print(
                f"training: {tr['algo']} on {tr['mechanism']} ({tr['encoding']} encoding), "
                f"{tr['steps']} steps: {tr['env_share']:.0%} of wall-clock inside the env "
                f"({tr['env_seconds']:.2f} s of {tr['total_seconds']:.2f} s, "
                f"{tr['steps_per_second']:.0f} steps/s)"
            )
