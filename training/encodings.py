"""Action encodings and observations of a learner.

Four encodings of a player's decisions (all generic over every registered mechanism):

``raw`` (:class:`RawEncoding`)
    The mechanism's own ``MultiDiscrete`` layout (:meth:`Mechanism.layout`) with its flat
    concatenated mask (the layout sb3-contrib's MaskablePPO reads for ``MultiDiscrete``).
    An array action is checked against the mask and decoded by the mechanism.
``menu`` (:class:`MenuEncoding`)
    ``Discrete(K)`` with ``K = max over phases of AGENTS[name].menu_size(phase, spec)``.
    Entry ``k`` at a node is the ``k``-th ``(label, action)`` pair of
    ``AGENTS[name].menu(mech, ctx, state, player)``; entries beyond the phase's menu are
    masked. The predicted action is one of the entries (:meth:`MenuEncoding.encode` finds it
    by equality).
``factored`` / ``continuous`` (:class:`FactoredEncoding`)
    A move as a sequence of sub-decisions (:mod:`mechgym.envs.engine.factored`):
    ``Discrete(D)`` each, with exact masks (MaskablePPO reads them). ``continuous`` is a
    ``Box(0, 1, (2,))`` here, the form SB3's Gaussian policies take: entry 0 picks the
    ``floor(x0 * c)``-th of the ``c`` legal entries of a discrete sub-decision
    (:func:`~mechgym.envs.engine.factored.entry_of`), entry 1 is the amount an amount
    sub-decision reads (the PettingZoo env's ``Tuple(Discrete(D), Box)`` pair, which this
    encoding hands it). Nothing in them comes from the solvers or the scripted agents. The
    learner's observation ends with its own move so far.

Observation (:class:`ObservationBuilder`), a float32 vector, in this order:

1. the AEC observation vector of the acting player (``[phase one-hot | acting flag | own
   index one-hot | private information | public history]``, see :mod:`mechgym.envs.pettingzoo.aec`),
   optionally normalised with ``normalize="symlog"``: ``sign(x) * log1p(|x|)`` entry-wise
   (monotone, keeps 0/1 flags distinguishable, compresses money; ``"none"`` keeps it raw);
2. for a coalition learner of ``c`` players: the one-hot position (``0..c-1``) of the member
   it acts for (the own-index one-hot of part 1 says the same in player terms);
3. with ``features=True``, derived features computed only from the acting player's OWN
   private information and the public state (never another player's private information):

   * *pending question* (4 numbers, both encodings): whether the player faces a
     take-it-or-leave-it offer at this node (0/1), then its own value θ_i(α_i) of the
     offered item (a bundle; in markets less the endowed bundle's
     value; a state in ``states`` contexts), the price π_i, and θ_i(α_i) − π_i, each
     through ``symlog`` (so a surplus of 0 and of −1 lie 0.69 apart whatever the value
     scale); zeros when there is no question. The question is the mechanism's own
     :meth:`~mechgym.envs.engine.game.Mechanism.pending_offer`;
   * *menu summaries* (menu encoding only; 4 numbers per entry, ``K`` entries, zeros on
     masked entries): for entry ``k``: θ_i(bundle) if the action names a favourite bundle,
     the announced revenue, Σ_S (report_S − θ_i(S)) for a reported valuation, and
     θ_i(α_i) − π_i for a YES answer to the pending question (0 for NO); each through
     ``symlog``. They are read from the entry's array layout, per mechanism
     (:data:`~mechgym.training.batched_obs.BATCHED_SUMMARIES`).

Every feature is computed once, over a batch (:mod:`mechgym.training.batched_obs`); an exact
state is its batch of one with exact money, so the exact engine, the learner env with either
money and every trained policy see the same vector.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from mechgym.agents.menus import MenuTable
from mechgym.envs.engine.errors import IllegalActionError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.factored import FACTORED_ENCODINGS
from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism
from mechgym.envs.engine.spaces import canonical_encoding
from mechgym.envs.pettingzoo.aec import OBS_BOUND

#: the learners' encodings (``"raw"`` is accepted for ``"multidiscrete"``)
ENCODINGS = ("menu", "multidiscrete", "factored", "continuous")
NORMALIZATIONS = ("symlog", "none")
QUESTION_SIZE = 4
SUMMARY_SIZE = 4


def symlog(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log1p(|x|)``, entry-wise, float32."""
    return (np.sign(x) * np.log1p(np.abs(x))).astype(np.float32)


def aec_observation(
    mech: Mechanism, ctx: Any, state: Any, player: int, spec: EnvSpec
) -> np.ndarray:
    """The AEC env's observation vector of ``player`` at ``state`` (pure function): the
    batched :func:`~mechgym.envs.batched_api.observation_vectors` on the state's batch of
    one, so that a trained model plays from engine states (exact evaluation) as in the env."""
    from mechgym.envs.batched_api import observation_vectors

    node = mech.node(state)
    acting = np.array([isinstance(node, Decision) and player in node.players])
    rules = mech.rules(spec.n, spec.m, spec)
    return observation_vectors(rules, state.batch, state.state, player, acting)[0]


def question_vector(ctx: Any, player: int, q: tuple[int, int] | None) -> np.ndarray:
    """``(4,)`` float32 raw pending-question features of ``player`` for the offer ``q``
    (``(item, price)`` or ``None``): the batched
    :func:`~mechgym.training.batched_obs.question_vector` on ``ctx`` as a batch of one."""
    from mechgym.envs.engine.episode import batch_of_one

    from .batched_obs import question_vector as batched_question

    asked, item, price = (np.array([x]) for x in ((q is not None), *(q or (0, 0))))
    return batched_question(batch_of_one(ctx), player, (asked, item, price))[0]


def pending_question(mech: Mechanism, ctx: Any, state: Any, player: int) -> tuple[int, int] | None:
    """The take-it-or-leave-it offer ``(item, price)`` that ``player`` answers at ``state``:
    the mechanism's :meth:`~mechgym.envs.engine.game.Mechanism.pending_offer`."""
    return mech.pending_offer(state, player)


class Encoding:
    """Base class of action encodings (the learner's action space over a mechanism)."""

    name: str = ""

    def __init__(self, mech_name: str, mech: Mechanism, spec: EnvSpec) -> None:
        self.mech_name = mech_name
        self.mech = mech
        self.spec = spec
        self.layout = mech.layout(spec)
        self.action_space: spaces.Space = spaces.Discrete(1)
        self.summary_size = 0

    def mask(self, ctx: Any, state: Any, player: int) -> np.ndarray:
        """Boolean mask over the action space's values (flat for MultiDiscrete)."""
        raise NotImplementedError

    def decode(self, ctx: Any, state: Any, player: int, action: Any) -> Any:
        """The structured action of an encoded one; ActionError if the mask excludes it."""
        raise NotImplementedError

    def encode(self, ctx: Any, state: Any, player: int, structured: Any) -> Any:
        """The encoded form of a structured action, or ``None`` if not representable."""
        raise NotImplementedError

    def options(self, ctx: Any, state: Any, player: int) -> list[Any]:
        """Structured actions a deviator may pick here in an exact best-response search."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"encoding": self.name}


class MenuEncoding(Encoding):
    """``Discrete(K)`` over the mechanism's menus (see the module docstring); the menus
    themselves come from :class:`~mechgym.agents.menus.MenuTable`, shared with the envs."""

    name = "menu"

    def __init__(
        self,
        mech_name: str,
        mech: Mechanism,
        spec: EnvSpec,
        agents: Any,
        table: MenuTable | None = None,
    ) -> None:
        super().__init__(mech_name, mech, spec)
        self.table = table if table is not None else MenuTable(mech_name, mech, spec, agents)
        self.agents = agents
        self.sizes = self.table.sizes
        self.K = self.table.K
        self.action_space = spaces.Discrete(self.K)
        self.summary_size = self.K * SUMMARY_SIZE

    def menu(self, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
        """The node's menu (cached per context, state and player)."""
        return self.table.menu(ctx, state, player)

    def mask(self, ctx: Any, state: Any, player: int) -> np.ndarray:
        return self.table.mask(ctx, state, player).astype(bool)

    def decode(self, ctx: Any, state: Any, player: int, action: Any) -> Any:
        return self.table.decode(ctx, state, player, action)

    def encode(self, ctx: Any, state: Any, player: int, structured: Any) -> int | None:
        return self.table.encode(ctx, state, player, structured)

    def label(self, ctx: Any, state: Any, player: int, k: int) -> str:
        return self.table.label(ctx, state, player, k)

    def options(self, ctx: Any, state: Any, player: int) -> list[Any]:
        return self.table.options(ctx, state, player)


class RawEncoding(Encoding):
    """The mechanism's MultiDiscrete layout with its flat mask."""

    name = "multidiscrete"

    def __init__(self, mech_name: str, mech: Mechanism, spec: EnvSpec, agents: Any = None) -> None:
        super().__init__(mech_name, mech, spec)
        self.action_space = spaces.MultiDiscrete(self.layout.sizes)
        self.agents = agents
        self._menu = (
            MenuEncoding(mech_name, mech, spec, agents)
            if agents is not None and agents.menu
            else None
        )

    def mask(self, ctx: Any, state: Any, player: int) -> np.ndarray:
        return self.mech.action_mask(state, player, self.spec, self.layout).astype(bool)

    def decode(self, ctx: Any, state: Any, player: int, action: Any) -> Any:
        phase = self.mech.node(state).phase
        mask = self.mech.action_mask(state, player, self.spec, self.layout)
        arr = self.layout.check(action, mask, f"player_{player}", phase)
        return self.mech.decode(state, player, arr, self.spec, self.layout)

    def encode(self, ctx: Any, state: Any, player: int, structured: Any) -> np.ndarray | None:
        try:
            return self.mech.encode(state, player, structured, self.spec, self.layout)
        except (OutOfSpaceError, IllegalActionError):
            return None

    def options(self, ctx: Any, state: Any, player: int) -> list[Any]:
        """The menu's actions (the raw space is too large to enumerate): a best response
        restricted to them is a lower bound on the raw encoding's exploitability."""
        return self._menu.options(ctx, state, player) if self._menu is not None else []


class FactoredEncoding(Encoding):
    """Sub-decisions of the ``factored`` or ``continuous`` encoding (module docstring):
    the plan and the spaces; a move under way lives in the env's composer."""

    def __init__(
        self,
        mech_name: str,
        mech: Mechanism,
        spec: EnvSpec,
        agents: Any = None,
        kind: str = "factored",
        price_levels: int = 16,
        price_grid: str = "linear",
    ) -> None:
        from mechgym.envs.engine.factored import make_plan

        super().__init__(mech_name, mech, spec)
        self.name = kind
        m = spec.m if mech.context_kind != "states" else 0
        self.plan = make_plan(mech, self.layout, spec.n, m, kind, price_levels, price_grid)
        self.price_levels = int(price_levels)
        self.price_grid = price_grid
        D = self.plan.D
        if kind == "factored":
            self.action_space: spaces.Space = spaces.Discrete(D)
        else:
            self.action_space = spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
        self.prefix_size = self.plan.feature_size
        self.agents = agents
        self._menu: MenuEncoding | None = None

    def mask(self, ctx: Any, state: Any, player: int) -> np.ndarray:
        raise ParameterError(
            "encoding",
            f"a {self.name} move is composed sub-decision by sub-decision (the learner env's "
            "composer, or LearnedPolicy on the exact engine), not chosen from one mask",
        )

    def decode(self, ctx: Any, state: Any, player: int, action: Any) -> Any:
        return self.mask(ctx, state, player)

    def encode(self, ctx: Any, state: Any, player: int, structured: Any) -> None:
        """``None``: a whole move is not one sub-decision."""
        return None

    def options(self, ctx: Any, state: Any, player: int) -> list[Any]:
        """The menu's actions, for exploitability measured over them (a lower bound, as for
        ``raw``); built only when asked, never for the learner's space."""
        if self.agents is None or not self.agents.menu:
            return []
        if self._menu is None:
            self._menu = MenuEncoding(self.mech_name, self.mech, self.spec, self.agents)
        return self._menu.options(ctx, state, player)

    def describe(self) -> dict[str, Any]:
        return {
            "encoding": self.name,
            "price_levels": self.price_levels,
            "price_grid": self.price_grid,
        }


def make_encoding(
    kind: str,
    mech_name: str,
    mech: Mechanism,
    spec: EnvSpec,
    agents: Any,
    price_levels: int = 16,
    price_grid: str = "linear",
) -> Encoding:
    """``"menu"``, ``"multidiscrete"`` (alias ``"raw"``), ``"factored"`` or ``"continuous"``
    for a mechanism."""
    kind = canonical_encoding(kind)
    if kind == "menu":
        return MenuEncoding(mech_name, mech, spec, agents)
    if kind == "multidiscrete":
        return RawEncoding(mech_name, mech, spec, agents)
    if kind in FACTORED_ENCODINGS:
        return FactoredEncoding(mech_name, mech, spec, agents, kind, price_levels, price_grid)
    raise ParameterError(
        "encoding", f"unknown encoding {kind!r}; use one of {', '.join(ENCODINGS)}"
    )


class ObservationBuilder:
    """Builds the learner's observation vector (layout in the module docstring).

    Parameters
    ----------
    encoding : Encoding
    members : tuple of int
        The learner's players (one player, or a coalition).
    context_class : type
        The env's context class (its ``private_size(n, m)`` sizes the private part).
    normalize : {"symlog", "none"}
    features : bool
        Append the derived own-information features.
    """

    def __init__(
        self,
        encoding: Encoding,
        members: Sequence[int],
        context_class: Any,
        normalize: str = "symlog",
        features: bool = True,
    ) -> None:
        if normalize not in NORMALIZATIONS:
            raise ParameterError(
                "normalize", f"unknown {normalize!r}; use one of {', '.join(NORMALIZATIONS)}"
            )
        self.encoding = encoding
        self.context_class = context_class
        self.members = tuple(int(p) for p in members)
        self.normalize = normalize
        self.features = bool(features)
        mech, spec = encoding.mech, encoding.spec
        private = int(context_class.private_size(spec.n, spec.m))
        self.base_size = len(mech.phases) + 1 + spec.n + private + mech.public_size(spec)
        self.member_size = len(self.members) if len(self.members) > 1 else 0
        self.feature_size = (QUESTION_SIZE + encoding.summary_size) if self.features else 0
        # factored encodings: the learner's own move so far, last
        self.prefix_size = int(getattr(encoding, "prefix_size", 0))
        self.size = self.base_size + self.member_size + self.feature_size + self.prefix_size
        bound = float(symlog(np.array([OBS_BOUND]))[0]) if normalize == "symlog" else OBS_BOUND
        self.space = spaces.Box(-bound, bound, shape=(self.size,), dtype=np.float32)
        self.bound = bound
        self._cache: OrderedDict[tuple[int, Any, int], tuple[Any, np.ndarray]] = OrderedDict()
        self._batched: Any = None

    def build(
        self,
        ctx: Any,
        state: Any,
        player: int,
        base: np.ndarray | None = None,
        prefix: np.ndarray | None = None,
    ) -> np.ndarray:
        """Observation of ``player`` (a member) acting at ``state``; ``base`` is the AEC
        vector if the caller has it (else it is recomputed from the state); ``prefix`` the
        move so far of a factored encoding (appended, normalised as the rest).

        The part before ``prefix`` is memoised per (context identity, state, player) when the
        state is hashable: it is a pure function of them.
        """
        if self.prefix_size:
            if base is not None:
                base = base[: self.base_size]
            core = self._core(ctx, state, player, base)
            tail = np.zeros(self.prefix_size, dtype=np.float32) if prefix is None else prefix
            tail = symlog(tail) if self.normalize == "symlog" else np.asarray(tail, np.float32)
            return np.concatenate([core, np.clip(tail, -self.bound, self.bound)])
        return self._core(ctx, state, player, base)

    def _core(self, ctx: Any, state: Any, player: int, base: np.ndarray | None) -> np.ndarray:
        try:
            key = (id(ctx), state, player)
            hit = self._cache.get(key)
        except TypeError:
            return self._build(ctx, state, player, base)
        if hit is not None and hit[0] is ctx:
            self._cache.move_to_end(key)
            return hit[1]
        obs = self._build(ctx, state, player, base)
        obs.setflags(write=False)
        self._cache[key] = (ctx, obs)
        if len(self._cache) > 8192:
            self._cache.popitem(last=False)
        return obs

    def terminal(self, base: np.ndarray) -> np.ndarray:
        """Observation after the game ended: the (normalised) AEC vector, features zero."""
        out = np.zeros(self.size, dtype=np.float32)
        base = base[: self.base_size]
        scaled = symlog(base) if self.normalize == "symlog" else np.asarray(base, dtype=np.float32)
        out[: self.base_size] = np.clip(scaled, -self.bound, self.bound)
        return out

    def _build(self, ctx: Any, state: Any, player: int, base: np.ndarray | None) -> np.ndarray:
        # the batched builder on the state's batch of one (exact money), its move-so-far
        # part left to build()
        from mechgym.agents.batched import batched_agents

        from .batched_obs import BatchedObservationBuilder, padded_menu

        enc = self.encoding
        spec = enc.spec
        rules = enc.mech.rules(spec.n, spec.m, spec)
        if self._batched is None or self._batched.rules is not rules:
            self._batched = BatchedObservationBuilder(self, rules)
        menu = None
        if self.features and enc.summary_size:
            menu_fn = batched_agents(enc.mech_name).menu
            menu = padded_menu(menu_fn, rules, state.batch, state.state, player, enc.K)
        obs = self._batched.build(state.batch, state.state, player, menu)[0]
        return obs[: self.size - self.prefix_size]

    def describe(self) -> dict[str, Any]:
        return {
            "normalize": self.normalize,
            "features": self.features,
            "members": list(self.members),
            "size": self.size,
        }
