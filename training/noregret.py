"""The economist's learning models: regret matching, Hedge and fictitious play per decision.

Each learning player keeps, at every decision it can face (an information state: the
context, the public state and the player), a table over its menu options. Every round walks
the whole game tree of every training context with chance enumerated, so the expected payoff
of each option is exact given the current strategies (counterfactual values, as in CFR):

``regret_matching``
    Hart & Mas-Colell: play each option in proportion to its positive cumulative regret
    (uniform when none is positive). The *average* strategy is reported.
``hedge``
    Multiplicative weights: play ∝ exp(η · cumulative counterfactual value); η defaults to
    √(8 ln K / T) for T rounds.
``fictitious_play``
    Play the option with the highest cumulative counterfactual value (a best response to the
    others' empirical average play, ties to the first option); the empirical average of
    play is reported.

Theory says regret matching and Hedge drive the weight of strictly dominated options to zero,
and the empirical play of no-regret learners converges to the set of coarse correlated
equilibria; in a one-learner task against fixed opponents they converge to a best response.
All updates of a round use the strategies at its start (simultaneous play). The learners are
tabular: they learn each given context (game) and do not generalise to unseen ones.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.game import Chance, Decision, Mechanism, Terminal, step_decision
from mechgym.envs.model.limits import check_seed

from .learner_env import Group, group_label, group_value

RULES = ("regret_matching", "hedge", "fictitious_play")
MAX_JOINT = 20_000


class _Table:
    """Cumulative regrets / values and the average strategy of one information state."""

    __slots__ = ("avg", "cum", "options", "regret")

    def __init__(self, options: list[Any]) -> None:
        k = len(options)
        self.options = options
        self.regret = np.zeros(k)
        self.cum = np.zeros(k)
        self.avg = np.zeros(k)


class NoRegretLearner:
    """Tabular no-regret dynamics for some players; the others follow fixed policies.

    Parameters
    ----------
    mech : Mechanism
    contexts : sequence of contexts
        The games learned (one table per context).
    learners : sequence of groups
        Learning players or coalitions (a coalition's members learn separately on its shared
        payoff).
    background : callable ctx -> {player: policy}
        Deterministic policies of everyone else.
    options : callable (ctx, state, player) -> list of structured actions
        The learners' menus.
    rule : {"regret_matching", "hedge", "fictitious_play"}
    eta : float, optional
        Hedge's learning rate (default √(8 ln K / T), set by :meth:`run`).
    rng : numpy Generator, optional
        Draws the initial tables (uniform in [0, ``init_scale``) per option), so that seeds
        start from different mixed strategies; without it every table starts at zero.
    init_scale : float
        Size of the initial draw, in payoff units.
    joint : bool
        A coalition decides as one: at a node where several members act, one table over the
        product of their menus (one joint policy). Without it each member learns its own
        table on the shared payoff, which can settle in a worse equilibrium among members.
    """

    def __init__(
        self,
        mech: Mechanism,
        contexts: Sequence[Any],
        learners: Sequence[Group],
        background: Callable[[Any], Mapping[int, Any]],
        options: Callable[[Any, Any, int], list[Any]],
        rule: str = "regret_matching",
        eta: float | None = None,
        rng: np.random.Generator | None = None,
        init_scale: float = 1.0,
        joint: bool = True,
    ) -> None:
        if rule not in RULES:
            raise ParameterError("algo", f"unknown no-regret rule {rule!r}; use one of {RULES}")
        self.mech = mech
        self.contexts = list(contexts)
        self.learners = [tuple(g) for g in learners]
        self.group_of = {p: g for g in self.learners for p in g}
        self.background = background
        self.options = options
        self.rule = rule
        self.eta = eta
        self.rng = rng
        self.init_scale = float(init_scale)
        self.joint = joint
        self.rounds = 0
        self.tables: dict[tuple[int, Any, tuple[int, ...]], _Table] = {}
        self._index = {id(c): k for k, c in enumerate(self.contexts)}
        self._bg = [dict(background(c)) for c in self.contexts]
        self._strategy: dict[tuple[int, Any, tuple[int, ...]], np.ndarray] = {}
        self.history: list[dict[str, float]] = []

    # -- strategies -------------------------------------------------------------------------
    def agent_of(self, p: int) -> Group:
        """Who decides for learning player ``p``: its coalition (joint) or itself."""
        return self.group_of[p] if self.joint else (p,)

    def _table(self, ci: int, state: Any, members: tuple[int, ...]) -> _Table:
        key = (ci, state, members)
        t = self.tables.get(key)
        if t is None:
            ctx = self.contexts[ci]
            menus = [list(self.options(ctx, state, p)) for p in members]
            if not all(menus):
                raise ParameterError("menu", f"players {list(members)} have no options")
            opts = list(itertools.product(*menus))
            if len(opts) > MAX_JOINT:
                raise ParameterError("learners", f"{len(opts)} joint options at one node")
            t = _Table(opts)
            if self.rng is not None:
                start = self.rng.random(len(opts)) * self.init_scale
                t.regret += start
                t.cum += start
            self.tables[key] = t
        return t

    def _current(self, ci: int, state: Any, members: tuple[int, ...]) -> tuple[_Table, np.ndarray]:
        key = (ci, state, members)
        t = self._table(ci, state, members)
        s = self._strategy.get(key)
        if s is None:
            s = self._play(t)
            self._strategy[key] = s
        return t, s

    def _play(self, t: _Table) -> np.ndarray:
        k = len(t.options)
        if self.rule == "regret_matching":
            pos = np.maximum(t.regret, 0.0)
            total = pos.sum()
            return pos / total if total > 0 else np.full(k, 1.0 / k)
        if self.rule == "hedge":
            eta = self.eta if self.eta is not None else 0.1
            z = eta * (t.cum - t.cum.max())
            w = np.exp(z)
            return w / w.sum()
        out = np.zeros(k)
        out[int(np.argmax(t.cum))] = 1.0
        return out

    # -- one round --------------------------------------------------------------------------
    def run(self, rounds: int, progress: Callable[[int], None] | None = None) -> None:
        """Play ``rounds`` rounds over every context."""
        if self.rule == "hedge" and self.eta is None:
            k = max((len(t.options) for t in self.tables.values()), default=8)
            self.eta = math.sqrt(8 * math.log(max(k, 2)) / max(rounds, 1))
        for _ in range(rounds):
            self._strategy = {}
            updates: list[tuple[_Table, np.ndarray, np.ndarray, np.ndarray]] = []
            values = {group_label(g): 0.0 for g in self.learners}
            for ci, ctx in enumerate(self.contexts):
                reach = {self.agent_of(p): 1.0 for p in self.group_of}
                v = self._walk(ci, ctx, self.mech.start(ctx), reach, 1.0, updates)
                for g in self.learners:
                    values[group_label(g)] += v[g] / len(self.contexts)
            for t, strat, q, w in updates:
                base = float(strat @ q)
                t.regret += w[1] * (q - base)
                t.cum += w[1] * q
                t.avg += w[0] * strat
            self.rounds += 1
            self.history.append(values)
            if progress is not None:
                progress(1)

    def _walk(
        self,
        ci: int,
        ctx: Any,
        state: Any,
        reach: dict[Group, float],
        chance: float,
        updates: list[Any],
    ) -> dict[Group, float]:
        mech = self.mech
        node = mech.node(state)
        if isinstance(node, Terminal):
            return {g: float(group_value(ctx, node.outcome, g)) for g in self.learners}
        if isinstance(node, Chance):
            out = dict.fromkeys(self.learners, 0.0)
            for k, pr in enumerate(node.probs):
                if pr <= 0:
                    continue
                child = self._walk(
                    ci, ctx, mech.chance(state, k), reach, chance * float(pr), updates
                )
                for g in self.learners:
                    out[g] += float(pr) * child[g]
            return out
        assert isinstance(node, Decision)
        bg = self._bg[ci]
        fixed = {p: bg[p].act(mech, ctx, state, p) for p in node.players if p not in self.group_of}
        mine = [p for p in node.players if p in self.group_of]
        if not mine:
            return self._walk(
                ci, ctx, step_decision(mech, state, node, fixed), reach, chance, updates
            )
        deciders: list[tuple[int, ...]] = []
        for p in mine:
            a = self.agent_of(p)
            members = tuple(q for q in mine if self.agent_of(q) == a)
            if members not in deciders:
                deciders.append(members)
        tabs = [self._current(ci, state, d) for d in deciders]
        sizes = [len(t.options) for t, _ in tabs]
        if math.prod(sizes) > MAX_JOINT:
            raise ParameterError("learners", f"{math.prod(sizes)} joint options at one node")
        out = dict.fromkeys(self.learners, 0.0)
        qs = [np.zeros(k) for k in sizes]
        for combo in itertools.product(*(range(k) for k in sizes)):
            probs = [s[a] for (_, s), a in zip(tabs, combo, strict=True)]
            acts = dict(fixed)
            child_reach = dict(reach)
            for d, (t, _), a, pr in zip(deciders, tabs, combo, probs, strict=True):
                for p, act in zip(d, t.options[a], strict=True):
                    acts[p] = act
                agent = self.agent_of(d[0])
                child_reach[agent] = child_reach[agent] * pr
            child = self._walk(
                ci, ctx, step_decision(mech, state, node, acts), child_reach, chance, updates
            )
            joint = math.prod(probs)
            for g in self.learners:
                out[g] += joint * child[g]
            for j, d in enumerate(deciders):
                others = math.prod(pr for i, pr in enumerate(probs) if i != j)
                qs[j][combo[j]] += others * child[self.group_of[d[0]]]
        for j, d in enumerate(deciders):
            t, s = tabs[j]
            agent = self.agent_of(d[0])
            cf = chance * math.prod(r for q, r in reach.items() if q != agent)
            updates.append((t, s, qs[j], (reach[agent], cf)))
        return out

    # -- results ----------------------------------------------------------------------------
    def members_at(self, state: Any, p: int) -> tuple[int, ...]:
        """The learning players deciding together with ``p`` at ``state``."""
        node = self.mech.node(state)
        a = self.agent_of(p)
        return tuple(q for q in node.players if q in self.group_of and self.agent_of(q) == a)

    def average(self, ci: int, state: Any, members: tuple[int, ...]) -> np.ndarray:
        """The average strategy at an information state (uniform if never reached)."""
        t = self._table(ci, state, members)
        total = t.avg.sum()
        return t.avg / total if total > 0 else np.full(len(t.options), 1.0 / len(t.options))

    def policy(self) -> AveragePolicy:
        """The deterministic policy that plays the most likely option of the average strategy."""
        return AveragePolicy(self)


class AveragePolicy:
    """Argmax of a :class:`NoRegretLearner`'s average strategy (ties to the first option)."""

    def __init__(self, learner: NoRegretLearner) -> None:
        self.learner = learner

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        ci = self.learner._index.get(id(ctx))
        if ci is None:
            raise ParameterError(
                "context", "a tabular no-regret policy plays only the contexts it learned"
            )
        members = self.learner.members_at(state, player)
        avg = self.learner.average(ci, state, members)
        joint = self.learner._table(ci, state, members).options[int(np.argmax(avg))]
        return joint[members.index(player)]


def train_no_regret(
    mechanism: str,
    learner: Any = 0,
    algo: str = "regret_matching",
    rounds: int = 100,
    seed: int = 0,
    opponents: Any = "predicted",
    context: Any = None,
    generator: Any = None,
    eval_contexts: int = 16,
    out: Any = "results/train",
    console: Any = None,
) -> dict[str, Any]:
    """``mechgym train --algo regret_matching|hedge|fictitious_play``: one learner (player or
    coalition, one joint table) against fixed opponents, over the menus, on the evaluation
    contexts themselves (tabular learners learn the games they are given).

    Writes ``metrics.json`` (final and predicted metrics, the learning curve) and
    ``metrics.csv`` into ``out``; returns the report.
    """
    import csv
    import json
    import time
    from pathlib import Path

    from mechgym.envs.engine.game import EnvSpec
    from mechgym.envs.model.limits import check_count
    from mechgym.envs.pettingzoo.registry import entry

    from .encodings import make_encoding
    from .learner_env import align_context, as_group, learner_setting
    from .metrics import evaluate_profile, predicted_profile
    from .policies import resolve_sources

    if algo not in RULES:
        raise ParameterError("algo", f"unknown no-regret rule {algo!r}; use one of {RULES}")
    check_count(rounds, "rounds")
    group = as_group(learner)
    t0 = time.perf_counter()
    seed = check_seed(seed)
    probe = learner_setting(mechanism, context=context, generator=generator)
    if probe.generator is None:
        contexts = [probe.context]
    else:
        rng = np.random.default_rng(seed)
        contexts = [probe.generator.sample(rng) for _ in range(eval_contexts)]
    contexts = [align_context(c, group) for c in contexts]
    raw = learner_setting(mechanism, contexts=contexts)
    mech = raw.mechanism
    spec: EnvSpec = raw.spec
    bad = [p for p in group if not 0 <= p < spec.n]
    if bad:
        raise ParameterError("learner", f"players {bad} are outside 0..{spec.n - 1}")
    agents = entry(mechanism).load_agents()
    enc = make_encoding("menu", mechanism, mech, spec, agents)
    sources = resolve_sources(opponents, list(range(spec.n)), mechanism, spec)
    bg_rng = np.random.default_rng(seed)

    def background(ctx: Any) -> dict[int, Any]:
        return {p: sources[p](ctx, bg_rng) for p in range(spec.n) if p not in group}

    nr = NoRegretLearner(
        mech,
        contexts,
        [group],
        background,
        enc.options,
        rule=algo,
        rng=np.random.default_rng(seed),
    )
    nr.run(rounds)
    pol = nr.policy()

    def learned(ctx: Any) -> dict[int, Any]:
        return {**background(ctx), **dict.fromkeys(group, pol)}

    final = evaluate_profile(mech, agents, contexts, learned, [group], enc)
    ref = evaluate_profile(mech, agents, contexts, predicted_profile(agents, spec.n), [group], enc)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    label = group_label(group)
    curve = [{"round": k + 1, "learner_value": row[label]} for k, row in enumerate(nr.history)]
    with (out / "metrics.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["round", "learner_value"])
        w.writeheader()
        w.writerows(curve)
    report = {
        "mechanism": mechanism,
        "learner": list(group),
        "algo": algo,
        "encoding": "menu",
        "rounds": rounds,
        "seed": seed,
        "opponents": str(opponents),
        "eval_contexts": len(contexts),
        "wall_seconds": time.perf_counter() - t0,
        "final": final.to_json(),
        "reference": ref.to_json(),
        "history": curve,
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    if console is not None:
        agree = ", ".join(f"{ph} {v:.2f}" for ph, v in final.agreement.items() if v is not None)
        console.print(
            f"{algo} on {mechanism}, learner {label}: value {final.value.get(label, 0):.4f} "
            f"(predicted {ref.value.get(label, 0):.4f}); agreement {agree}; "
            f"exploitability {final.exploitability.get(label, 0):.4f}"
        )
    return report
