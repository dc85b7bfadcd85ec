"""M6 (budget-balanced market, seed 004 §5.2) over a batch: the batched twin of
:mod:`mechgym.envs.mechanisms.budget_balanced_market`.

Phases (indices into ``phases``): ``propose`` 0 (player 0), ``respond`` 1 (players 1..n−1,
simultaneously), ``confirm`` 2 (player w). After the proposal the step-a validity halt and
the (E, 0) halt end an episode at once; otherwise coin c0 (Heads w.p. 1 − δ) is drawn, and on
Tails (M′) the uniform player w, in that order. After the answers of step 2, coin c1 (Heads
w.p. 1 − ε) and on Tails coin c2 (Heads w.p. Y/(nB)) are drawn, in that order. Probabilities
are floats of the exact fractions; the logged indices are what the exact engine replays.

``state.data``: ``alloc``, ``pstar`` ``(B, n)`` int64 (the proposal A*, P*; P* is an integer
in the array layout); ``proposed``, ``halt``, ``endow`` ``(B,)`` bool (proposal made, step a
halts, proposal is (E, 0)); ``c0``, ``w``, ``c1``, ``c2`` ``(B,)`` int64 (−1 until drawn);
``answers`` ``(B, n)`` int8 (+1 YES, −1 NO, 0 not given; column 0 unused); ``confirm``
``(B,)`` int8; ``out_alloc``, ``out_prices``, ``out_destroyed``: the terminal outcome,
written when an episode ends. Money is float64; every constant is the float of the exact
``Fraction`` (so a price is at most two roundings away from the exact one).

The market codec helpers (:func:`decode_owners`, :func:`encode_owners`) are shared with the
Naive markets' batched rules.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from mechgym.envs.engine.batched import (
    TERMINAL,
    BatchedRules,
    BatchOutcome,
    BatchState,
    ContextBatch,
    check_actions,
    draw,
    register_batched,
)
from mechgym.envs.engine.errors import ContextError, OutOfSpaceError
from mechgym.envs.engine.game import EnvSpec
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.budget_balanced_market import IMBALANCE, BudgetBalancedMarket
from mechgym.envs.mechanisms.offer_rules_batched import PhaseMasks

PROPOSE, RESPOND, CONFIRM = 0, 1, 2


# -- reductions over a short last axis ---------------------------------------------------------
# numpy's reductions along a short last axis cost per row; a loop over the few columns
# (players, goods) runs whole-batch column operations instead.


def row_all(x: np.ndarray) -> np.ndarray:
    """``x.all(axis=-1)`` for a short last axis."""
    out = x[..., 0].copy()
    for j in range(1, x.shape[-1]):
        out &= x[..., j]
    return out


def row_any(x: np.ndarray) -> np.ndarray:
    """``x.any(axis=-1)`` for a short last axis (False when it is empty)."""
    out = np.zeros(x.shape[:-1], dtype=bool)
    for j in range(x.shape[-1]):
        out |= x[..., j]
    return out


def row_sum(x: np.ndarray) -> np.ndarray:
    """``x.sum(axis=-1)`` (int64) for a short last axis."""
    out = np.zeros(x.shape[:-1], dtype=np.int64)
    for j in range(x.shape[-1]):
        out += x[..., j]
    return out


def row_or(x: np.ndarray) -> np.ndarray:
    """``np.bitwise_or.reduce(x, axis=-1)`` for a short last axis."""
    out = np.zeros(x.shape[:-1], dtype=np.int64)
    for j in range(x.shape[-1]):
        out |= x[..., j]
    return out


# -- market codec ------------------------------------------------------------------------------


def decode_owners(vecs: np.ndarray, layout: ActionLayout, n: int, m: int) -> np.ndarray:
    """Bundles ``(..., n)`` int64 from the ``owner_g`` fields of actions ``(..., L)``
    (0 = destroyed, ``j + 1`` = player ``j``)."""
    alloc = np.zeros((*vecs.shape[:-1], n), dtype=np.int64)
    players = np.arange(1, n + 1)
    for g in range(m):
        owner = vecs[..., layout.index[f"owner_{g}"]]
        alloc |= (owner[..., None] == players).astype(np.int64) << g
    return alloc


def encode_owners(alloc: np.ndarray, out: np.ndarray, layout: ActionLayout, m: int) -> None:
    """Write bundles ``alloc`` ``(..., n)`` (pairwise disjoint) into the ``owner_g`` fields of
    ``out`` ``(..., L)`` in place."""
    n = alloc.shape[-1]
    players = np.arange(1, n + 1)
    for g in range(m):
        out[..., layout.index[f"owner_{g}"]] = (((alloc >> g) & 1) * players).sum(axis=-1)


def owners_of(alloc: np.ndarray, m: int) -> np.ndarray:
    """``(..., m)`` owner+1 of every good (0 = in no bundle), as the public views write it."""
    out = np.zeros((*alloc.shape[:-1], m), dtype=np.int64)
    for j in range(alloc.shape[-1]):
        for g in range(m):
            out[..., g] += ((alloc[..., j] >> g) & 1) * (j + 1)
    return out


def destroyed_of(alloc: np.ndarray, m: int) -> np.ndarray:
    """``(...,)`` bitmask of the goods in no bundle of ``alloc`` ``(..., n)``."""
    used = row_or(alloc)
    return ((1 << m) - 1) & ~used


def bundle_bits(bundle: np.ndarray, m: int) -> np.ndarray:
    """``(..., m)`` 0/1 membership of every good in ``bundle`` ``(...,)``."""
    out = np.empty((*bundle.shape, m), dtype=np.int64)
    for g in range(m):
        out[..., g] = (bundle >> g) & 1
    return out


def put_onehot(out: np.ndarray, pos: int, idx: np.ndarray, size: int) -> None:
    """Write the one-hot of ``idx`` ``(B,)`` into ``out[:, pos : pos + size]`` (all zeros
    where ``idx < 0``)."""
    for i in range(size):
        out[:, pos + i] = idx == i


def finish(
    d: dict[str, np.ndarray],
    where: np.ndarray,
    alloc: np.ndarray,
    prices: np.ndarray,
    destroyed: np.ndarray | int,
) -> None:
    """Write terminal outcomes into ``d['out_*']`` for the episodes ``where`` ``(B,)``."""
    if not where.any():
        return
    d["out_alloc"] = np.where(where[:, None], alloc, d["out_alloc"])
    d["out_prices"] = np.where(where[:, None], prices, d["out_prices"])
    d["out_destroyed"] = np.where(where, destroyed, d["out_destroyed"])


def _end(
    d: dict[str, np.ndarray],
    idx: np.ndarray,
    alloc: np.ndarray,
    prices: np.ndarray | float,
    destroyed: np.ndarray | int,
) -> None:
    """Write terminal outcomes into ``d['out_*']`` (arrays the new state owns) for the
    episodes ``idx``; ``prices`` may be one row or one number for all of them."""
    if idx.size:
        d["out_alloc"][idx] = alloc
        d["out_prices"][idx] = prices
        d["out_destroyed"][idx] = destroyed


def _rows(mask: np.ndarray) -> slice | np.ndarray | None:
    """The episodes of ``mask`` ``(B,)`` as an index: ``None`` if none, a full slice if all
    (every episode of a batch starts in the same phase; slices avoid fancy indexing)."""
    if mask.all():
        return slice(None)
    rows = np.flatnonzero(mask)
    return rows if rows.size else None


def check_batch(rules: BatchedRules, ctx: ContextBatch) -> None:
    """Refuse a batch of the wrong kind or size (:class:`ContextError`)."""
    if ctx.kind != "market":
        raise ContextError(
            "context", f"{rules.mech.title} needs 'market' contexts, got {ctx.kind!r}"
        )
    if (ctx.n, ctx.m) != (rules.spec.n, rules.spec.m):
        raise ContextError(
            "context",
            f"the batch has n={ctx.n}, m={ctx.m}; these rules were built for "
            f"n={rules.spec.n}, m={rules.spec.m}",
        )


class FieldRanges:
    """Legal values of every field as one range ``lo..hi−1`` per phase and player, read off
    mask tables in which each field allows a contiguous range (true of the market layouts):
    checking a batch of actions is then two comparisons instead of a mask lookup.

    Parameters
    ----------
    layout : ActionLayout
    rows : list of ndarray
        Per phase, ``(n, mask_size)`` masks of the acting players.
    """

    def __init__(self, layout: ActionLayout, rows: list[np.ndarray]) -> None:
        n, L = rows[0].shape[0], len(layout)
        # the last entry (index TERMINAL) allows only 0; nobody acts there anyway
        self.lo = np.zeros((len(rows) + 1, n, L), dtype=np.int64)
        self.hi = np.ones((len(rows) + 1, n, L), dtype=np.int64)
        for p, table in enumerate(rows):
            for i in range(n):
                for k in range(L):
                    legal = np.flatnonzero(table[i, layout.offsets[k] : layout.offsets[k + 1]])
                    if legal.size == 0 or legal[-1] - legal[0] + 1 != legal.size:
                        raise ValueError(f"field '{layout.names[k]}' is not a contiguous range")
                    self.lo[p, i, k], self.hi[p, i, k] = legal[0], legal[-1] + 1

    def legal(self, phase: np.ndarray, acting: np.ndarray, actions: np.ndarray) -> bool:
        """Whether every acting player's action ``(B, n, L)`` is within its ranges."""
        for p in range(self.lo.shape[0] - 1):
            rows = _rows(phase == p)
            if rows is not None:
                a = actions[rows]
                ok = (a >= self.lo[p]) & (a < self.hi[p])
                if not (ok | ~acting[rows][:, :, None]).all():
                    return False
        # nobody acts at an ended episode
        return not acting[phase == TERMINAL].any()


def checked(
    rules: BatchedRules, state: BatchState, actions: np.ndarray, ranges: FieldRanges
) -> np.ndarray:
    """``actions`` as int64, or a typed error from :func:`check_actions` if some acting
    player's action is out of its space or masked (``ranges`` answers the common case)."""
    actions = np.asarray(actions)
    if actions.dtype.kind not in "iu":
        if actions.dtype.kind == "b" or (
            actions.dtype.kind == "f" and np.all(actions == np.round(actions))
        ):
            actions = actions.astype(np.int64)
        else:
            raise OutOfSpaceError("batch", "-", f"actions must be integers, got {actions.dtype}")
    actions = actions.astype(np.int64, copy=False)
    if actions.shape == (*state.acting.shape, len(rules.layout)) and ranges.legal(
        state.phase, state.acting, actions
    ):
        return actions
    names = np.asarray([*rules.phases, "terminal"])
    check_actions(rules.layout, rules.masks(state), actions, state.acting, names[state.phase])
    return actions  # pragma: no cover - the ranges are the masks: check_actions raised


def fresh_outcome(B: int, n: int) -> dict[str, np.ndarray]:
    """Zeroed ``out_*`` arrays."""
    return {
        "out_alloc": np.zeros((B, n), dtype=np.int64),
        "out_prices": np.zeros((B, n), dtype=np.float64),
        "out_destroyed": np.zeros(B, dtype=np.int64),
    }


def read_outcome(d: dict[str, np.ndarray]) -> BatchOutcome:
    """The ``out_*`` arrays as a :class:`BatchOutcome`."""
    B = d["out_alloc"].shape[0]
    return BatchOutcome(
        d["out_alloc"], d["out_prices"], np.full(B, -1, dtype=np.int64), d["out_destroyed"]
    )


# -- constants ---------------------------------------------------------------------------------


class _Constants:
    """M6's money as floats of the exact fractions, for ``n`` players and ``k`` bits."""

    def __init__(self, mech: BudgetBalancedMarket, n: int, k: int) -> None:
        eps, delta = mech.constants(n, k)
        b = 1 << (k - 1)
        self.k = k
        self.bound = 1 << k
        self.c0 = np.array([float(1 - delta), float(delta)])
        self.c1 = np.array([float(1 - eps), float(eps)])
        # c2 Heads w.p. Y/(nB), per Y = 0..n−1
        self.c2 = np.array(
            [[float(Fraction(y, n * b)), float(1 - Fraction(y, n * b))] for y in range(n)]
        )
        self.w = np.array([float(Fraction(1, n))] * n)
        self.accept = np.array([float(2 * (n - 1) * eps)] + [float(-2 * eps)] * (n - 1))
        self.fine_e = np.array([float(2 * n * (n - y) * b + (n - 1) * eps) for y in range(n)])
        self.rest = float(-eps)
        self.fine_a = np.array([1.0] + [0.0] * (n - 1))  # step a: P_0 = 1
        self.p0_rest = float((n - 1) * eps)
        self.rest_p0 = np.array([self.p0_rest] + [self.rest] * (n - 1))
        self.j_w = float(-2 * eps)
        self.j_0 = float(n * eps)
        self.fine_k = float(Fraction(n * n * b) / delta + (n - 1) * eps)


@register_batched
class BudgetBalancedMarketBatched(BatchedRules):
    """Batched rules of M6,
    :class:`~mechgym.envs.mechanisms.budget_balanced_market.BudgetBalancedMarket`."""

    mechanism = BudgetBalancedMarket
    implements = frozenset({"eps", "delta"})
    mech: BudgetBalancedMarket

    def __init__(self, mech: BudgetBalancedMarket, spec: EnvSpec) -> None:
        super().__init__(mech, spec)
        lay, n, m = self.layout, spec.n, spec.m
        proposal = {f"owner_{g}": True for g in range(m)}
        proposal.update({f"price_{j}": True for j in range(1, n)})
        proposal["imbalance"] = True
        answer = np.broadcast_to(lay.mask({"answer": True}), (n, lay.mask_size))
        rows = [np.broadcast_to(lay.mask(proposal), (n, lay.mask_size)), answer, answer]
        self.masker = PhaseMasks(rows, lay.mask({}))
        self.ranges = FieldRanges(lay, rows)
        self.i_answer = lay.index["answer"]
        self.i_price = lay.index["price_1"] if n > 1 else 0
        self.i_imbalance = lay.index["imbalance"]
        self.shift = 2 * spec.price_cap
        self._consts: dict[int, _Constants] = {}

    def constants(self, k: int) -> _Constants:
        """The float constants for ``k`` bits (validated by the exact mechanism)."""
        c = self._consts.get(k)
        if c is None:
            c = self._consts[k] = _Constants(self.mech, self.spec.n, k)
        return c

    # -- codec -------------------------------------------------------------------------------
    def decode_proposals(self, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``alloc``, ``pstar`` ``(..., n)`` int64 and the imbalance ``(...,)`` of proposals
        ``(..., L)`` (as the exact ``decode``: P*_0 = −Σ_{j≥1} P*_j + imbalance)."""
        n, m = self.spec.n, self.spec.m
        alloc = decode_owners(vecs, self.layout, n, m)
        pj = vecs[..., self.i_price : self.i_price + n - 1] - self.shift
        imb = np.asarray(IMBALANCE, dtype=np.int64)[vecs[..., self.i_imbalance]]
        p0 = -row_sum(pj) + imb
        return alloc, np.concatenate([p0[..., None], pj], axis=-1), imb

    def encode_proposals(
        self, alloc: np.ndarray, prices: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Actions ``(..., L)`` of proposals ``alloc``, ``prices`` ``(..., n)`` int64 and
        whether each is on the grid (P*_j ∈ −2·price_cap..2·price_cap, Σ P* ∈ {−1, 0, 1}), as
        the exact ``encode``; off-grid rows hold garbage."""
        n = self.spec.n
        out = np.zeros((*alloc.shape[:-1], len(self.layout)), dtype=np.int64)
        encode_owners(alloc, out, self.layout, self.spec.m)
        v = prices[..., 1:] + self.shift
        ok = ((v >= 0) & (v <= 2 * self.shift)).all(axis=-1)
        out[..., self.i_price : self.i_price + n - 1] = np.clip(v, 0, 2 * self.shift)
        gap = prices.sum(axis=-1)
        ok &= np.abs(gap) <= 1
        out[..., self.i_imbalance] = np.where(gap == -1, 2, np.where(gap == 1, 1, 0))
        return out, ok

    # -- rules -------------------------------------------------------------------------------
    def reset(self, ctx: ContextBatch, rng: np.random.Generator) -> BatchState:
        check_batch(self, ctx)
        self.constants(int(ctx.k))  # validate ε, δ for this n and k up front
        B, n = ctx.B, self.spec.n
        data = {
            "alloc": np.zeros((B, n), dtype=np.int64),
            "pstar": np.zeros((B, n), dtype=np.int64),
            "proposed": np.zeros(B, dtype=bool),
            "halt": np.zeros(B, dtype=bool),
            "endow": np.zeros(B, dtype=bool),
            "c0": np.full(B, -1, dtype=np.int64),
            "w": np.full(B, -1, dtype=np.int64),
            "c1": np.full(B, -1, dtype=np.int64),
            "c2": np.full(B, -1, dtype=np.int64),
            "answers": np.zeros((B, n), dtype=np.int8),
            "confirm": np.zeros(B, dtype=np.int8),
            **fresh_outcome(B, n),
        }
        acting = np.zeros((B, n), dtype=bool)
        acting[:, 0] = True
        return BatchState(np.full(B, PROPOSE, dtype=np.int64), acting, data, [])

    def masks(self, state: BatchState) -> np.ndarray:
        return self.masker(state.phase, state.acting)

    def step(
        self,
        ctx: ContextBatch,
        state: BatchState,
        actions: np.ndarray,
        rng: np.random.Generator,
    ) -> BatchState:
        actions = checked(self, state, actions, self.ranges)
        c = self.constants(int(ctx.k))
        n, m = self.spec.n, self.spec.m
        B = ctx.B
        full = (1 << m) - 1
        E = ctx.endowment
        assert E is not None
        # each episode sits in one phase: work on the episodes of each phase only
        d = {key: v.copy() for key, v in state.data.items()}
        phase = state.phase.copy()
        acting = np.zeros_like(state.acting)
        chance = list(state.chance)

        P = _rows(state.phase == PROPOSE)
        if P is not None:
            alloc, pstar, imb = self.decode_proposals(actions[P, 0])
            d["alloc"][P], d["pstar"][P], d["proposed"][P] = alloc, pstar, True
            # step a: some P*_j (j ≥ 1) outside (−2^k, 2^k), or Σ P* ≠ 0 (integers on the grid)
            halt = row_any(np.abs(pstar[:, 1:]) >= c.bound) | (imb != 0)
            endow = ~halt & row_all(alloc == E[P]) & row_all(pstar == 0)
            d["halt"][P], d["endow"][P] = halt, endow
            stop = np.zeros(B, dtype=bool)
            stop[P] = halt
            _end(d, np.flatnonzero(stop), E[stop], c.fine_a, 0)
            stop[P] = endow
            _end(d, np.flatnonzero(stop), E[stop], 0.0, 0)
            live = np.zeros(B, dtype=bool)
            live[P] = ~halt & ~endow
            phase[P] = np.where(halt | endow, TERMINAL, phase[P])
            c0 = draw(rng, c.c0, live)
            chance.append(c0)
            d["c0"][live] = c0[live]
            tails = c0 == 1
            w = draw(rng, c.w, tails)
            chance.append(w)
            d["w"][tails] = w[tails]
            heads = np.flatnonzero(c0 == 0)
            phase[heads] = RESPOND
            acting[heads, 1:] = True
            # step i: w = 0 keeps A*_0 at (n−1)ε, everything else destroyed
            W0 = np.flatnonzero(tails & (w == 0))
            a_i = np.zeros((W0.size, n), dtype=np.int64)
            a_i[:, 0] = d["alloc"][W0, 0]
            _end(d, W0, a_i, c.rest_p0, full & ~a_i[:, 0])
            phase[W0] = TERMINAL
            WP = np.flatnonzero(tails & (w > 0))
            phase[WP] = CONFIRM
            acting[WP, w[WP]] = True

        R = np.flatnonzero(state.phase == RESPOND)
        if R.size:
            yes = actions[R, 1:, self.i_answer] == 1
            d["answers"][R, 1:] = np.where(yes, 1, -1)
            y = np.zeros(B, dtype=np.int64)
            y[R] = row_sum(yes)
            all_yes = R[y[R] == n - 1]
            _end(d, all_yes, *self._accepted(d, all_yes, c))  # step d
            live = np.zeros(B, dtype=bool)
            live[R] = True
            live[all_yes] = False
            c1 = draw(rng, c.c1, live)
            chance.append(c1)
            d["c1"][live] = c1[live]
            # step e: (E, fine on player 0, −ε to everyone else)
            e = np.flatnonzero(c1 == 0)
            fine = np.full((e.size, n), c.rest)
            fine[:, 0] = c.fine_e[y[e]]
            _end(d, e, E[e], fine, 0)
            t = c1 == 1
            c2 = draw(rng, c.c2[np.minimum(y, n - 1)], t)
            chance.append(c2)
            d["c2"][t] = c2[t]
            f = np.flatnonzero(c2 == 0)
            _end(d, f, *self._accepted(d, f, c))  # step f
            g = np.flatnonzero(c2 == 1)
            _end(d, g, E[g], c.rest_p0, 0)  # step g
            phase[R] = TERMINAL

        C = np.flatnonzero(state.phase == CONFIRM)
        if C.size:
            w = d["w"][C]
            yes = actions[C, w, self.i_answer] == 1
            d["confirm"][C] = np.where(yes, 1, -1)
            at_w = np.arange(n)[None, :] == w[:, None]
            # step j: w keeps A*_w at P*_w − 2ε, player 0 pays −P*_w + nε;
            # step k: w keeps E_w, player 0 pays n²B/δ + (n−1)ε; −ε for everyone else
            kept = np.where(yes, d["alloc"][C, w], E[C, w])
            p_w = d["pstar"][C, w].astype(np.float64)
            prices = np.full((C.size, n), c.rest)
            prices[:, 0] = np.where(yes, -p_w + c.j_0, c.fine_k)
            prices = np.where(at_w & yes[:, None], (p_w + c.j_w)[:, None], prices)
            _end(d, C, np.where(at_w, kept[:, None], 0), prices, full & ~kept)
            phase[C] = TERMINAL

        return BatchState(phase, acting, d, chance)

    def _accepted(
        self, d: dict[str, np.ndarray], idx: np.ndarray, c: _Constants
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Steps d/f for episodes ``idx``: (A*, P*_0 + 2(n−1)ε, P*_i − 2ε), goods outside A*
        destroyed."""
        alloc = d["alloc"][idx]
        return alloc, d["pstar"][idx] + c.accept, destroyed_of(alloc, self.spec.m)

    def outcome(self, state: BatchState) -> BatchOutcome:
        return read_outcome(state.data)

    def pending_offers(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = state.data
        asking = (state.phase == RESPOND) | (state.phase == CONFIRM)
        return asking[:, None] & state.acting, d["alloc"], d["pstar"]

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        """As the exact ``public_features``: [owner+1 of each good in A* | P* | step-a halt,
        (E, 0) | c0 (2) | step-2 answers | c1 (2) | c2 (2) | w one-hot | step-3 answer | own
        A* bundle bits | own P*]."""
        n, m = self.spec.n, self.spec.m
        d = state.data
        B = d["alloc"].shape[0]
        out = np.zeros((B, self.mech.public_size(self.spec)), dtype=np.float32)
        out[:, :m] = owners_of(d["alloc"], m)
        out[:, m : m + n] = d["pstar"]
        pos = m + n
        out[:, pos] = d["halt"]
        out[:, pos + 1] = d["endow"]
        pos += 2
        put_onehot(out, pos, d["c0"], 2)
        pos += 2
        out[:, pos + 1 : pos + n] = d["answers"][:, 1:]
        pos += n
        put_onehot(out, pos, d["c1"], 2)
        put_onehot(out, pos + 2, d["c2"], 2)
        pos += 4
        put_onehot(out, pos, d["w"], n)
        pos += n
        out[:, pos] = d["confirm"]
        pos += 1
        out[:, pos : pos + m] = bundle_bits(d["alloc"][:, player], m)
        out[:, pos + m] = d["pstar"][:, player]
        out[~d["proposed"]] = 0
        return out
