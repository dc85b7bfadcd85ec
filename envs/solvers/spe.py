"""Exact subgame-perfect equilibria of perfect-information mechanisms on tiny instances.

:func:`solve_spe` runs backward induction over the engine's game tree:

* a :class:`~mechgym.envs.engine.game.Decision` node must have exactly **one** acting player (a
  node with several simultaneous players raises :class:`~mechgym.envs.engine.errors.SolverError`);
  its legal actions come from the mechanism's ``legal_actions(state, player, spec)`` if it
  has one, otherwise from its array layout and mask: the product of every field's allowed
  values, decoded (duplicates removed, enumeration order kept). The decoded list is cached
  per (phase, player) — per (phase, player, mask) when ``mask_depends_on_state`` — so
  ``decode`` must depend on the state only through the phase (true of every mechgym
  mechanism);
* a :class:`~mechgym.envs.engine.game.Chance` node is averaged exactly over its outcomes;
* a :class:`~mechgym.envs.engine.game.Terminal` node is worth ``ctx.rewards(outcome)``: each
  player's utility, or its coalition's total when the coalition shares rewards, so a member
  of a shared-reward coalition maximises the coalition's total.

All arithmetic is exact (:class:`fractions.Fraction`). The acting player picks an action of
maximal value; among several, the first in enumeration order.

Uniqueness. The result's ``unique`` is ``True`` iff at **every** decision node of the tree —
on the equilibrium path and off it — the mover's best action is strictly better than every
other legal action (exact comparison, no tolerance). Then every player's strategy is pinned
down at every node, so the SPE is unique. When it is ``False``, ``ties`` lists the nodes
where several actions are optimal and the returned profile is one SPE among several
(ties are broken towards the first action in enumeration order). Two weaker properties
help read a tie: ``path_strict`` (no tie at a node the equilibrium reaches) and
``ties_harmless`` (at every tie, all optimal actions give *every* player the same value, so
no earlier choice depends on how it is broken); ``outcome_unique`` is their conjunction and
means that every SPE plays the same on the equilibrium path and yields the same outcome
distribution, though off-path strategies differ.

Sharing work. A mechanism may define ``subgame_key(state) -> (key, offsets) | None``: states
with the same key have identical subgames except that every terminal outcome below them has
its prices shifted by ``offsets`` (e.g. rewards already earned). Utilities are quasi-linear,
so the solver stores one value per key and shifts it; best actions are shared too. Without
the hook, states themselves are the keys (they must be hashable).

Limits. ``max_nodes`` bounds the number of nodes expanded; ``max_actions`` the number of
legal actions at one node. Exceeding either raises a :class:`SolverError` saying what to
shrink.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np
from mechgym.envs.engine.errors import SolverError
from mechgym.envs.engine.game import (
    Chance,
    Decision,
    EnvSpec,
    Evaluation,
    Mechanism,
    Terminal,
    evaluate_exact,
)
from mechgym.envs.model.outcome import Outcome

__all__ = ["NodeRecord", "SPEPolicy", "SPEResult", "enumerate_actions", "solve_spe"]

Vec = tuple[Fraction, ...]


@dataclass
class NodeRecord:
    """What backward induction found at one decision node (one per subgame key).

    Attributes
    ----------
    state : Any
        A representative state of the node.
    player, phase : int, str
        The mover and the node's phase.
    action : Any
        The chosen best action (first maximiser in enumeration order).
    margin : Fraction or None
        Mover's value of the best action minus that of the best other action (``None`` when
        there is a single legal action); ``0`` exactly when tied.
    tied : tuple
        Every optimal action (length 1 when the choice is strict).
    actions : int
        Number of legal actions.
    tied_values : tuple
        For a tie: every player's value after each optimal action (empty otherwise). A tie is
        *harmless* when these vectors are all equal: nobody, the mover included, cares which
        optimal action is taken, so no earlier choice depends on it.
    """

    state: Any
    player: int
    phase: str
    action: Any
    margin: Fraction | None
    tied: tuple[Any, ...]
    actions: int
    tied_values: tuple[Vec, ...] = ()

    @property
    def harmless(self) -> bool:
        """No tie, or a tie whose optimal actions give every player the same value."""
        return len(set(self.tied_values)) <= 1


class SPEPolicy:
    """The equilibrium profile as a policy (for :func:`~mechgym.envs.engine.game.evaluate_exact`).

    One object plays for every player; at a state it has not solved yet it solves that
    subgame first. It only serves the mechanism and context it was solved for.
    """

    def __init__(self, solver: _Solver) -> None:
        self._solver = solver

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        s = self._solver
        if mech is not s.mech or ctx is not s.ctx:
            raise SolverError("this SPE policy was solved for another mechanism or context")
        rec = s.record(state)
        if rec.player != player:
            raise SolverError(f"player {player} does not act here (player {rec.player} does)")
        return rec.action

    def record(self, state: Any) -> NodeRecord:
        """The :class:`NodeRecord` of the decision node at ``state``."""
        return self._solver.record(state)


@dataclass
class SPEResult:
    """An exact subgame-perfect equilibrium.

    Attributes
    ----------
    policy : SPEPolicy
        The equilibrium strategies of every player (``profile()`` gives a profile mapping).
    values : tuple of Fraction
        Every player's expected reward (coalition totals for shared-reward coalitions) at
        the root.
    evaluation : Evaluation
        Exact evaluation of the equilibrium profile: expected REV, SW, utilities, and the
        equilibrium outcome distribution (``evaluation.outcomes``).
    unique : bool
        Strict preference at every decision node (see the module docstring).
    ties : list of NodeRecord
        Decision nodes with several optimal actions.
    records : dict
        Every solved decision node, by subgame key.
    nodes : int
        Nodes expanded.
    """

    policy: SPEPolicy
    values: Vec
    evaluation: Evaluation
    unique: bool
    ties: list[NodeRecord]
    records: dict[Any, NodeRecord] = field(repr=False)
    nodes: int

    @property
    def path_strict(self) -> bool:
        """No tie at any decision node the equilibrium reaches with positive probability."""
        return all(len(self.policy.record(v.state).tied) == 1 for v in self.evaluation.visits)

    @property
    def ties_harmless(self) -> bool:
        """Every tie is between actions giving every player the same value (see NodeRecord)."""
        return all(r.harmless for r in self.ties)

    @property
    def outcome_unique(self) -> bool:
        """Every SPE plays the same on the equilibrium path (hence the same outcome
        distribution): the path is strict and every tie elsewhere is harmless, so no earlier
        choice depends on how a tie is broken."""
        return self.path_strict and self.ties_harmless

    @property
    def outcomes(self) -> list[tuple[Fraction, Outcome]]:
        """The equilibrium outcome distribution: ``(probability, outcome)`` pairs."""
        return self.evaluation.outcomes

    def profile(self, n: int) -> dict[int, SPEPolicy]:
        """The equilibrium as a profile for :func:`~mechgym.envs.engine.game.evaluate_exact`."""
        return dict.fromkeys(range(n), self.policy)


def enumerate_actions(
    mech: Mechanism, state: Any, player: int, spec: EnvSpec, limit: int = 100_000
) -> list[Any]:
    """Every legal structured action of ``player`` at ``state``.

    Uses ``mech.legal_actions(state, player, spec)`` when the mechanism defines it, else the
    product of the values each layout field allows under the action mask, decoded and
    de-duplicated (first occurrence kept).
    """
    custom = getattr(mech, "legal_actions", None)
    if custom is not None:
        return list(custom(state, player, spec))
    layout = mech.layout(spec)
    mask = mech.action_mask(state, player, spec, layout)
    choices = [np.flatnonzero(layout.field_mask(mask, name)).tolist() for name in layout.names]
    total = 1
    for c in choices:
        total *= len(c)
    if total == 0:
        raise SolverError(f"player {player} has no legal action at this node (empty mask)")
    if total > limit:
        raise SolverError(
            f"player {player} has {total} array actions at this node (limit {limit}); use a "
            "smaller "
            "price_cap / value_cap / instance, or give the mechanism a legal_actions method"
        )
    seen: dict[Any, None] = {}
    vec = np.zeros(len(choices), dtype=np.int64)
    for combo in itertools.product(*choices):
        vec[:] = combo
        seen.setdefault(mech.decode(state, player, vec, spec, layout), None)
    return list(seen)


# Internally a value vector is ``(den, nums)``: entry ``i`` is ``nums[i] / den``. One common
# denominator per vector keeps the arithmetic on plain ints (a gcd per vector, not per entry),
# which is an order of magnitude faster than Fraction entries and just as exact.
IVec = tuple[int, tuple[int, ...]]

_REDUCE_BITS = 256


def _from_fractions(values: Sequence[Fraction | int]) -> IVec:
    den = 1
    for x in values:
        d = x.denominator
        if den % d:
            den = den // math.gcd(den, d) * d
    return den, tuple(x.numerator * (den // x.denominator) for x in values)


def _to_fractions(v: IVec) -> Vec:
    den, nums = v
    return tuple(Fraction(x, den) for x in nums)


def _reduce(den: int, nums: tuple[int, ...]) -> IVec:
    g = math.gcd(den, *nums)
    if g > 1:
        return den // g, tuple(x // g for x in nums)
    return den, nums


def _iadd(a: IVec, b: IVec) -> IVec:
    da, na = a
    db, nb = b
    if da == db:
        return da, tuple(x + y for x, y in zip(na, nb, strict=True))
    g = math.gcd(da, db)
    fa, fb = db // g, da // g
    den = da * fa
    nums = tuple(x * fa + y * fb for x, y in zip(na, nb, strict=True))
    if den.bit_length() > _REDUCE_BITS:
        return _reduce(den, nums)
    return den, nums


def _iscale(p: Fraction, v: IVec) -> IVec:
    den, nums = v
    pn, pd = p.numerator, p.denominator
    return _reduce(den * pd, tuple(pn * x for x in nums))


def _ineg(v: IVec) -> IVec:
    return v[0], tuple(-x for x in v[1])


def _greater(a: IVec, b: IVec, i: int) -> int:
    """Sign of ``a[i] − b[i]``."""
    lhs = a[1][i] * b[0]
    rhs = b[1][i] * a[0]
    return (lhs > rhs) - (lhs < rhs)


class _Solver:
    def __init__(
        self, mech: Mechanism, ctx: Any, spec: EnvSpec, max_nodes: int, max_actions: int
    ) -> None:
        self.mech = mech
        self.ctx = ctx
        self.spec = spec
        self.max_nodes = max_nodes
        self.max_actions = max_actions
        self.n = ctx.n
        self.zero: IVec = (1, (0,) * ctx.n)
        # key -> (value at the first state met, that state's offsets)
        self.memo: dict[Any, tuple[IVec, Sequence[Fraction] | None]] = {}
        self.records: dict[Any, NodeRecord] = {}
        self.actions: dict[Any, list[Any]] = {}
        self.nodes = 0
        self._ref: Outcome | None = None
        self._effect_map: list[list[tuple[int, Fraction]]] | None = None
        self._effects: dict[int, tuple[Any, IVec]] = {}
        self._keyfn = getattr(mech, "subgame_key", None)
        # rewards of terminal outcome objects already met (kept alive so ids stay unique)
        self._terminal: dict[int, tuple[Outcome, IVec]] = {}
        self._layout = mech.layout(spec)
        self._custom_actions = getattr(mech, "legal_actions", None) is not None

    # -- keys and offsets -----------------------------------------------------------------
    def key(self, state: Any) -> tuple[Any, Sequence[Fraction] | None]:
        if self._keyfn is not None:
            got = self._keyfn(state)
            if got is not None:
                return ("k", got[0]), got[1]
        try:
            hash(state)
        except TypeError:
            raise SolverError(
                f"states of {type(self.mech).__name__} are not hashable; "
                "give it a subgame_key method"
            ) from None
        return ("s", state), None

    def effect(self, offsets: Sequence[Fraction] | None) -> IVec:
        """Change of every reward when every terminal price is shifted by ``offsets``.

        Rewards are affine in prices (quasi-linear utilities), so the change is a fixed
        linear map of the offsets, measured once on a reference outcome.
        """
        if offsets is None:
            return self.zero
        hit = self._effects.get(id(offsets))
        if hit is not None and hit[0] is offsets:
            return hit[1]
        emap = self._effect_map
        if emap is None:
            assert self._ref is not None
            base = self.ctx.rewards(self._ref)
            emap = [[] for _ in range(self.n)]
            for j in range(self.n):
                unit = tuple(Fraction(int(k == j)) for k in range(self.n))
                moved = self.ctx.rewards(replace(self._ref, prices=unit))
                for i in range(self.n):
                    if moved[i] != base[i]:
                        emap[i].append((j, moved[i] - base[i]))
            self._effect_map = emap
        eff = _from_fractions(
            [sum((c * offsets[j] for j, c in row if offsets[j]), Fraction(0)) for row in emap]
        )
        self._effects[id(offsets)] = (offsets, eff)
        return eff

    # -- backward induction ----------------------------------------------------------------
    def value(self, state: Any) -> IVec:
        node = self.mech.node(state)
        if isinstance(node, Terminal):
            self._tick()
            o = node.outcome
            hit = self._terminal.get(id(o))
            if hit is not None and hit[0] is o:
                return hit[1]
            if self._ref is None:
                self._ref = replace(o, prices=(Fraction(0),) * self.n)
            v = _from_fractions(self.ctx.rewards(o))
            self._terminal[id(o)] = (o, v)
            return v
        key, offsets = self.key(state)
        hit = self.memo.get(key)
        if hit is not None:
            val, stored = hit
            if offsets is stored or offsets == stored:
                return val
            return _iadd(val, _iadd(self.effect(offsets), _ineg(self.effect(stored))))
        self._tick()
        if isinstance(node, Chance):
            total: IVec | None = None
            for k, p in enumerate(node.probs):
                if p:
                    v = self.value(self.mech.chance(state, k))
                    if p != 1:
                        v = _iscale(p, v)
                    total = v if total is None else _iadd(total, v)
            val = total if total is not None else self.zero
        else:
            val = self._decide(state, node, key)
        self.memo[key] = (val, offsets)
        return val

    def _decide(self, state: Any, node: Decision, key: Any) -> IVec:
        if len(node.players) != 1:
            raise SolverError(
                f"phase '{node.phase}' has {len(node.players)} simultaneous players "
                f"{list(node.players)}; backward induction needs one mover per node (solve "
                "perfect-information mechanisms only)"
            )
        (player,) = node.players
        actions = self._actions(state, node, player)
        best: IVec | None = None
        best_acts: list[Any] = []
        best_vals: list[IVec] = []
        second: IVec | None = None
        for a in actions:
            checked = self.mech.validate(state, player, a)
            v = self.value(self.mech.resolve(state, {player: checked}))
            cmp = 1 if best is None else _greater(v, best, player)
            if cmp > 0:
                second = best
                best, best_acts, best_vals = v, [a], [v]
            elif cmp == 0:
                best_acts.append(a)
                best_vals.append(v)
            elif second is None or _greater(v, second, player) > 0:
                second = v
        assert best is not None
        if len(best_acts) > 1:
            margin: Fraction | None = Fraction(0)
        elif second is None:
            margin = None
        else:
            margin = Fraction(best[1][player], best[0]) - Fraction(second[1][player], second[0])
        tied_values = tuple(_to_fractions(v) for v in best_vals) if len(best_vals) > 1 else ()
        self.records[key] = NodeRecord(
            state,
            player,
            node.phase,
            best_acts[0],
            margin,
            tuple(best_acts),
            len(actions),
            tied_values,
        )
        return best

    def _actions(self, state: Any, node: Decision, player: int) -> list[Any]:
        if self._custom_actions:
            return enumerate_actions(self.mech, state, player, self.spec, self.max_actions)
        if getattr(self.mech, "mask_depends_on_state", True):
            mask = self.mech.action_mask(state, player, self.spec, self._layout)
            ck: Any = (node.phase, player, mask.tobytes())
        else:
            ck = (node.phase, player)
        acts = self.actions.get(ck)
        if acts is None:
            acts = enumerate_actions(self.mech, state, player, self.spec, self.max_actions)
            self.actions[ck] = acts
        return acts

    def _tick(self) -> None:
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise SolverError(
                f"the game tree has more than {self.max_nodes} nodes to expand; shrink the "
                "instance "
                "(players, states, value_cap, price_cap) or raise max_nodes"
            )

    def record(self, state: Any) -> NodeRecord:
        node = self.mech.node(state)
        if not isinstance(node, Decision):
            raise SolverError("no decision is taken at this state")
        key, _ = self.key(state)
        rec = self.records.get(key)
        if rec is None:
            self.value(state)
            rec = self.records[key]
        return rec


def solve_spe(
    mech: Mechanism,
    ctx: Any,
    spec: EnvSpec | None = None,
    *,
    max_nodes: int = 2_000_000,
    max_actions: int = 100_000,
    state: Any = None,
) -> SPEResult:
    """Backward induction: an exact subgame-perfect equilibrium and whether it is unique.

    Parameters
    ----------
    mech : Mechanism
        A mechanism whose decision nodes each have one acting player.
    ctx : context
        Supplies ``rewards`` (utilities or coalition totals) and ``n``.
    spec : EnvSpec, optional
        Sizes the array encoding that legal actions are enumerated from; default
        ``EnvSpec(ctx.n, ctx.m, ctx.value_cap, ctx.value_cap)``.
    max_nodes, max_actions : int
        Limits on nodes expanded and legal actions per node (:class:`SolverError` beyond).
    state : optional
        Solve the subgame at this state instead of the whole game.

    Returns
    -------
    SPEResult
    """
    if spec is None:
        cap = int(ctx.value_cap)
        spec = EnvSpec(ctx.n, ctx.m, cap, cap)
    solver = _Solver(mech, ctx, spec, max_nodes, max_actions)
    root = mech.start(ctx) if state is None else state
    values = _to_fractions(solver.value(root))
    policy = SPEPolicy(solver)
    evaluation = evaluate_exact(mech, ctx, dict.fromkeys(range(ctx.n), policy), state=root)
    ties = [r for r in solver.records.values() if len(r.tied) > 1]
    return SPEResult(
        policy=policy,
        values=values,
        evaluation=evaluation,
        unique=not ties,
        ties=ties,
        records=solver.records,
        nodes=solver.nodes,
    )
