"""``mechgym evaluate --batched``: expected figures estimated on the batched path.

Episodes run as batches through a mechanism's batched rules
(:func:`~mechgym.envs.engine.batched.batched_rules`, :func:`~mechgym.envs.engine.batched.rollout`)
with batched scripted agents (:func:`~mechgym.agents.batched.batched_agents`), chance drawn
from one seeded generator. Contexts come from a fixed context (every episode on it) or from a
generator spec through the batched sampler (:mod:`mechgym.envs.model.batched_generators`),
each drawn context played ``episodes`` times. A report has the keys of the sampled report of
``mechgym evaluate`` plus the standard error of every mean.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from mechgym.envs.engine.batched import BatchState, ContextBatch, batched_rules, rollout
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.game import EnvSpec, Evaluation, Mechanism, require_kind
from mechgym.envs.model.outcome import Outcome

DEFAULT_BATCH_SIZE = 4096
"""Episodes per batch; larger runs are split into batches of this size."""


def batched_profile(name: str, n: int, agents: str) -> list[tuple[Any, list[int]]]:
    """Batched policies and the players each acts for, from an ``--agents`` spec.

    Parameters
    ----------
    name : str
        The mechanism's name (``mech.name``: ``"mixture"`` for a mixture).
    n : int
        Number of players.
    agents : str
        ``"predicted"``, a deviation name, ``"random"``, or one name per player separated by
        commas (as the exact ``--agents``).
    """
    from mechgym.agents.batched import RandomBatched, batched_agents

    names = [a.strip() for a in agents.split(",")]
    try:
        scripted = batched_agents(name)
    except (ImportError, KeyError):
        if set(names) != {"random"}:  # random legal play needs no scripted agents
            raise ParameterError("--batched", f"{name} has no batched agents yet") from None
        return [(RandomBatched(), list(range(n)))]
    if len(names) == 1:
        names = names * n
    if len(names) != n:
        raise ParameterError(
            "--agents", f"give one name or {n} names (one per player), got {len(names)}"
        )
    groups: dict[str, list[int]] = {}
    for i, a in enumerate(names):
        groups.setdefault(a, []).append(i)
    out = []
    for a, players in groups.items():
        if a == "predicted":
            policy = scripted.predicted
        elif a in scripted.deviations:
            policy = scripted.deviations[a]
        elif a == "random":
            policy = RandomBatched()
        else:
            known = ", ".join(["predicted", *scripted.deviations])
            raise ParameterError("--agents", f"unknown agent '{a}' for {name}; known: {known}")
        out.append((policy, players))
    return out


class _Stats:
    """Per-context count, mean and centred sum of squares, merged batch by batch (Chan et
    al.'s pairwise update: no cancellation when every episode gives the same figure)."""

    def __init__(self, K: int, width: tuple[int, ...] = ()) -> None:
        self.count = np.zeros(K)
        self.mean = np.zeros((K, *width))
        self.m2 = np.zeros((K, *width))

    def add(self, x: np.ndarray, group: np.ndarray) -> None:
        K = len(self.count)
        cnt = np.bincount(group, minlength=K).astype(np.float64)
        c = cnt.reshape(K, *([1] * (x.ndim - 1)))
        s1 = np.zeros_like(self.mean)
        np.add.at(s1, group, x)
        mean_b = np.divide(s1, c, out=np.zeros_like(s1), where=c > 0)
        m2_b = np.zeros_like(self.m2)
        np.add.at(m2_b, group, (x - mean_b[group]) ** 2)
        n_a = self.count.reshape(c.shape)
        total = n_a + c
        delta = mean_b - self.mean
        frac = np.divide(c, total, out=np.zeros_like(c), where=total > 0)
        self.mean = self.mean + delta * frac
        self.m2 = self.m2 + m2_b + delta**2 * n_a * frac
        self.count += cnt

    def result(self, k: int) -> tuple[Any, Any]:
        """Mean and standard error of the mean of context ``k`` (``None`` for one episode)."""
        N = self.count[k]
        if N < 2:
            return self.mean[k], None
        return self.mean[k], np.sqrt(self.m2[k] / (N - 1) / N)


MAX_DISTINCT_OUTCOMES = 4096
"""Distinct outcomes kept per context for probability guarantees (beyond: none are kept)."""

_PRICE_DENOMINATOR = 10**6  # exact prices are rationals with small denominators (ε, δ, 1/n)


class _Outcomes:
    """Per-context counts of distinct terminal outcomes: the empirical distribution that a
    guarantee stated as a probability (M6's P[SW = MSW and Σ P = 0]) is evaluated on."""

    def __init__(self, K: int) -> None:
        self.counts: list[dict[tuple[float, ...], int] | None] = [{} for _ in range(K)]

    def add(self, out: Any, group: np.ndarray) -> None:
        rows = np.concatenate(
            [
                group[:, None].astype(np.float64),
                out.alloc.astype(np.float64),
                out.prices,
                out.state[:, None].astype(np.float64),
                out.destroyed[:, None].astype(np.float64),
            ],
            axis=1,
        )
        keys, counts = np.unique(rows, axis=0, return_counts=True)
        for key, c in zip(keys.tolist(), counts.tolist(), strict=True):
            table = self.counts[int(key[0])]
            if table is None:
                continue
            table[tuple(key[1:])] = table.get(tuple(key[1:]), 0) + c
            if len(table) > MAX_DISTINCT_OUTCOMES:
                self.counts[int(key[0])] = None

    def outcomes(self, k: int, n: int, kind: str, N: int) -> list[tuple[Fraction, Outcome]]:
        """``(probability, Outcome)`` pairs of context ``k`` (empty when too many distinct)."""
        table = self.counts[k]
        if table is None:
            return []
        out = []
        for key, c in table.items():
            alloc = tuple(int(a) for a in key[:n])
            # float prices back to the exact rationals they approximate
            prices = tuple(
                Fraction(p).limit_denominator(_PRICE_DENOMINATOR) for p in key[n : 2 * n]
            )
            state, destroyed = int(key[2 * n]), int(key[2 * n + 1])
            if kind == "states":
                o = Outcome((), prices, state=state)
            else:
                o = Outcome(alloc, prices, destroyed=destroyed)
            out.append((Fraction(c, N), o))
        return out


def batched_reports(
    mech: Mechanism,
    source: Any,
    agents: str,
    episodes: int,
    contexts: int,
    rng: np.random.Generator,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Estimate expected revenue, welfare and utilities on the batched path.

    Parameters
    ----------
    mech : Mechanism
        The exact mechanism (its constants are the batched rules' constants).
    source : context or generator
        A context (every episode is played on it) or an exact generator (``contexts``
        contexts are drawn at once with its batched sampler).
    agents : str
        An ``--agents`` spec, see :func:`batched_profile`.
    episodes : int
        Episodes per context.
    contexts : int
        Contexts drawn from a generator (ignored for a context).
    rng : numpy.random.Generator
        Source of every random draw (contexts, chance, random agents).
    batch_size : int
        Episodes per batch.
    progress : bool
        Show a progress bar (stderr) when the run takes more than one batch.

    Returns
    -------
    list of dict
        One report per context, with the keys of the sampled report plus
        ``expected_revenue_stderr``, ``expected_welfare_stderr``,
        ``expected_utilities_stderr`` (``None`` for a single episode) and ``batched``. The
        guarantee is judged on the empirical distribution of outcomes with the bootstrap
        interval of :mod:`mechgym.sampled` (up to :data:`MAX_DISTINCT_OUTCOMES` distinct
        outcomes; beyond, on the sampled means, point verdict only).
    """
    from mechgym.progress import progress as progress_bar
    from mechgym.sampled import guarantee_from_counts

    if episodes < 1 or contexts < 1 or batch_size < 1:
        raise ParameterError("--episodes/--contexts/--batch-size", "must be positive integers")
    require_kind(mech, source)
    if hasattr(source, "sample"):  # a generator: draw every context at once
        from mechgym.envs.model.batched_generators import BatchGenerator

        base = BatchGenerator(source).sample(contexts, rng)
        K = contexts
    else:
        base = ContextBatch.from_contexts([source])
        K = 1
    n, m = base.n, base.m
    vcap = int(source.value_cap)
    spec = EnvSpec(n=n, m=m, value_cap=vcap, price_cap=mech.default_price_cap(n, vcap))
    rules = batched_rules(mech, spec)
    profile = batched_profile(mech.name, n, agents)

    E = K * episodes
    group_all = np.repeat(np.arange(K), episodes)
    rev, sw, ut = _Stats(K), _Stats(K), _Stats(K, (n,))
    seen = _Outcomes(K)
    starts = range(0, E, batch_size)
    bar = progress_bar(
        starts, desc=f"{mech.name} batches", unit="batch", disable=not progress or len(starts) < 2
    )
    for lo in bar:
        group = group_all[lo : lo + batch_size]
        ctx = base.take(group)

        def policy(state: BatchState, masks: np.ndarray, ctx: ContextBatch = ctx) -> np.ndarray:
            acts = np.zeros((ctx.B, n, len(rules.layout)), dtype=np.int64)
            for pol, players in profile:
                acts[:, players] = pol.act(rules, ctx, state, players, rng)[:, players]
            return acts

        ro = rollout(rules, ctx, rng, policy=policy)
        out = rules.outcome(ro.final)
        rev.add(out.revenue, group)
        sw.add(ctx.welfare(out), group)
        ut.add(ctx.utilities(out), group)
        seen.add(out, group)

    reports = []
    for k in range(K):
        ctx_k = base.context(k)
        r_mean, r_se = rev.result(k)
        w_mean, w_se = sw.result(k)
        u_mean, u_se = ut.result(k)
        report: dict[str, Any] = {
            "mechanism": mech.name,
            "params": mech.params(),
            "context": ctx_k.describe(),
            "exact": False,
            "batched": True,
            "episodes": episodes,
            "expected_revenue": float(r_mean),
            "expected_revenue_stderr": None if r_se is None else float(r_se),
            "revenue_stderr": None if r_se is None else float(r_se),
            "expected_welfare": float(w_mean),
            "expected_welfare_stderr": None if w_se is None else float(w_se),
            "expected_utilities": [float(u) for u in u_mean],
            "expected_utilities_stderr": None if u_se is None else [float(s) for s in u_se],
            "benchmarks": mech.benchmarks(ctx_k),
        }
        pairs = seen.outcomes(k, n, base.kind, episodes)
        if pairs:
            # the empirical distribution is known: judge with the bootstrap interval
            counts = [(o, round(p * episodes)) for p, o in pairs]
            report["guarantee"] = guarantee_from_counts(mech, ctx_k, counts)
            reports.append(report)
            continue
        ev = Evaluation(
            Fraction(report["expected_revenue"]),
            Fraction(report["expected_welfare"]),
            tuple(Fraction(x) for x in report["expected_utilities"]),
            pairs,
            [],
        )
        g = mech.guarantee(ctx_k, ev)
        report["guarantee"] = {**g.to_json(), "sampled": True} if g is not None else None
        reports.append(report)
    return reports


def pooled_stderr(reports: list[dict[str, Any]], key: str) -> float | None:
    """Standard error of the mean over contexts of per-context means (independent runs)."""
    se = [r.get(f"{key}_stderr") for r in reports]
    if any(s is None for s in se):
        return None
    return math.sqrt(sum(float(s) ** 2 for s in se)) / len(se)
