"""Factored actions: a composite move made as a short sequence of small sub-decisions.

The ``factored`` and ``continuous`` action encodings of every mechanism. A player's move at
a decision node is a row of the mechanism's array layout
(:class:`~mechgym.envs.engine.spaces.ActionLayout`); here it is built one sub-decision at a
time, each with an exact mask, and handed to the mechanism only once complete. Everything
is a function of the layout, the node's flat mask for the player, the choices made so far
and the player's own private information (its lower bounds, for one price grid): nothing
comes from the solvers or the scripted agents.

The program of sub-decisions is derived from the layout's field names, in layout order:

* ``owner_g`` fields (with the ``price_j`` fields): for each recipient ``j = 0..n-1``, a
  *bundle* among the goods still free (the choice is the bundle's bitmask; goods already
  given away, goods the mask does not let ``j`` own, and choices that would leave a good no
  legal owner are masked), then a *price level* for ``j`` when the layout has ``price_j``
  (skipped when the bundle is empty and the mechanism reads prices only of non-empty bundles,
  see :func:`register_factored`);
* ``salloc_g`` fields (seed 002's allocation S^i): a bundle per recipient, offered only to
  the members the player named in its ``ally_j`` fields;
* amount fields (``price_*``, ``value_*``, ``report_*``, ``bid_value``): a *level*, one of
  ``price_levels`` values spread over the field's legal range (``"linear"`` or
  ``"geometric"``), or all of its values when it has no more;
* every other field (``answer``, ``bundle``, ``ally_j``, ``state``, ...) as it is.

A sub-decision with one legal choice is not asked: its value is written and the next one
comes. Sub-decision ``k`` picks an entry of ``Discrete(D)``, ``D`` the largest sub-decision;
entries beyond it are masked. In the ``continuous`` encoding an amount sub-decision reads a
number ``x`` in ``[0, 1]`` instead, scaled to the field's legal range and rounded by
:func:`field_value` (the one rounding rule of both encodings).

Price grids (``price_grid``): ``"linear"`` (default), ``"geometric"`` (denser near the low
end), or ``"own-lower-bounds"``: at a price sub-decision for recipient ``j``, the levels are
``0`` and the player's own lower bounds ``L^i_j(T)`` for every non-empty bundle ``T`` (its
private information), as prices (mapped onto the field, clipped to its range); other amount
fields keep the linear grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from mechgym.envs.engine.errors import IllegalActionError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.spaces import ActionLayout

FACTORED_ENCODINGS = ("factored", "continuous")
PRICE_GRIDS = ("linear", "geometric", "own-lower-bounds")
AMOUNT_PREFIXES = ("price_", "value_", "report_", "bid_value")


@dataclass(frozen=True)
class FactoredRules:
    """What a mechanism's layout does not say about its fields.

    Attributes
    ----------
    prices_need_goods : bool
        ``price_j`` is read only when ``j`` is given a non-empty bundle (seed-000 offers);
        ``False`` where every player's price stands (markets).
    price_offset : int
        The price that field value 0 of a ``price_j`` field stands for (own-lower-bound
        grids map prices onto the field with it).
    """

    prices_need_goods: bool = True
    price_offset: int = 0


_RULES: dict[str, FactoredRules] = {}


def register_factored(name: str, **rules: object) -> None:
    """Declare a mechanism's :class:`FactoredRules` (called by the mechanism modules)."""
    _RULES[name] = FactoredRules(**rules)  # type: ignore[arg-type]


def factored_rules(name: str) -> FactoredRules:
    """The registered rules of mechanism ``name`` (defaults when none)."""
    return _RULES.get(name, FactoredRules())


@dataclass(frozen=True)
class Step:
    """One sub-decision of the program."""

    kind: str  # "field", "bundle" or "price"
    label: str
    field: int = -1  # layout field written (field, price)
    recipient: int = -1  # bundle, price
    owners: tuple[int, ...] = ()  # bundle, price: owner fields of the group
    members: tuple[int, ...] = ()  # bundle: ally fields naming who may receive
    amount: bool = False  # a gridded amount (read from the box in "continuous")
    size: int = 0  # sub-decision entries


def check_encoding_options(encoding: str, price_levels: int, price_grid: str) -> None:
    """Raise a :class:`ParameterError` for an unknown encoding, grid or level count."""
    if encoding not in FACTORED_ENCODINGS:
        raise ParameterError(
            "action_encoding", f"{encoding!r} is not one of {', '.join(FACTORED_ENCODINGS)}"
        )
    if price_grid not in PRICE_GRIDS:
        raise ParameterError(
            "price_grid", f"unknown {price_grid!r}; use one of {', '.join(PRICE_GRIDS)}"
        )
    if isinstance(price_levels, bool) or not isinstance(price_levels, int | np.integer):
        raise ParameterError("price_levels", f"must be an integer, got {price_levels!r}")
    if not 2 <= int(price_levels) <= 256:
        raise ParameterError("price_levels", f"must lie in 2..256, got {price_levels}")


def field_value(x: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The field value a fraction ``x`` in ``[0, 1]`` stands for, per row.

    ``allowed`` ``(R, size)`` bool is the field's mask; ``x`` is ``(R,)`` or ``(R, K)``. ``x``
    is clipped to ``[0, 1]`` (NaN reads as 0), scaled to the legal span ``lo + x * (hi -
    lo)`` (``lo``/``hi`` the lowest and highest allowed values) and rounded to the nearest
    integer, halves up; a value the mask excludes inside the span moves to the next allowed
    value above. This is the only rounding of either encoding: grid levels are
    ``field_value(l / (levels - 1))``.
    """
    size = allowed.shape[1]
    ar = np.arange(size)
    lo = np.where(allowed, ar, size).min(axis=1)
    hi = np.where(allowed, ar, -1).max(axis=1)
    lo = np.where(lo < size, lo, 0)
    hi = np.maximum(hi, lo)
    x = np.clip(np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0), 0.0, 1.0)
    shape = (-1,) + (1,) * (x.ndim - 1)
    lo, hi = lo.reshape(shape), hi.reshape(shape)
    v = np.floor(lo + x * (hi - lo) + 0.5).astype(np.int64)
    return snap(np.minimum(v, hi), allowed)


def entry_of(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The entry a fraction ``x`` in ``[0, 1]`` picks among a sub-decision's legal entries:
    the ``floor(x * c)``-th of the ``c`` entries ``valid`` ``(R, D)`` allows (the last one for
    ``x = 1``). Learners whose actions are all numbers (a ``Box``) pick entries this way."""
    count = valid.sum(axis=1)
    x = np.clip(np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0), 0.0, 1.0)
    r = np.minimum((x * count).astype(np.int64), np.maximum(count - 1, 0))
    run = np.cumsum(valid, axis=1)
    return (run > r[:, None]).argmax(axis=1)


def snap(v: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """``v`` ``(R, ...)`` moved to the next allowed value at or above it (else the last
    allowed below)."""
    R, size = allowed.shape
    ar = np.arange(size)
    nxt = np.where(allowed, ar, size)
    nxt = np.minimum.accumulate(nxt[:, ::-1], axis=1)[:, ::-1]
    prv = np.maximum.accumulate(np.where(allowed, ar, -1), axis=1)
    flat = v.reshape(R, -1)
    vv = np.clip(flat, 0, size - 1)
    up = np.take_along_axis(nxt, vv, axis=1)
    down = np.take_along_axis(prv, vv, axis=1)
    out = np.where(up < size, up, np.maximum(down, 0))
    return out.reshape(v.shape)


class FactoredPlan:
    """The sub-decision program of a layout, and its masks and composition over arrays.

    Parameters
    ----------
    layout : ActionLayout
    n : int
        Players (recipients of bundle sub-decisions).
    m : int
        Goods (0 for mechanisms over abstract states).
    rules : FactoredRules
    encoding : {"factored", "continuous"}
    price_levels : int
        Levels of a gridded amount (default 16).
    price_grid : {"linear", "geometric", "own-lower-bounds"}
    """

    def __init__(
        self,
        layout: ActionLayout,
        n: int,
        m: int,
        rules: FactoredRules | None = None,
        encoding: str = "factored",
        price_levels: int = 16,
        price_grid: str = "linear",
    ) -> None:
        check_encoding_options(encoding, price_levels, price_grid)
        self.layout = layout
        self.n, self.m = int(n), int(m)
        self.rules = rules or FactoredRules()
        self.encoding = encoding
        self.continuous = encoding == "continuous"
        self.levels = int(price_levels)
        self.grid = price_grid
        self.steps = self._program()
        self.S = len(self.steps)
        self.D = max([2, *(s.size for s in self.steps)])
        x = np.linspace(0.0, 1.0, self.levels)
        if price_grid == "geometric":
            x = (np.power(2.0, 6.0 * x) - 1.0) / (2.0**6 - 1.0)
        self._fractions = x
        self.feature_size = self.S + 1 + len(layout) + 1

    # -- the program -------------------------------------------------------------------------
    def _program(self) -> list[Step]:
        lay, n, m = self.layout, self.n, self.m
        ix = lay.index
        steps: list[Step] = []
        done: set[str] = set()
        for name in lay.names:
            if name in done:
                continue
            if name.startswith(("owner_", "salloc_")) and m:
                head = name.split("_")[0]
                owners = tuple(ix[f"{head}_{g}"] for g in range(m) if f"{head}_{g}" in ix)
                done.update(f"{head}_{g}" for g in range(m))
                members: tuple[int, ...] = ()
                if head == "salloc" and all(f"ally_{j}" in ix for j in range(n)):
                    members = tuple(ix[f"ally_{j}"] for j in range(n))
                for r in range(n):
                    steps.append(
                        Step(
                            "bundle",
                            f"{head} bundle for player {r}",
                            -1,
                            r,
                            owners,
                            members,
                            size=1 << len(owners),
                        )
                    )
                    if head == "owner" and f"price_{r}" in ix:
                        f = ix[f"price_{r}"]
                        done.add(f"price_{r}")
                        steps.append(
                            Step(
                                "price",
                                f"price for player {r}",
                                f,
                                r,
                                owners,
                                amount=True,
                                size=self._amount_size(int(lay.sizes[f])),
                            )
                        )
                continue
            f = ix[name]
            size = int(lay.sizes[f])
            if name.startswith(AMOUNT_PREFIXES):
                steps.append(Step("field", name, f, amount=True, size=min(size, self.levels)))
            else:
                steps.append(Step("field", name, f, size=size))
            done.add(name)
        return steps

    def _full_grid(self, size: int) -> np.ndarray:
        grids = self.__dict__.setdefault("_grids", {})
        if size not in grids:
            full = np.ones((1, size), dtype=bool)
            grids[size] = field_value(self._fractions[None], full)[0]
        return grids[size]

    def _amount_size(self, size: int) -> int:
        if self.grid == "own-lower-bounds":
            return max(min(size, self.levels), 1 << self.m)
        return min(size, self.levels)

    # -- per-step options ----------------------------------------------------------------------
    def _field_allowed(self, masks: np.ndarray, f: int) -> np.ndarray:
        lo, hi = int(self.layout.offsets[f]), int(self.layout.offsets[f + 1])
        return masks[:, lo:hi] != 0

    def _bundles(self, step: Step, masks: np.ndarray, act: np.ndarray) -> np.ndarray:
        """``(R, 2^g)`` bool: bundles recipient ``step.recipient`` may get here."""
        lay, r = self.layout, step.recipient
        R = masks.shape[0]
        g = len(step.owners)
        offs = lay.offsets[list(step.owners)]
        # a good is free if no earlier recipient took it (owner field still 0)
        taken = np.stack([act[:, f] != 0 for f in step.owners], axis=1)  # (R, g)
        can_r = masks[:, offs + r + 1] != 0  # (R, g)
        if step.members:
            member = act[:, step.members[r]] == 1
            can_r &= member[:, None]
        later = masks[:, offs] != 0  # owner 0: left unallocated
        for r2 in range(r + 1, self.n):
            ok = masks[:, offs + r2 + 1] != 0
            if step.members:
                ok &= (act[:, step.members[r2]] == 1)[:, None]
            later |= ok
        bits = (np.arange(1 << g)[:, None] >> np.arange(g)[None, :]) & 1  # (2^g, g)
        bits = bits.astype(bool)
        inside = ~(bits[None] & (taken | ~can_r)[:, None, :]).any(axis=2)
        rest_ok = ~((~bits[None]) & (~taken & ~later)[:, None, :]).any(axis=2)
        out = inside & rest_ok
        assert out.shape == (R, 1 << g)
        return out

    def bundle_of(self, step: Step, act: np.ndarray) -> np.ndarray:
        """``(R,)`` the bundle given to ``step.recipient`` so far."""
        out = np.zeros(act.shape[0], dtype=np.int64)
        for gi, f in enumerate(step.owners):
            out |= (act[:, f] == step.recipient + 1).astype(np.int64) << gi
        return out

    def options(
        self, k: int, masks: np.ndarray, act: np.ndarray, lower: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(valid (R, D) bool, value (R, D) int64)`` of step ``k`` for rows at it.

        ``value`` is what an entry writes (a field value; a bundle for bundle steps). At an
        amount step of the ``continuous`` encoding only entry 0 is valid (the box is read);
        its value is the lowest legal one.
        """
        step = self.steps[k]
        R, D = masks.shape[0], self.D
        valid = np.zeros((R, D), dtype=bool)
        value = np.zeros((R, D), dtype=np.int64)
        if step.kind == "bundle":
            b = self._bundles(step, masks, act)
            valid[:, : b.shape[1]] = b
            value[:, : b.shape[1]] = np.arange(b.shape[1])
            return valid, value
        allowed = self._field_allowed(masks, step.field)
        size = allowed.shape[1]
        if step.kind == "price" and self.rules.prices_need_goods:
            empty = self.bundle_of(step, act) == 0
        else:
            empty = np.zeros(R, dtype=bool)
        own_grid = self.grid == "own-lower-bounds" and step.kind == "price" and lower is not None
        if not step.amount or (size <= self.levels and not own_grid):
            valid[:, :size] = allowed
            value[:, :size] = np.arange(size)
        elif own_grid:
            own = lower[:, step.recipient, 1:].astype(np.int64)  # (R, 2^m - 1)
            prices = np.concatenate([np.zeros((R, 1), np.int64), own], axis=1)
            prices = np.sort(prices, axis=1)
            v = snap(np.clip(prices - self.rules.price_offset, 0, size - 1), allowed)
            w = v.shape[1]
            value[:, :w] = v
            valid[:, :w] = allowed.any(axis=1)[:, None]
            valid[:, 1:w] &= v[:, 1:] != v[:, :-1]
        else:
            if allowed.all():
                # every value open (the common case): the grid of the whole range, once
                v = np.broadcast_to(self._full_grid(size), (R, self.levels))
            else:
                v = field_value(np.broadcast_to(self._fractions, (R, self.levels)), allowed)
            value[:, : self.levels] = v
            valid[:, : self.levels] = allowed.any(axis=1)[:, None]
            valid[:, 1 : self.levels] &= v[:, 1:] != v[:, :-1]
        if self.continuous and step.amount:
            low = value[:, 0].copy()
            valid[:] = False
            valid[:, 0] = True
            value[:, 0] = low
        if empty.any():
            # an empty bundle's price is not read: value 0 stands in (allowed or not)
            valid[empty] = False
            valid[empty, 0] = True
            value[empty] = 0
        return valid, value

    def _box_choices(self, k: int, masks: np.ndarray, act: np.ndarray) -> np.ndarray:
        step = self.steps[k]
        count = self._field_allowed(masks, step.field).sum(axis=1)
        if step.kind == "price" and self.rules.prices_need_goods:
            count = np.where(self.bundle_of(step, act) == 0, 1, count)
        return count


class Composer:
    """Factored moves of ``R`` rows under way: who is at which sub-decision, and the array
    actions composed so far. Rows are (episode, player) pairs; the single-episode env uses
    the same object with one episode.

    Parameters
    ----------
    plan : FactoredPlan
    R : int
        Rows.
    """

    def __init__(self, plan: FactoredPlan, R: int) -> None:
        self.plan = plan
        self.R = int(R)
        L = len(plan.layout)
        self.k = np.full(self.R, plan.S, dtype=np.int64)  # S = nothing to choose
        self.act = np.zeros((self.R, L), dtype=np.int64)
        self.masks = np.zeros((self.R, plan.layout.mask_size), dtype=np.int8)
        self.lower: np.ndarray | None = None
        self._valid = np.zeros((self.R, plan.D), dtype=bool)
        self._value = np.zeros((self.R, plan.D), dtype=np.int64)
        self._box = np.zeros(self.R, dtype=bool)
        self._refresh(np.arange(self.R))

    # -- state -------------------------------------------------------------------------------
    @property
    def composing(self) -> np.ndarray:
        """``(R,)`` rows with a sub-decision pending."""
        return self.k < self.plan.S

    def copy(self) -> Composer:
        """An independent copy (the envs save one before a step that may fail)."""
        out = Composer.__new__(Composer)
        out.plan, out.R = self.plan, self.R
        for name in ("k", "act", "masks", "_valid", "_value", "_box"):
            setattr(out, name, getattr(self, name).copy())
        out.lower = None if self.lower is None else self.lower.copy()
        return out

    def take(self, rows: np.ndarray) -> Composer:
        """The rows ``rows`` as a composer of their own."""
        out = Composer.__new__(Composer)
        out.plan, out.R = self.plan, len(rows)
        for name in ("k", "act", "masks", "_valid", "_value", "_box"):
            setattr(out, name, getattr(self, name)[rows].copy())
        out.lower = None if self.lower is None else self.lower[rows].copy()
        return out

    def put(self, rows: np.ndarray, other: Composer) -> None:
        """Overwrite rows ``rows`` with ``other``'s."""
        for name in ("k", "act", "masks", "_valid", "_value", "_box"):
            getattr(self, name)[rows] = getattr(other, name)
        if other.lower is not None:
            if self.lower is None:
                self.lower = np.zeros((self.R, *other.lower.shape[1:]), dtype=np.int64)
            self.lower[rows] = other.lower

    def begin(self, rows: np.ndarray, masks: np.ndarray, lower: np.ndarray | None = None) -> None:
        """Start a move in ``rows`` under their node masks ``masks`` ``(r, mask_size)``;
        ``lower`` ``(r, n, 2^m)``: each row's player's own lower bounds (own-lower-bound
        grids)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return
        self.masks[rows] = masks
        self.act[rows] = 0
        self.k[rows] = 0
        if lower is not None:
            if self.lower is None:
                self.lower = np.zeros((self.R, *lower.shape[1:]), dtype=np.int64)
            self.lower[rows] = lower
        self._settle(rows)

    def stop(self, rows: np.ndarray) -> None:
        """Rows ``rows`` have nothing to choose (not acting, or their node resolved)."""
        rows = np.asarray(rows, dtype=np.int64)
        self.k[rows] = self.plan.S
        self.act[rows] = 0
        self._refresh(rows)

    # -- views -------------------------------------------------------------------------------
    def action_masks(self) -> np.ndarray:
        """``(R, D)`` int8 masks of the pending sub-decisions (entry 0 only elsewhere)."""
        return self._valid.astype(np.int8)

    def reads_box(self) -> np.ndarray:
        """``(R,)`` rows whose pending sub-decision reads the box (``continuous``)."""
        return self._box.copy()

    def features(self, rows: np.ndarray | None = None) -> np.ndarray:
        """``(r, feature_size)`` float32: one-hot of the pending sub-decision (last entry: none
        pending), the array action composed so far, and whether the box is read."""
        plan = self.plan
        rows = np.arange(self.R) if rows is None else np.asarray(rows, dtype=np.int64)
        out = np.zeros((len(rows), plan.feature_size), dtype=np.float32)
        out[np.arange(len(rows)), self.k[rows]] = 1.0
        out[:, plan.S + 1 : plan.S + 1 + len(plan.layout)] = self.act[rows]
        out[:, -1] = self._box[rows]
        return out

    def label(self, row: int) -> str:
        """What row ``row`` chooses now."""
        k = int(self.k[row])
        return self.plan.steps[k].label if k < self.plan.S else "-"

    # -- moves -------------------------------------------------------------------------------
    def check(
        self,
        rows: np.ndarray,
        choice: np.ndarray,
        agents: Sequence[str],
        phases: Sequence[str],
        x: np.ndarray | None = None,
    ) -> None:
        """Raise a typed error unless every row's choice is legal (nothing changes)."""
        rows = np.asarray(rows, dtype=np.int64)
        raw = np.asarray(choice)
        D = self.plan.D
        if raw.dtype.kind == "b" or raw.dtype.kind not in "iuf":
            j = 0
            raise OutOfSpaceError(
                agents[j], phases[j], f"a sub-decision is an integer 0..{D - 1}, got {raw!r}"
            )
        if raw.dtype.kind == "f":
            whole = np.isfinite(raw) & (raw == np.round(np.nan_to_num(raw)))
            if not whole.all():
                j = int(np.flatnonzero(~whole)[0])
                raise OutOfSpaceError(
                    agents[j],
                    phases[j],
                    f"a sub-decision is an integer 0..{D - 1}, got {raw[j]!r}",
                )
        c = np.nan_to_num(raw).astype(np.int64)
        outside = (c < 0) | (c >= D)
        if outside.any():
            j = int(np.flatnonzero(outside)[0])
            raise OutOfSpaceError(
                agents[j], phases[j], f"sub-decision {c[j]} is outside 0..{D - 1}"
            )
        bad = ~self._valid[rows, c]
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            r = int(rows[j])
            legal = np.flatnonzero(self._valid[r]).tolist()
            raise IllegalActionError(
                agents[j],
                phases[j],
                f"{self.label(r)}: entry {c[j]} is masked here; legal entries are {legal}",
            )
        box = self._box[rows]
        if box.any():
            xs = np.full(len(rows), np.nan) if x is None else np.asarray(x, dtype=np.float64)
            ok = np.isfinite(xs) & (xs >= 0.0) & (xs <= 1.0)
            wrong = box & ~ok
            if wrong.any():
                j = int(np.flatnonzero(wrong)[0])
                raise OutOfSpaceError(
                    agents[j],
                    phases[j],
                    f"{self.label(int(rows[j]))}: the box entry must be a number in [0, 1], "
                    f"got {xs[j]!r}",
                )

    def entries_toward(
        self, rows: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The entry of each row's pending sub-decision that builds toward a target move.

        ``targets`` ``(len(rows), L)`` are whole moves in the array layout. A bundle step
        aims at the target's bundle for its recipient, another step at the target's field
        value; the valid entry that writes it is chosen (``exact``), else the valid entry
        whose value is nearest (the lower on a tie): a move the grid cannot express is
        approached level by level. Returns ``(entries, exact)``, both ``(len(rows),)``.
        """
        rows = np.asarray(rows, dtype=np.int64)
        plan = self.plan
        k = self.k[rows]
        want = np.zeros(len(rows), dtype=np.int64)
        for kk in np.unique(k):
            if kk >= plan.S:
                continue
            sel = k == kk
            step = plan.steps[int(kk)]
            if step.kind == "bundle":
                for gi, f in enumerate(step.owners):
                    want[sel] |= (targets[sel, f] == step.recipient + 1).astype(np.int64) << gi
            else:
                want[sel] = targets[sel, step.field]
        valid = self._valid[rows]
        far = np.iinfo(np.int64).max
        dist = np.where(valid, np.abs(self._value[rows] - want[:, None]), far)
        entries = dist.argmin(axis=1)
        exact = dist[np.arange(len(rows)), entries] == 0
        return entries, exact

    def choose(self, rows: np.ndarray, choice: np.ndarray, x: np.ndarray | None = None) -> None:
        """Apply checked choices (entry ``choice``; box value ``x`` where the box is read)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return
        plan = self.plan
        c = np.asarray(choice, dtype=np.int64).reshape(-1)
        v = self._value[rows, c]
        box = self._box[rows]
        if box.any():
            assert x is not None
            xs = np.asarray(x, dtype=np.float64).reshape(-1)[box]
            br = rows[box]
            for kk in np.unique(self.k[br]):
                sel = np.flatnonzero(self.k[br] == kk)
                f = plan.steps[int(kk)].field
                allowed = plan._field_allowed(self.masks[br[sel]], f)
                v[np.flatnonzero(box)[sel]] = field_value(xs[sel], allowed)
        self._write(rows, v)
        self.k[rows] += 1
        self._settle(rows)

    def _write(self, rows: np.ndarray, v: np.ndarray) -> None:
        plan = self.plan
        for kk in np.unique(self.k[rows]):
            sel = rows[self.k[rows] == kk]
            vals = v[self.k[rows] == kk]
            step = plan.steps[int(kk)]
            if step.kind == "bundle":
                for gi, f in enumerate(step.owners):
                    has = (vals >> gi) & 1 == 1
                    self.act[sel[has], f] = step.recipient + 1
            else:
                self.act[sel, step.field] = vals

    def _settle(self, rows: np.ndarray) -> None:
        """Write every sub-decision with a single legal choice, until one is left to make;
        store the options of the one left (entry 0 only where none is)."""
        plan = self.plan
        rows = np.asarray(rows, dtype=np.int64)
        self._valid[rows] = False
        self._valid[rows, 0] = True
        self._value[rows] = 0
        self._box[rows] = False
        rows = rows[self.k[rows] < plan.S]
        while len(rows):
            forced = np.zeros(len(rows), dtype=bool)
            value = np.zeros(len(rows), dtype=np.int64)
            for kk in np.unique(self.k[rows]):
                sel = np.flatnonzero(self.k[rows] == kk)
                r = rows[sel]
                valid, val = plan.options(int(kk), self.masks[r], self.act[r], self._lower(r))
                box = plan.continuous and plan.steps[int(kk)].amount
                if box:
                    count = plan._box_choices(int(kk), self.masks[r], self.act[r])
                else:
                    count = valid.sum(axis=1)
                one = count <= 1
                forced[sel] = one
                value[sel] = val[np.arange(len(r)), np.argmax(valid, axis=1)]
                keep = r[~one]
                self._valid[keep] = valid[~one]
                self._value[keep] = val[~one]
                self._box[keep] = box
            f = rows[forced]
            if len(f):
                self._write(f, value[forced])
                self.k[f] += 1
            rows = f[self.k[f] < plan.S]

    def _lower(self, rows: np.ndarray) -> np.ndarray | None:
        return None if self.lower is None else self.lower[rows]

    def _refresh(self, rows: np.ndarray) -> None:
        self._settle(rows)


def make_plan(
    mech: object,
    layout: ActionLayout,
    n: int,
    m: int,
    encoding: str,
    price_levels: int = 16,
    price_grid: str = "linear",
) -> FactoredPlan:
    """The plan of a mechanism (its registered :class:`FactoredRules`) for an env's layout."""
    name = getattr(mech, "name", "")
    rules = factored_rules(name)
    inner = getattr(mech, "mechs", None)
    if name not in _RULES and inner:
        # a mixture of mechanisms: the first registered inner mechanism's rules
        for sub in inner:
            if getattr(sub, "name", "") in _RULES:
                rules = factored_rules(sub.name)
                break
    offset = getattr(mech, "min_price", None)
    for sub in inner or ():
        if offset is None:
            offset = getattr(sub, "min_price", None)
    if isinstance(offset, int) and not isinstance(offset, bool):
        rules = FactoredRules(rules.prices_need_goods, offset)
    return FactoredPlan(layout, n, m, rules, encoding, price_levels, price_grid)
