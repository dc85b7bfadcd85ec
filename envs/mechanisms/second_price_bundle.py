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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
from mechgym.envs.engine.actions import check_amount, check_bundle
from mechgym.envs.engine.errors import MalformedAnnouncementError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.game import (
    Chance,
    Decision,
    EnvSpec,
    Examples,
    Guarantee,
    Mechanism,
    Node,
    PendingOffer,
    Terminal,
    as_fraction,
)
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.best_belief import BestBelief
from mechgym.envs.mechanisms.catalogue import mixable
from mechgym.envs.mechanisms.collusion_leveraging import CollusionLeveraging
from mechgym.envs.mechanisms.knowledge_benchmark import KnowledgeBenchmark
from mechgym.envs.mechanisms.offer_rules import winner_of
from mechgym.envs.model.bundles import format_bundle
from mechgym.envs.model.outcome import Outcome
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


@dataclass(frozen=True)
class SecondPriceState:
    """Public state of A': the bids once made."""

    n: int
    m: int
    bids: tuple[BundleBid, ...] | None = None


def top_values(ctx: Any) -> list[int]:
    """max_S θ_i(S) for every player."""
    return [int(v) for v in np.asarray(ctx.values).max(axis=1)]


def second_price_outcome(bids: tuple[BundleBid, ...]) -> Outcome:
    """Highest value wins its bundle and pays the second-highest value."""
    values = [b.value for b in bids]
    w = winner_of(values)
    n = len(bids)
    alloc = [0] * n
    prices = [Fraction(0)] * n
    alloc[w] = bids[w].bundle
    prices[w] = Fraction(max(v for i, v in enumerate(values) if i != w))
    return Outcome(tuple(alloc), tuple(prices), rule="second_price")


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


class SecondPriceBundle(Mechanism):
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

    # -- rules -------------------------------------------------------------------------------
    def start(self, ctx: Any) -> SecondPriceState:
        return SecondPriceState(ctx.n, ctx.m)

    def node(self, s: SecondPriceState) -> Node:
        if s.bids is None:
            return Decision(tuple(range(s.n)), "bid")
        return Terminal(second_price_outcome(s.bids))

    def validate(self, s: SecondPriceState, player: int, action: Any) -> Any:
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
        bundle = check_bundle(action.bundle, s.m, agent, phase, "bid bundle")
        return BundleBid(int(action.value), bundle)

    def resolve(self, s: SecondPriceState, actions: Mapping[int, Any]) -> SecondPriceState:
        return replace(s, bids=tuple(actions[i] for i in range(s.n)))

    # -- encodings ---------------------------------------------------------------------------
    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout([("bid_value", spec.price_cap + 1), ("bid_bundle", 1 << spec.m)])

    def action_mask(
        self, s: SecondPriceState, player: int, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        return layout.mask({"bid_value": True, "bid_bundle": True})

    def decode(
        self, s: SecondPriceState, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        return BundleBid(int(vec[layout.index["bid_value"]]), int(vec[layout.index["bid_bundle"]]))

    def encode(
        self, s: SecondPriceState, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
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

    def public_features(self, s: SecondPriceState, player: int, spec: EnvSpec) -> np.ndarray:
        # The only decision node is the first one: nothing public has happened yet.
        return np.zeros(0, dtype=np.float32)

    def describe_action(self, s: SecondPriceState, player: int, action: Any) -> str:
        return f"bid {action.value} for {{{format_bundle(action.bundle)}}}"


# -- the mixture -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MixtureState:
    """State of a :class:`Mixture`: before the draw ``branch`` is None and ``starts`` holds both
    branches' start states; afterwards ``inner`` is the chosen branch's state."""

    starts: tuple[Any, Any]
    branch: int | None = None
    inner: Any = None


@dataclass(frozen=True)
class _UnionLayout:
    layout: ActionLayout
    subs: tuple[ActionLayout, ActionLayout]
    cols: tuple[np.ndarray, np.ndarray]  # union column of every sub field


class Mixture(Mechanism):
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
        if not isinstance(revenue, Mechanism):
            raise ParameterError("revenue", f"must be a mechanism, got {type(revenue).__name__}")
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
    def branch(self, s: MixtureState) -> tuple[Mechanism, Any]:
        """The chosen branch's mechanism and inner state (after the draw)."""
        if s.branch is None:
            raise ValueError("the mixture's branch is not drawn yet")
        return self.mechs[s.branch], s.inner

    def start(self, ctx: Any) -> MixtureState:
        return MixtureState((self.mechs[0].start(ctx), self.mechs[1].start(ctx)))

    def node(self, s: MixtureState) -> Node:
        if s.branch is None:
            return self.mix_node
        return self.mechs[s.branch].node(s.inner)

    def pending_offer(self, s: MixtureState, player: int) -> PendingOffer | None:
        """The drawn branch's question (none before the draw)."""
        if s.branch is None:
            return None
        return self.mechs[s.branch].pending_offer(s.inner, player)

    def validate(self, s: MixtureState, player: int, action: Any) -> Any:
        mech, inner = self.branch(s)
        return mech.validate(inner, player, action)

    def resolve(self, s: MixtureState, actions: Mapping[int, Any]) -> MixtureState:
        mech, inner = self.branch(s)
        return replace(s, inner=mech.resolve(inner, actions))

    def chance(self, s: MixtureState, index: int) -> MixtureState:
        if s.branch is None:
            return replace(s, branch=index, inner=s.starts[index])
        mech, inner = self.branch(s)
        return replace(s, inner=mech.chance(inner, index))

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

    def action_mask(
        self, s: MixtureState, player: int, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        mech, inner = self.branch(s)
        u = self._union(spec)
        sub = u.subs[s.branch]
        sub_mask = mech.action_mask(inner, player, spec, sub)
        out = layout.mask({})
        for k, name in enumerate(sub.names):
            lo = int(layout.offsets[layout.index[name]])
            hi = int(layout.offsets[layout.index[name] + 1])
            out[lo:hi] = 0
            part = sub_mask[sub.offsets[k] : sub.offsets[k + 1]]
            out[lo : lo + len(part)] = part
        return out

    def decode(
        self, s: MixtureState, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        mech, inner = self.branch(s)
        u = self._union(spec)
        return mech.decode(inner, player, np.asarray(vec)[u.cols[s.branch]], spec, u.subs[s.branch])

    def encode(
        self, s: MixtureState, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        mech, inner = self.branch(s)
        u = self._union(spec)
        sub_vec = mech.encode(inner, player, action, spec, u.subs[s.branch])
        vec = layout.zeros()
        vec[u.cols[s.branch]] = sub_vec
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return 2 + sum(mech.public_size(spec) for mech in self.mechs)

    def public_features(self, s: MixtureState, player: int, spec: EnvSpec) -> np.ndarray:
        """[branch one-hot | revenue branch's features | auction branch's features]."""
        out = np.zeros(self.public_size(spec), dtype=np.float32)
        if s.branch is None:
            return out
        out[s.branch] = 1.0
        k = 2
        for b, mech in enumerate(self.mechs):
            size = mech.public_size(spec)
            if b == s.branch:
                out[k : k + size] = mech.public_features(s.inner, player, spec)
            k += size
        return out

    def describe_action(self, s: MixtureState, player: int, action: Any) -> str:
        mech, inner = self.branch(s)
        return mech.describe_action(inner, player, action)
