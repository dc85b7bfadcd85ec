"""``mechgym bench``: speed figures and ratios, printed, never asserted.

* agent-steps per second of every mechgym env under random legal play, against PettingZoo's
  ``rps_v2`` measured in the same run (ratio = env / rps);
* agent-decisions per second of every mechanism's batched rules under random legal play
  (batches of :data:`BATCH_SIZE` episodes on the env's default contexts, n = 3, m = 2),
  against the same ``rps_v2`` figure;
* the exact subset DP against the HiGHS MILP on random packing instances (ratio = MILP / DP);
* the share of wall-clock spent inside the env during a short PPO run (needs the ``train``
  extra), and the batched PPO learner's decisions per second against the vector env's.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

SOLVER_CASES = ((4, 6), (6, 10), (4, 12))
QUICK_SOLVER_CASES = ((4, 6),)
BATCH_SIZE = 4096
QUICK_BATCH_SIZE = 256
MIXTURE = {"mixture": "collusion_leveraging"}
"""The mixture's revenue mechanism in the batched figures (seed 002's M')."""


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


def env_throughput(seconds: float, tick: Callable[[], None] | None = None) -> dict[str, Any]:
    """Throughput of each available env and of rps_v2 (``tick()`` after each env)."""
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
        if tick is not None:
            tick()
    out["envs"] = envs
    return out


def batched_decisions_per_second(
    rules: Any, sampler: Any, batch_size: int, seconds: float, rng: np.random.Generator
) -> tuple[float, int]:
    """Play whole batches with random legal actions for about ``seconds`` (at least one
    batch); count every acting player's decision in a live episode. Drawing the contexts is
    timed too, as an env's reset is. Returns ``(decisions per second, episodes)``."""

    decisions = episodes = 0
    start = time.perf_counter()
    while episodes == 0 or time.perf_counter() - start < seconds:
        ctx = sampler.sample(batch_size, rng)
        state = rules.reset(ctx, rng)
        while not state.done.all():
            decisions += int(state.acting.sum())
            acts = rules.random_actions(state, rng)
            state = rules.step(ctx, state, acts, rng)
        episodes += batch_size
    return decisions / (time.perf_counter() - start), episodes


def batched_throughput(
    seconds: float,
    ref: float | None,
    batch_size: int = BATCH_SIZE,
    seed: int = 0,
    tick: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Agent-decisions per second of every mechanism's batched rules (and the mixture's).

    Each mechanism runs on its env's default sizes and contexts (n = 3, m = 2), the contexts
    drawn by the batched sampler; ``ratio_to_rps`` divides by ``ref`` (rps_v2 agent-steps
    per second in the same run). A mechanism whose batched rules cannot be loaded reports
    ``{"skipped": reason}``. ``tick()`` is called after each mechanism.
    """
    from mechgym.envs.engine.batched import batched_rules
    from mechgym.envs.model.batched_generators import BatchGenerator
    from mechgym.envs.pettingzoo.registry import available, entry

    rng = np.random.default_rng(seed)
    cases = [(e.name, e, {}) for e in available()]
    cases += [
        (name, entry("second_price_bundle"), {"mixture": rev}) for name, rev in MIXTURE.items()
    ]
    out: dict[str, Any] = {}
    for name, e, kwargs in cases:
        env = e.load_env_module().env(seed=0, **kwargs).unwrapped
        try:
            rules = batched_rules(env.mechanism, env.spec)
        except (ImportError, ValueError) as exc:
            out[name] = {"skipped": str(exc)}
            if tick is not None:
                tick()
            continue
        sampler = BatchGenerator(env.generator)
        # one small warm-up batch: first calls build lookup tables
        batched_decisions_per_second(rules, sampler, min(batch_size, 64), 0.0, rng)
        dps, episodes = batched_decisions_per_second(rules, sampler, batch_size, seconds, rng)
        out[name] = {
            "decisions_per_second": dps,
            "ratio_to_rps": dps / ref if ref else None,
            "batch_size": batch_size,
            "episodes": episodes,
            "n": env.spec.n,
            "m": env.spec.m,
        }
        if tick is not None:
            tick()
    return out


def solver_speed(
    repeats: int = 3, seed: int = 0, cases: tuple[tuple[int, int], ...] = SOLVER_CASES
) -> list[dict[str, Any]]:
    """Median time of the DP and of the MILP on random instances, and the ratio."""
    from mechgym.envs.solvers.packing import pack_dp, pack_milp

    rng = np.random.default_rng(seed)
    rows = []
    for k, m in cases:
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


def run_bench(
    seconds: float = 1.5,
    training: bool = True,
    console: Any = None,
    quick: bool = False,
    progress: bool = False,
    threads: int | None = None,
) -> dict[str, Any]:
    """All figures of ``mechgym bench``.

    ``quick`` keeps every key but measures briefly (a few hundredths of a second per env,
    batches of :data:`QUICK_BATCH_SIZE`, one small solver case, no training run): for tests.
    ``progress`` draws a bar on stderr (one tick per env, per mechanism, for the solvers and
    per training run); ``threads`` are the training runs' torch threads (default 1, reported as
    ``training.torch_threads``).
    """
    from mechgym.envs.pettingzoo.registry import available
    from mechgym.progress import progress as progress_bar

    if quick:
        seconds, training = min(seconds, 0.02), False
    cases = QUICK_SOLVER_CASES if quick else SOLVER_CASES
    n_envs = len(available())
    total = 2 * n_envs + len(MIXTURE) + 1 + (3 if training else 0)
    with progress_bar(total=total, desc="bench", unit="runs", disable=not progress) as bar:

        def stage(text: str) -> None:
            bar.set_description_str(f"bench: {text}")
            if console and bar.disable:
                console.print(f"[dim]{text} ...[/]")

        def tick() -> None:
            bar.update(1)

        stage("env throughput")
        result: dict[str, Any] = {"throughput": env_throughput(seconds, tick)}
        stage("batched rules")
        # a third of the env time each: a batch run is steadier than an episode loop
        result["batched"] = batched_throughput(
            seconds / 3,
            result["throughput"]["rps_v2"],
            QUICK_BATCH_SIZE if quick else BATCH_SIZE,
            tick=tick,
        )
        stage("DP against MILP")
        result["solvers"] = solver_speed(cases=cases)
        tick()
        result["training"] = None
        if training:
            try:
                from mechgym.training.bench import training_speed
            except ImportError:
                result["training"] = {"skipped": "install the 'train' extra to time a PPO run"}
            else:
                stage("short PPO runs (single env, vector env, batched learner)")
                result["training"] = training_speed(threads=threads, progress=tick)
        stage("RLlib sampling (exact env, vectorised env)")
        result["rllib"] = rllib_speed(quick)
    return result


def rllib_speed(quick: bool = False) -> dict[str, Any]:
    """Sampling speed of one RLlib env runner on best_belief (masked PPO modules exploring),
    one exact episode at a time (``"single"``) and on the vectorised env over the batched path
    (``"vector"``, 64 episodes per env step), with their ratio; ``{"installed": False, ...}``
    without Ray."""
    try:
        from mechgym.integrations.rllib import sampling_throughput
    except ImportError as exc:
        return {"installed": False, "skipped": str(exc)}
    steps = 64 if quick else 512
    single = sampling_throughput("best_belief", batched=False, agent_steps=steps)
    vector = sampling_throughput("best_belief", batched=True, num_envs=64, agent_steps=4 * steps)
    return {
        "installed": True,
        "mechanism": "best_belief",
        "single": single,
        "vector": vector,
        "speedup": vector["agent_steps_per_second"] / single["agent_steps_per_second"],
    }


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
    b = Table(title="batched rules: agent-decisions per second (random legal play)")
    b.add_column("mechanism")
    b.add_column("decisions/s", justify="right")
    b.add_column("ratio to rps_v2", justify="right")
    for name, r in result.get("batched", {}).items():
        if "skipped" in r:
            b.add_row(name, "n/a", r["skipped"])
            continue
        ratio = f"{r['ratio_to_rps']:.1f}" if r["ratio_to_rps"] else "n/a"
        b.add_row(name, f"{r['decisions_per_second']:,.0f}", ratio)
    console.print(b)
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
            for kind in ("single", "vector"):
                r = tr[kind]
                console.print(
                    f"training ({kind}, n_envs={r['n_envs']}): {r['algo']} on {r['mechanism']} "
                    f"({r['encoding']} encoding), {r['steps']} steps: {r['env_share']:.0%} of "
                    f"wall-clock inside the env ({r['env_seconds']:.2f} s of "
                    f"{r['total_seconds']:.2f} s, {r['steps_per_second']:.0f} steps/s)"
                )
            if tr.get("speedup"):
                console.print(f"training: vector / single steps per second = {tr['speedup']:.1f}x")
            if tr.get("torch_threads") is not None:
                console.print(
                    f"training: {tr['torch_threads']} torch thread(s) per process "
                    "(--torch-threads / MECHGYM_TORCH_THREADS)"
                )
            b = tr.get("batched")
            if b and "skipped" in b:
                console.print(f"training (batched): {b['skipped']}")
            elif b:
                for e in b.get("by_encoding", {b["encoding"]: b}).values():
                    ratio = (
                        f", {e['ratio_to_vector']:.1f}x the vector env"
                        if e.get("ratio_to_vector")
                        else ""
                    )
                    console.print(
                        f"training (batched, B={e['batch_size']}, "
                        f"{e.get('torch_threads', 1)} thread(s)): {e['algo']} on "
                        f"{e['mechanism']} ({e['encoding']} encoding, {e['learners']} learners), "
                        f"{e['decisions']} decisions in {e['total_seconds']:.2f} s: "
                        f"{e['decisions_per_second']:,.0f} decisions/s{ratio}"
                    )
    vs = result.get("versus_baseline")
    if vs:
        base = result["baseline"]
        v = Table(title=f"current / baseline {base['revision']} ({base['commit'][:10]}), same run")
        v.add_column("mechanism or env")
        v.add_column("batched rules", justify="right")
        v.add_column("env steps", justify="right")
        for name in dict.fromkeys([*vs["batched"], *vs["throughput"]]):
            b, e = vs["batched"].get(name), vs["throughput"].get(name)
            v.add_row(name, f"{b:.2f}x" if b else "n/a", f"{e:.2f}x" if e else "n/a")
        console.print(v)
    rl = result.get("rllib")
    if rl:
        if not rl.get("installed"):
            console.print("rllib: not installed (the rllib extra)")
        else:
            for kind in ("single", "vector"):
                r = rl[kind]
                console.print(
                    f"rllib sampling ({kind}, {r['num_envs']} episodes per env step): "
                    f"{r['agent_steps_per_second']:,.0f} agent steps/s, "
                    f"{r['episodes_per_second']:,.0f} episodes/s per env runner"
                )
            console.print(f"rllib: vector / single agent steps per second = {rl['speedup']:.1f}x")
