"""Shared scaffolding of the batched differential tests (``tests/test_batched_*.py``).

Contexts and rules from generator specs, the walk of a batched rollout's episodes on the
exact engine, and the comparisons built on it: public features, scripted agents and menus
at every visited node, and the outcome invariants (utilities, rewards, disjoint bundles).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
from mechgym.agents.base import AGENTS
from mechgym.agents.batched import batched_agents
from mechgym.envs.engine.batched import (
    BatchedRules,
    BatchState,
    ContextBatch,
    Rollout,
    batched_rules,
    check_actions,
    replay_exact,
    rollout,
    sample_actions,
)
from mechgym.envs.engine.errors import OutOfSpaceError
from mechgym.envs.engine.game import Chance, Decision, EnvSpec, Mechanism, Terminal, step_decision
from mechgym.envs.model.generators import make_generator

Visit = Callable[[int, Any, Decision, Any], None]
"""``visit(t, state, node, ctx)``: ``t`` the batch step, ``ctx`` the episode's exact context."""


# -- contexts and rules ------------------------------------------------------------------------


def context_batch(spec_text: str, B: int, seed: int) -> ContextBatch:
    """``B`` contexts drawn one by one from the exact generator ``spec_text``."""
    gen = make_generator(spec_text)
    rng = np.random.default_rng(seed)
    return ContextBatch.from_contexts([gen.sample(rng) for _ in range(B)])


def rules_for(mech: Mechanism, spec_text: str, price_cap: int | None = None) -> BatchedRules:
    """Batched rules of ``mech`` sized for the generator ``spec_text`` (the mechanism's
    default price grid unless ``price_cap``)."""
    gen = make_generator(spec_text)
    cap = gen.value_cap
    spec = EnvSpec(gen.n, gen.m, cap, price_cap or mech.default_price_cap(gen.n, cap))
    return batched_rules(mech, spec)


def batched_policy(name: str, which: str) -> Any:
    """The batched scripted policy ``which`` (``"predicted"`` or a deviation's name) of
    mechanism ``name``."""
    agents = batched_agents(name)
    return agents.predicted if which == "predicted" else agents.deviations[which]


def scripted(
    rules: BatchedRules, ctx: ContextBatch, pol: Any, rng: np.random.Generator
) -> Callable[[BatchState, np.ndarray], np.ndarray]:
    """A rollout policy: the batched policy ``pol`` plays for every player."""
    players = list(range(rules.spec.n))
    return lambda state, masks: pol.act(rules, ctx, state, players, rng)


def play_on(
    rules: BatchedRules,
    ctx: ContextBatch,
    state: BatchState,
    rng: np.random.Generator,
    actions: list[np.ndarray],
    acting: list[np.ndarray],
    masks: list[np.ndarray],
) -> Rollout:
    """Play ``state`` to the end by random legal play, each step appended to the steps
    recorded so far (``actions``, ``acting``, ``masks``): the rollout of them all."""
    while not state.done.all():
        mk = rules.masks(state)
        act = sample_actions(rules.layout, mk, rng)
        actions.append(act)
        acting.append(state.acting.copy())
        masks.append(mk)
        state = rules.step(ctx, state, act, rng)
    return Rollout(ctx, actions, acting, masks, state)


# -- the exact engine along a rollout ------------------------------------------------------------


def walk_exact(
    rules: BatchedRules,
    ro: Rollout,
    b: int,
    visit: Visit,
    terminal: Callable[[Any], None] | None = None,
) -> None:
    """Walk episode ``b`` of a rollout on the exact engine (the batch's actions and logged
    chance draws), calling ``visit(t, state, node, ctx)`` at every decision node and
    ``terminal(state)`` at the end."""
    mech, spec, layout = rules.mech, rules.spec, rules.layout
    draws = [int(c[b]) for c in ro.final.chance if c[b] >= 0]
    ctx = ro.ctx.context(b)
    s = mech.start(ctx)
    t = 0
    while True:
        node = mech.node(s)
        if isinstance(node, Terminal):
            if terminal is not None:
                terminal(s)
            return
        if isinstance(node, Chance):
            s = mech.chance(s, draws.pop(0))
            continue
        assert isinstance(node, Decision)
        while not ro.acting[t][b].any():
            t += 1
        visit(t, s, node, ctx)
        acts = {p: mech.decode(s, p, ro.actions[t][b, p], spec, layout) for p in node.players}
        s = step_decision(mech, s, node, acts)
        t += 1


class FeatureRecorder:
    """A rollout policy that records every player's public features before each step, then
    plays ``act(state, masks)`` (random legal play by default)."""

    def __init__(
        self,
        rules: BatchedRules,
        rng: np.random.Generator,
        act: Callable[[BatchState, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.rules, self.rng, self.act = rules, rng, act
        self.features: list[list[np.ndarray]] = []

    def __call__(self, state: BatchState, masks: np.ndarray) -> np.ndarray:
        n = self.rules.spec.n
        self.features.append([self.rules.public_features(state, p) for p in range(n)])
        if self.act is None:
            return sample_actions(self.rules.layout, masks, self.rng)
        return self.act(state, masks)


def check_features(
    rules: BatchedRules, ro: Rollout, features: list[list[np.ndarray]], episodes: int
) -> None:
    """Every player's recorded public ``features`` (per batch step) equal the exact ones at
    every decision node, and at the end, of the first ``episodes`` episodes."""
    mech, spec, n = rules.mech, rules.spec, rules.spec.n
    final = [rules.public_features(ro.final, p) for p in range(n)]
    for b in range(min(episodes, ro.ctx.B)):

        def visit(t: int, s: Any, node: Decision, ctx: Any, b: int = b) -> None:
            for p in range(n):
                exact = mech.public_features(s, p, spec)
                assert np.array_equal(exact, features[t][p][b]), (b, t, p)

        def terminal(s: Any, b: int = b) -> None:
            for p in range(n):
                assert np.array_equal(mech.public_features(s, p, spec), final[p][b]), (b, p)

        walk_exact(rules, ro, b, visit, terminal)


# -- scripted agents and menus -------------------------------------------------------------------


def exact_agents(name: str) -> Any:
    """The exact agents of mechanism ``name`` (their module is imported on first use, which
    registers them)."""
    if name not in AGENTS:
        module = "best_belief" if name == "normal_form" else name
        importlib.import_module(f"mechgym.agents.{module}")
    return AGENTS[name]


def exact_policy(name: str, which: str, ctx: Any) -> Any:
    """The exact agent ``which`` (``"predicted"`` or a deviation's name) of mechanism ``name``."""
    agents = exact_agents(name)
    if which == "predicted":
        return agents.predicted(ctx)
    return agents.deviations[which](ctx, np.random.default_rng(0))


def encode_on_grid(mech: Mechanism, s: Any, p: int, action: Any, spec: EnvSpec, layout: Any) -> Any:
    """The array form of an exact action, or None where it lies beyond the grid (there the
    batched policy writes the top instead and the batched menu marks the entry invalid)."""
    try:
        return mech.encode(s, p, action, spec, layout)
    except OutOfSpaceError:
        return None


def check_menu(
    name: str,
    mech: Mechanism,
    ctx: Any,
    s: Any,
    node: Decision,
    menus: list[tuple[np.ndarray, np.ndarray]],
    b: int,
    spec: EnvSpec,
    layout: Any,
) -> int:
    """Every player's batched menu ``menus[p]`` at episode ``b`` equals the exact menu at the
    decision node ``node`` (no valid entry for a player who does not act; entries beyond the
    grid invalid). Returns the number of entries compared."""
    exact_menu = exact_agents(name).menu
    assert exact_menu is not None
    checked = 0
    for p in range(spec.n):
        acts, valid = menus[p]
        if p not in node.players:
            assert not valid[b].any()
            continue
        entries = exact_menu(mech, ctx, s, p)
        assert not valid[b, len(entries) :].any()
        for j, (_, action) in enumerate(entries):
            want = encode_on_grid(mech, s, p, action, spec, layout)
            if want is None:
                assert not valid[b, j], (p, j)
            else:
                assert valid[b, j], (p, j)
                assert np.array_equal(want, acts[b, j]), (p, j)
                checked += 1
    return checked


def check_agent(
    name: str, which: str, rules: BatchedRules, ctx: ContextBatch, rng: np.random.Generator
) -> tuple[int, int, int]:
    """Roll ``ctx`` out with the batched scripted policy ``which`` of mechanism ``name`` (its
    actions must be legal) and compare, at every visited node, its actions (and, for
    predicted play, every player's batched menu) with the exact ones. A deviation that
    answers at random is not compared at ``respond`` (the two paths draw from different
    streams). Returns the numbers of actions compared, of exact actions beyond the grid and
    of menu entries compared."""
    bagents = batched_agents(name)
    policy = batched_policy(name, which)
    mech, spec, layout = rules.mech, rules.spec, rules.layout
    n = spec.n
    menus: list[list[tuple[np.ndarray, np.ndarray]]] = []
    with_menu = which == "predicted" and bagents.menu is not None

    def act(state: BatchState, masks: np.ndarray) -> Any:
        if with_menu:
            menus.append([bagents.menu(rules, ctx, state, p) for p in range(n)])
        acts = policy.act(rules, ctx, state, list(range(n)), rng)
        check_actions(layout, masks, acts, state.acting, np.array(rules.phases)[state.phase])
        return acts

    ro = rollout(rules, ctx, rng, policy=act)
    assert not replay_exact(rules, ro), which
    compared = beyond = entries = 0
    for b in range(ctx.B):
        exact = exact_policy(name, which, ctx.context(b))

        def visit(
            t: int, s: Any, node: Decision, ectx: Any, b: int = b, exact: Any = exact
        ) -> None:
            nonlocal compared, beyond, entries
            if which == "random_answers" and node.phase == "respond":
                return
            for p in node.players:
                want = encode_on_grid(mech, s, p, exact.act(mech, ectx, s, p), spec, layout)
                if want is None:
                    beyond += 1
                else:
                    assert np.array_equal(want, ro.actions[t][b, p]), (which, b, t, p)
                    compared += 1
            if with_menu:
                entries += check_menu(name, mech, ectx, s, node, menus[t], b, spec, layout)

        walk_exact(rules, ro, b, visit)
    return compared, beyond, entries


# -- invariants ----------------------------------------------------------------------------------


def check_utilities_and_rewards(
    ctx: ContextBatch, rules: BatchedRules, final: BatchState, atol: float = 1e-12
) -> None:
    """A batch's terminal outcomes: every utility is the value of what the player ends with
    (less the endowed bundle's value in markets) minus its price (within ``atol``); rewards
    are coalition totals where rewards are shared, utilities elsewhere; no good is handed out
    twice."""
    out = rules.outcome(final)
    util = rules.utilities(ctx, final)
    rows = np.arange(ctx.B)[:, None]
    cols = np.arange(ctx.n)[None, :]
    if ctx.kind == "states":
        at = np.maximum(out.state, 0)[:, None]
        gained = np.where((out.state >= 0)[:, None], ctx.values[rows, cols, at], 0)
    else:
        gained = ctx.values[rows, cols, out.alloc]
        if ctx.kind == "market":
            assert ctx.endowment is not None
            gained = gained - ctx.values[rows, cols, ctx.endowment]
        used = np.bitwise_or.reduce(out.alloc, axis=1)
        assert (out.alloc.sum(axis=1) == used).all()
    np.testing.assert_allclose(util, gained - out.prices, atol=atol)
    rewards = rules.rewards(ctx, final)
    for b in range(ctx.B):
        for members in ctx.coalitions_of(b):
            who = list(members)
            want = util[b, who].sum() if ctx.shared_reward[b] else util[b, who]
            np.testing.assert_allclose(rewards[b, who], want, atol=1e-9)
