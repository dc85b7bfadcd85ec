"""The second-price bundle auction A' of seed 002 (Section 1.2), and mixtures with it.

A': every player bids a value and a bundle, simultaneously. The highest value wins (lowest
index on ties) and receives its bundle; it pays the second-highest value. All other goods stay
unallocated and every other player pays nothing. Bidding the value of a favourite bundle
together with that bundle is dominant for an independent player (it is a Vickrey auction of
"the right to pick a bundle"); a coalition lets only its member with the highest favourite
value bid.

The mixture M' of seed 002 runs a revenue mechanism with probability 1/(c + 1) and A'
otherwise: :class:`Mixture` does this for any two engine mechanisms (a chance node ``mix``
picks the branch; the state then holds the chosen branch's inner state). With the
knowledge-benchmark mechanism M3 and c = 1/2 its guarantee is the paper's
E[SW] + E[REV] ≥ MKW_I / 3.

Environments: ``second_price_bundle_v0.env()`` is A' alone; pass ``mixture=`` to get the
mixture through the same module, e.g. ``env(mixture="collusion_leveraging", c="1/2",
eps="1/10")`` (the remaining constants go to the revenue mechanism):
``SecondPriceBundle(mixture=...)`` returns a :class:`Mixture`, not a ``SecondPriceBundle``.

Array layout of A': ``bid_value`` (0..price_cap) and ``bid_bundle`` (2**m). A :class:`Mixture`
lays out the union of both mechanisms' fields (a field present in both keeps the larger size;
values beyond a branch's own size are masked out).

Written once (:mod:`mechgym.envs.engine.episode`): :class:`SecondPriceBundleRules` is A' over a
batch and :class:`MixtureRules` composes the rules of the two branches (each written once
itself); the exact faces run them on a batch of one with exact money, ``mix`` an explicit
chance node. A' ``state.data``: ``bid_value``, ``bid_bundle`` ``(B, n)``. The mixture's
``state.data`` holds ``branch`` ``(B,)`` (0 = revenue, 1 = auction) and each branch's arrays
under the prefixes ``"0/"`` and ``"1/"``; its ``phase`` indexes the union of the branches'
phases (:attr:`Mixture.phases`); an episode's inner state in the branch it did not draw is
marked terminal, so that branch's rules ignore it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from itertools import repeat
from typing import Any, ClassVar

import numpy as np
from mechgym.envs.engine.actions import check_amount, check_bundle
from mechgym.envs.engine.batched import (
    TERMINAL,
    AllAtOnce,
    BatchOutcome,
    BatchState,
    ForcedChance,
    check_actions,
    check_context,
    check_implemented,
    draw,
    register_batched,
    rules_class,
)
from mechgym.envs.engine.episode import BatchOfOne, Episode, MoveRules, Moves
from mechgym.envs.engine.errors import MalformedAnnouncementError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.game import Chance, EnvSpec, Examples, Guarantee, Mechanism, as_fraction
from mechgym.envs.engine.money import FLOAT, Money
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.best_belief import BestBelief
from mechgym.envs.mechanisms.catalogue import mixable
from mechgym.envs.mechanisms.collusion_leveraging import CollusionLeveraging
from mechgym.envs.mechanisms.knowledge_benchmark import KnowledgeBenchmark
from mechgym.envs.model.batch import ContextBatch
from mechgym.envs.model.bundles import format_bundle
from mechgym.envs.solvers.packing import msw

#: the ``kind`` of A's statement (see :class:`~mechgym.envs.engine.game.Guarantee`)
PREDICTED_BIDDING = "property of predicted bidding"


def _is_int(x: object) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


@dataclass(frozen=True)
class BundleBid:
    """A bid of A': a value and the bundle wanted if the bid wins."""

    value: int
    bundle: int


def top_values(ctx: Any) -> list[int]:
    """max_S θ_i(S) for every player."""
    return [int(v) for v in np.asarray(ctx.values).max(axis=1)]


def revenue_mechanism(name: Any, **constants: Any) -> Mechanism:
    """Build the revenue mechanism of a mixture from its name (or pass an instance through)."""
    if isinstance(name, Mechanism):
        if constants:
            raise ParameterError(
                ", ".join(constants), "constants go with a mechanism name, not an instance"
            )
        return name
    key = str(name).lower()
    names = mixable()
    if key not in names:
        raise ParameterError(
            "mixture", f"unknown revenue mechanism {name!r}; use one of {', '.join(names)}"
        )
    import importlib

    mod, cls = names[key].mechanism.split(":")
    mech_cls = getattr(importlib.import_module(mod), cls)
    try:
        return mech_cls(**constants)
    except TypeError as exc:
        raise ParameterError(
            ", ".join(constants) or "-", f"{cls} does not take it ({exc})"
        ) from None


def _same_c(c: Any) -> bool:
    try:
        return as_fraction(c, "c") == Fraction(1, 2)
    except ParameterError:
        return False


class SecondPriceBundle(BatchOfOne):
    """The second-price bundle auction A' (seed 002): the baseline of the mixture M'.

    Parameters
    ----------
    mixture : str or Mechanism, optional
        If given, the constructor returns ``Mixture(revenue_mechanism(mixture, **constants), c)``
        instead: the revenue mechanism w.p. 1/(c+1), A' otherwise.
    c : number > 0, default 1/2
        The mixture's constant (only with ``mixture``).
    **constants
        Constants of the revenue mechanism (only with ``mixture``).
    """

    name = "second_price_bundle"
    title = "Second-price bundle auction A' (seed 002 baseline)"
    phases = ("bid",)
    mask_depends_on_state = False

    parameter_examples: ClassVar[Examples] = {
        "mixture": ("best_belief", "knowledge_benchmark", "collusion_leveraging"),
        "c": ("1/3", "2"),
        "constants": ({"eps": "1/5"},),
    }

    def __new__(cls, mixture: Any = None, c: Any = "1/2", **constants: Any) -> Any:
        if mixture is None:
            if constants:
                raise ParameterError(
                    ", ".join(sorted(constants)), "a constant of A' goes with mixture=... only"
                )
            if not _same_c(c):
                raise ParameterError("c", "the mixture's constant goes with mixture=... only")
            return super().__new__(cls)
        mix = Mixture(revenue_mechanism(mixture, **constants), c)
        mix.name = cls.name
        return mix

    def __init__(self, mixture: Any = None, c: Any = "1/2", **constants: Any) -> None:
        pass

    def params(self) -> dict[str, Any]:
        return {}

    def benchmarks(self, ctx: Any) -> dict[str, Any]:
        """MSW and the highest single-bundle value max_i max_S θ_i(S)."""
        top = top_values(ctx)
        return {"MSW": msw(ctx).value, "max_value": max(top), "top_values": top}

    def guarantee(self, ctx: Any, ev: Any) -> Guarantee:
        """E[SW] = max_i max_S θ_i(S) under the predicted bidding (truthful; in a coalition its
        top member only). Seed 002 states no theorem for A' alone: this is a property of
        predicted bidding, labelled so (``kind``)."""
        return Guarantee(
            "E[SW] = max_i max_S theta_i(S)",
            Fraction(max(top_values(ctx))),
            ev.expected_welfare,
            exact=True,
            kind=PREDICTED_BIDDING,
        )

    # -- moves -------------------------------------------------------------------------------
    def validate(self, s: Episode, player: int, action: Any) -> Any:
        agent, phase = f"player_{player}", "bid"
        if not isinstance(action, BundleBid):
            raise MalformedAnnouncementError(
                agent, phase, f"expected a BundleBid, got {type(action).__name__}"
            )
        if not _is_int(action.value) or int(action.value) < 0:
            raise MalformedAnnouncementError(
                agent, phase, f"a bid value must be an integer >= 0, got {action.value!r}"
            )
        check_amount(action.value, agent, phase, "a bid value")
        bundle = check_bundle(action.bundle, s.ctx.m, agent, phase, "bid bundle")
        return BundleBid(int(action.value), bundle)

    def moves(self, s: Episode, actions: Mapping[int, Any]) -> Moves:
        n = s.ctx.n
        value = np.array([[actions[i].value for i in range(n)]], dtype=np.int64)
        bundle = np.array([[actions[i].bundle for i in range(n)]], dtype=np.int64)
        return {"bid_value": value, "bid_bundle": bundle}

    # -- encodings ---------------------------------------------------------------------------
    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout([("bid_value", spec.price_cap + 1), ("bid_bundle", 1 << spec.m)])

    def decode(
        self, s: Episode, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        return BundleBid(int(vec[layout.index["bid_value"]]), int(vec[layout.index["bid_bundle"]]))

    def encode(
        self, s: Episode, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        if not 0 <= int(action.value) <= spec.price_cap:
            raise OutOfSpaceError(
                f"player_{player}",
                "bid",
                f"bid value {action.value} is outside the grid 0..{spec.price_cap}",
            )
        vec = layout.zeros()
        vec[layout.index["bid_value"]] = int(action.value)
        vec[layout.index["bid_bundle"]] = int(action.bundle)
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return 0

    def describe_action(self, s: Episode, player: int, action: Any) -> str:
        return f"bid {action.value} for {{{format_bundle(action.bundle)}}}"


# -- the mixture -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _UnionLayout:
    layout: ActionLayout
    subs: tuple[ActionLayout, ActionLayout]
    cols: tuple[np.ndarray, np.ndarray]  # union column of every sub field


class Mixture(BatchOfOne):
    """Run ``revenue`` with probability 1/(c + 1) and ``auction`` (default A') otherwise.

    Guarantee: if each branch's guarantee bounds E[SW] + E[REV] from below (true of M3, M4 and
    of A', whose revenue is ≥ 0, and of revenue-only guarantees since SW ≥ 0), the mixture has
    E[SW] + E[REV] ≥ p·bound(revenue) + (1 − p)·bound(auction) with p = 1/(c + 1).

    Parameters
    ----------
    revenue : Mechanism
    c : number > 0, default 1/2
    auction : Mechanism, optional
        Defaults to :class:`SecondPriceBundle`.
    """

    name = "mixture"
    title = "Mixture M' of a revenue mechanism and A' (seed 002, Sec. 1.2)"
    phases: tuple[str, ...] = ()
    # mechanism classes: an instance with its own declared parameters drawn in turn
    parameter_examples: ClassVar[Examples] = {
        "revenue": (BestBelief, KnowledgeBenchmark, CollusionLeveraging),
        "c": ("1/3", "2"),
        "auction": (SecondPriceBundle,),
    }

    def __init__(
        self, revenue: Mechanism, c: Any = "1/2", auction: Mechanism | None = None
    ) -> None:
        for what, mech in (("revenue", revenue), ("auction", auction)):
            if mech is None and what == "auction":
                continue
            if not isinstance(mech, BatchOfOne):
                # the mixture composes its branches' rules, so each must be written once
                raise ParameterError(
                    what,
                    f"must be a mechanism written once (its rules over a batch), "
                    f"got {type(mech).__name__}",
                )
        cc = as_fraction(c, "c")
        if not cc > 0:
            raise ParameterError("c", f"must be positive, got {cc}")
        self.c = cc
        self.p = 1 / (1 + cc)
        self.mechs: tuple[Mechanism, Mechanism] = (
            revenue,
            auction if auction is not None else SecondPriceBundle(),
        )
        phases: list[str] = []
        for mech in self.mechs:
            phases += [ph for ph in mech.phases if ph not in phases]
        self.phases = tuple(phases)
        self.title = f"Mixture of {revenue.title} (p = {self.p}) and {self.mechs[1].title}"
        self.simultaneous_only = all(mech.simultaneous_only for mech in self.mechs)
        shared = set(self.mechs[0].phases) & set(self.mechs[1].phases)
        self.mask_depends_on_state = bool(shared) or any(
            mech.mask_depends_on_state for mech in self.mechs
        )
        self.mix_node = Chance(
            "mix",
            (f"revenue:{revenue.name}", f"auction:{self.mechs[1].name}"),
            (self.p, 1 - self.p),
        )
        self._layouts: dict[EnvSpec, _UnionLayout] = {}

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "c": str(self.c),
            "revenue": self.mechs[0].name,
            "auction": self.mechs[1].name,
        }
        out.update({f"revenue.{k}": v for k, v in self.mechs[0].params().items()})
        out.update({f"auction.{k}": v for k, v in self.mechs[1].params().items()})
        return out

    # -- theory ------------------------------------------------------------------------------
    def benchmarks(self, ctx: Any) -> dict[str, Any]:
        """Both branches' benchmarks, the branch probability and MKW_I (independent players)."""
        from mechgym.envs.solvers.packing import best_knowledge

        out: dict[str, Any] = {}
        for mech in self.mechs:
            out.update(mech.benchmarks(ctx))
        out["p_revenue"] = str(self.p)
        out["max_value"] = max(top_values(ctx))
        out["MKW_I"] = max((best_knowledge(ctx, (i,)).value for i in ctx.independent), default=0)
        return out

    def guarantee(self, ctx: Any, ev: Any) -> Guarantee | None:
        """E[SW] + E[REV] ≥ p·bound(revenue branch) + (1 − p)·bound(auction branch).

        The sum is a theorem only when both branch bounds are; with A' its branch bound is the
        welfare of *predicted* bidding, so the mixture's bound is stated (``kind``) as a
        property of predicted play in A' together with the revenue branch's theorem — the
        paper's own claim (seed 002, Sec. 1.2: total performance ≥ c/(c+1)·MKW_I) is informal.
        """
        g0 = self.mechs[0].guarantee(ctx, ev)
        g1 = self.mechs[1].guarantee(ctx, ev)
        if g0 is None or g1 is None:
            return None
        kinds = {g0.kind, g1.kind} - {"theorem"}
        return Guarantee(
            f"E[SW] + E[REV] >= {self.p}*[{g0.statement}] + {1 - self.p}*[{g1.statement}] (bounds)",
            self.p * g0.bound + (1 - self.p) * g1.bound,
            ev.expected_welfare + ev.expected_revenue,
            kind="theorem" if not kinds else "theorem in one branch, " + ", ".join(sorted(kinds)),
        )

    # -- rules -------------------------------------------------------------------------------
    def branch(self, s: Episode) -> tuple[Mechanism, Episode]:
        """The chosen branch's mechanism and its own state (after the draw)."""
        if s.pending is not None or "branch" not in s.state.data:
            raise ValueError("the mixture's branch is not drawn yet")
        k = int(s.state.data["branch"][0])
        rules = self.rules(s.ctx.n, s.ctx.m)
        return self.mechs[k], Episode(s.ctx, s.batch, rules.inner_state(s.state, k))

    def validate(self, s: Episode, player: int, action: Any) -> Any:
        mech, inner = self.branch(s)
        return mech.validate(inner, player, action)

    def moves(self, s: Episode, actions: Mapping[int, Any]) -> Moves:
        mech, inner = self.branch(s)
        k = int(s.state.data["branch"][0])
        return {f"{k}/{key}": v for key, v in mech.moves(inner, actions).items()}

    # -- encodings ---------------------------------------------------------------------------
    def _union(self, spec: EnvSpec) -> _UnionLayout:
        u = self._layouts.get(spec)
        if u is None:
            subs = (self.mechs[0].layout(spec), self.mechs[1].layout(spec))
            sizes: dict[str, int] = {}
            for lay in subs:
                for name, size in zip(lay.names, lay.sizes, strict=True):
                    sizes[name] = max(sizes.get(name, 0), int(size))
            layout = ActionLayout(list(sizes.items()))
            cols = tuple(
                np.array([layout.index[f] for f in lay.names], dtype=np.int64) for lay in subs
            )
            u = _UnionLayout(layout, subs, cols)  # type: ignore[arg-type]
            self._layouts[spec] = u
        return u

    def layout(self, spec: EnvSpec) -> ActionLayout:
        return self._union(spec).layout

    def decode(
        self, s: Episode, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        mech, inner = self.branch(s)
        k = int(s.state.data["branch"][0])
        u = self._union(spec)
        return mech.decode(inner, player, np.asarray(vec)[u.cols[k]], spec, u.subs[k])

    def encode(
        self, s: Episode, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        mech, inner = self.branch(s)
        k = int(s.state.data["branch"][0])
        u = self._union(spec)
        sub_vec = mech.encode(inner, player, action, spec, u.subs[k])
        vec = layout.zeros()
        vec[u.cols[k]] = sub_vec
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return 2 + sum(mech.public_size(spec) for mech in self.mechs)

    def describe_action(self, s: Episode, player: int, action: Any) -> str:
        mech, inner = self.branch(s)
        return mech.describe_action(inner, player, action)


BID = 0


def second_price(values: np.ndarray, bundles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(alloc, prices)`` ``(B, n)`` int64 of A': the highest value (lowest index on ties)
    wins its bundle and pays the second-highest value; nobody else gets or pays anything."""
    B, n = values.shape
    rows = np.arange(B)
    w = np.argmax(values, axis=1)  # first maximum: lowest index on ties
    others = values.copy()
    others[rows, w] = -1  # values are >= 0
    alloc = np.zeros((B, n), dtype=np.int64)
    prices = np.zeros((B, n), dtype=np.int64)
    alloc[rows, w] = bundles[rows, w]
    prices[rows, w] = others.max(axis=1)
    return alloc, prices


@register_batched
class SecondPriceBundleRules(MoveRules):
    """The rules of :class:`SecondPriceBundle` over a batch."""

    mechanism = SecondPriceBundle

    def __init__(self, mech: SecondPriceBundle, spec: EnvSpec, money: Money = FLOAT) -> None:
        super().__init__(mech, spec, money)
        self.bidding = AllAtOnce(self.layout, spec.n, "bid")
        self.i_value = self.layout.index["bid_value"]
        self.i_bundle = self.layout.index["bid_bundle"]

    def reset(self, ctx: ContextBatch, rng: Any) -> BatchState:
        check_context(self, ctx)
        B, n = ctx.B, ctx.n
        return BatchState(
            phase=np.full(B, BID, dtype=np.int64),
            acting=np.ones((B, n), dtype=bool),
            data={
                "bid_value": np.zeros((B, n), dtype=np.int64),
                "bid_bundle": np.zeros((B, n), dtype=np.int64),
            },
        )

    def mask_rows(self, state: BatchState) -> tuple[np.ndarray, np.ndarray]:
        return self.bidding.rows(state.acting)

    def decode_moves(self, state: BatchState, actions: np.ndarray) -> Moves:
        actions = self.bidding.checked(actions, state.acting)
        return {
            "bid_value": actions[:, :, self.i_value],
            "bid_bundle": actions[:, :, self.i_bundle],
        }

    def apply(self, ctx: ContextBatch, state: BatchState, moves: Moves, rng: Any) -> BatchState:
        live = state.phase == BID
        data = dict(state.data)
        data["bid_value"] = np.where(live[:, None], moves["bid_value"], data["bid_value"])
        data["bid_bundle"] = np.where(live[:, None], moves["bid_bundle"], data["bid_bundle"])
        return BatchState(
            phase=np.where(live, TERMINAL, state.phase),
            acting=np.zeros_like(state.acting),
            data=data,
            chance=list(state.chance),
        )

    def outcome(self, state: BatchState) -> BatchOutcome:
        alloc, prices = second_price(state.data["bid_value"], state.data["bid_bundle"])
        return BatchOutcome.of_bundles(alloc, self.money.array(prices))

    def outcome_rule(self, state: BatchState) -> str:
        return "second_price"

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        # The only decision node is the first one: nothing public has happened yet.
        return np.zeros((state.phase.shape[0], 0), dtype=np.float32)


@register_batched
class MixtureRules(MoveRules):
    """The rules of :class:`Mixture` over a batch, composed from the rules of its revenue
    branch (0) and its auction branch (1), in the same money."""

    mechanism = Mixture
    implements = frozenset({"revenue", "c", "auction"})
    mech: Mixture

    def __init__(self, mech: Mixture, spec: EnvSpec, money: Money = FLOAT) -> None:
        super().__init__(mech, spec, money)
        inner = []
        for m in mech.mechs:
            cls = rules_class(m)
            if not money.exact:
                check_implemented(m, cls)
            inner.append(cls(m, spec, money))
        self.inner: tuple[MoveRules, MoveRules] = (inner[0], inner[1])
        u = mech._union(spec)
        self.cols = u.cols
        self.probs = np.array([float(mech.p), float(1 - mech.p)])
        lay = self.layout
        self.idle = lay.mask({})
        # per branch: inner phase index -> mixture phase index (the last entry maps TERMINAL)
        self.to_mix = []
        self.to_inner = []
        self.gather = []
        for k, rules in enumerate(self.inner):
            to_mix = [self.phases.index(ph) for ph in rules.phases]
            self.to_mix.append(np.array([*to_mix, TERMINAL], dtype=np.int64))
            to_inner = np.full(len(self.phases) + 1, TERMINAL, dtype=np.int64)
            for j, t in enumerate(to_mix):
                to_inner[t] = j
            self.to_inner.append(to_inner)
            # union mask = a constant row (idle elsewhere, 0 on the branch's fields, so values
            # beyond the branch's own size stay masked out) with each sub field's part copied
            # to its union field; consecutive fields are copied as one slice
            sub = u.subs[k]
            const = self.idle.copy()
            runs: list[list[int]] = []  # [src_lo, dst_lo, length]
            for f, name in enumerate(sub.names):
                lo = int(lay.offsets[lay.index[name]])
                const[lo : int(lay.offsets[lay.index[name] + 1])] = 0
                src, size = int(sub.offsets[f]), int(sub.sizes[f])
                if runs and runs[-1][0] + runs[-1][2] == src and runs[-1][1] + runs[-1][2] == lo:
                    runs[-1][2] += size
                else:
                    runs.append([src, lo, size])
            self.gather.append((const, [(slice(a, a + n), slice(b, b + n)) for a, b, n in runs]))
        self.sizes = tuple(m.public_size(spec) for m in mech.mechs)

    # -- composition -------------------------------------------------------------------------
    def inner_state(self, state: BatchState, k: int) -> BatchState:
        """Branch ``k``'s view of the batch: episodes of the other branch are terminal."""
        mine = state.data["branch"] == k
        pre = f"{k}/"
        return BatchState(
            phase=np.where(mine, self.to_inner[k][state.phase], TERMINAL),
            acting=state.acting & mine[:, None],
            data={key[len(pre) :]: v for key, v in state.data.items() if key.startswith(pre)},
        )

    def _merge(
        self, branch: np.ndarray, inner: tuple[BatchState, BatchState], chance: list[np.ndarray]
    ) -> BatchState:
        phase = np.where(
            branch == 0, self.to_mix[0][inner[0].phase], self.to_mix[1][inner[1].phase]
        )
        acting = np.where(branch[:, None] == 0, inner[0].acting, inner[1].acting)
        data: dict[str, np.ndarray] = {"branch": branch}
        for k, st in enumerate(inner):
            data.update({f"{k}/{key}": v for key, v in st.data.items()})
            # an inner rule logs its own episodes only; the mask also covers the resets,
            # which cannot know the branch
            chance.extend(np.where(branch == k, c, -1) for c in st.chance)
        return BatchState(
            phase=phase, acting=acting & (phase != TERMINAL)[:, None], data=data, chance=chance
        )

    def inner_actions(self, actions: np.ndarray, k: int) -> np.ndarray:
        """Branch ``k``'s columns of union-layout actions."""
        return actions[..., self.cols[k]]

    def to_union_actions(self, sub_actions: np.ndarray, k: int) -> np.ndarray:
        """Branch ``k``'s actions written into the union layout (other fields 0)."""
        out = np.zeros((*sub_actions.shape[:-1], len(self.layout)), dtype=np.int64)
        out[..., self.cols[k]] = sub_actions
        return out

    def to_union_mask(self, sub_mask: np.ndarray, k: int) -> np.ndarray:
        """Branch ``k``'s flat mask written into the union layout."""
        const, runs = self.gather[k]
        out = np.empty((*sub_mask.shape[:-1], self.layout.mask_size), dtype=np.int8)
        out[...] = const
        for src, dst in runs:
            out[..., dst] = sub_mask[..., src]
        return out

    # -- rules -------------------------------------------------------------------------------
    def reset(self, ctx: ContextBatch, rng: Any) -> BatchState:
        check_context(self, ctx)
        branch = draw(rng, self.probs, np.ones(ctx.B, dtype=bool), self.mech.mix_node)
        if isinstance(rng, ForcedChance):
            # a batch of one: the branch not drawn is never played, so its reset (a nested
            # mixture's own draw) must not ask the exact engine for chance
            inner = tuple(
                rules.reset(ctx, rng if k == branch[0] else ForcedChance(repeat(0)))
                for k, rules in enumerate(self.inner)
            )
        else:
            inner = tuple(rules.reset(ctx, rng) for rules in self.inner)
        for k, st in enumerate(inner):
            mine = branch == k
            st.phase = np.where(mine, st.phase, TERMINAL)
            st.acting = st.acting & mine[:, None]
        return self._merge(branch, inner, [branch])  # type: ignore[arg-type]

    def mask_rows(self, state: BatchState) -> tuple[np.ndarray, np.ndarray] | None:
        """The branches' mask tables in the union layout, one after the other (``None``
        where a branch's masks are not a table's rows)."""
        parts = [rules.mask_rows(self.inner_state(state, k)) for k, rules in enumerate(self.inner)]
        if any(p is None for p in parts):
            return None
        (t0, i0), (t1, i1) = parts  # type: ignore[misc]
        cache = self.__dict__.setdefault("_union_tables", {})
        hit = cache.get((id(t0), id(t1)))
        if hit is None or hit[0] is not t0 or hit[1] is not t1:
            union = np.concatenate([self.to_union_mask(t0, 0), self.to_union_mask(t1, 1)])
            hit = cache[(id(t0), id(t1))] = (t0, t1, union)
        branch = state.data["branch"]
        return hit[2], np.where(branch[:, None] == 1, i1 + len(t0), i0)

    def masks(self, state: BatchState) -> np.ndarray:
        rows = self.mask_rows(state)
        if rows is not None:
            return np.take(rows[0], rows[1], axis=0)
        branch = state.data["branch"]
        parts = [
            self.to_union_mask(rules.masks(self.inner_state(state, k)), k)
            for k, rules in enumerate(self.inner)
        ]
        np.copyto(parts[0], parts[1], where=(branch == 1)[:, None, None])
        return parts[0]

    def decode_moves(self, state: BatchState, actions: np.ndarray) -> Moves:
        actions = np.asarray(actions, dtype=np.int64)
        names = np.array([*self.phases, "-"])[state.phase]
        B, n = state.acting.shape
        if actions.shape != (B, n, len(self.layout)):
            check_actions(self.layout, self.masks(state), actions, state.acting, names)
        moves: Moves = {}
        for k, rules in enumerate(self.inner):
            st = self.inner_state(state, k)
            if not st.done.all():
                # each branch checks its own columns on its own masks (no union masks); the
                # union's other columns must be 0 for its acting players
                sub = self.inner_actions(actions, k)
                foreign = np.delete(actions, self.cols[k], axis=2)
                check_actions(rules.layout, rules.masks(st), sub, st.acting, names)
                if (foreign[st.acting] != 0).any():
                    check_actions(self.layout, self.masks(state), actions, state.acting, names)
                moves.update({f"{k}/{key}": v for key, v in rules.decode_moves(st, sub).items()})
        return moves

    def apply(self, ctx: ContextBatch, state: BatchState, moves: Moves, rng: Any) -> BatchState:
        branch = state.data["branch"]
        new = []
        for k, rules in enumerate(self.inner):
            st = self.inner_state(state, k)
            pre = f"{k}/"
            mine = {key[len(pre) :]: v for key, v in moves.items() if key.startswith(pre)}
            if mine and not st.done.all():
                st = rules.apply(ctx, st, mine, rng)
            new.append(st)
        return self._merge(branch, tuple(new), list(state.chance))  # type: ignore[arg-type]

    def outcome(self, state: BatchState) -> BatchOutcome:
        branch = state.data["branch"]
        outs = [rules.outcome(self.inner_state(state, k)) for k, rules in enumerate(self.inner)]
        rev = branch == 0
        return BatchOutcome(
            np.where(rev[:, None], outs[0].alloc, outs[1].alloc),
            np.where(rev[:, None], outs[0].prices, outs[1].prices),
            np.where(rev, outs[0].state, outs[1].state),
            np.where(rev, outs[0].destroyed, outs[1].destroyed),
        )

    def outcome_rule(self, state: BatchState) -> str:
        k = int(state.data["branch"][0])
        return self.inner[k].outcome_rule(self.inner_state(state, k))

    def pending_offers(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        branch = state.data["branch"][:, None]
        asked, item, price = self.inner[0].pending_offers(self.inner_state(state, 0))
        other = self.inner[1].pending_offers(self.inner_state(state, 1))
        mine = branch == 0
        return (
            np.where(mine, asked, other[0]),
            np.where(mine, item, other[1]),
            np.where(mine, price, other[2]),
        )

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        return self.public_features_all(state)[:, player]

    def public_features_all(self, state: BatchState) -> np.ndarray:
        """[branch one-hot | revenue branch's features | auction branch's features]."""
        branch = state.data["branch"]
        B, n = branch.shape[0], state.acting.shape[1]
        out = np.zeros((B, n, 2 + sum(self.sizes)), dtype=np.float32)
        out[np.arange(B), :, branch] = 1.0
        pos = 2
        for k, rules in enumerate(self.inner):
            size = self.sizes[k]
            if size:
                feats = rules.public_features_all(self.inner_state(state, k))
                out[:, :, pos : pos + size] = np.where((branch == k)[:, None, None], feats, 0.0)
            pos += size
        return out
