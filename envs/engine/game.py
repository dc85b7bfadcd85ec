"""The mechanism engine: extensive-form games with simultaneous, sequential and chance moves.

A :class:`Mechanism` is a pure state machine. Its states are immutable; :meth:`Mechanism.node`
says what happens next:

* :class:`Decision` — a set of players act simultaneously (one player: a sequential move);
  each player's action is validated by :meth:`Mechanism.validate` and the node is resolved
  by :meth:`Mechanism.resolve` once every acting player has chosen;
* :class:`Chance` — explicit outcomes with exact probabilities, resolved by
  :meth:`Mechanism.chance`;
* :class:`Terminal` — an :class:`~mechgym.envs.model.outcome.Outcome`.

Nothing here knows about PettingZoo; environments, evaluators, agents and trainers all drive
the same rules through this interface. Each mechanism also owns the array encoding of its
actions (:class:`~mechgym.envs.engine.spaces.ActionLayout`) and the public part of observations, so
that the rules for what a phase reads live next to the rules of the phase.
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np
from mechgym.envs.engine.errors import ContextError, ParameterError
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.model.limits import MAX_DENOMINATOR as MAX_CONSTANT
from mechgym.envs.model.limits import MAX_PLAYERS
from mechgym.envs.model.outcome import Outcome


@dataclass(frozen=True)
class Decision:
    """Players ``players`` act simultaneously at a node of phase ``phase``."""

    players: tuple[int, ...]
    phase: str


@dataclass(frozen=True)
class Chance:
    """A move of nature: outcome ``k`` has label ``labels[k]`` and probability ``probs[k]``."""

    name: str
    labels: tuple[str, ...]
    probs: tuple[Fraction, ...]


@dataclass(frozen=True)
class Terminal:
    """The game is over with ``outcome``."""

    outcome: Outcome


Node = Decision | Chance | Terminal


@dataclass(frozen=True)
class EnvSpec:
    """Sizes that fix the array encodings of an environment.

    Attributes
    ----------
    n, m : int
        Players and goods.
    value_cap : int
        Largest value a report may state.
    price_cap : int
        Largest price an announcement may state.
    """

    n: int
    m: int
    value_cap: int
    price_cap: int

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ParameterError("n", f"needs at least 2 players, got {self.n}")
        if self.m < 1:
            raise ParameterError("m", f"needs at least 1 good, got {self.m}")
        if self.n > MAX_PLAYERS:
            raise ParameterError("n", f"at most {MAX_PLAYERS} players are supported, got {self.n}")
        if self.value_cap < 1 or self.price_cap < 1:
            raise ParameterError("value_cap/price_cap", "must be positive integers")


def as_fraction(x: Any, name: str) -> Fraction:
    """Read a constant such as ε exactly: ``"1/100"``, ``0.01`` or ``Fraction(1, 100)``."""
    try:
        q = Fraction(x).limit_denominator(10**9) if isinstance(x, float) else Fraction(x)
    except (ValueError, TypeError, ZeroDivisionError, OverflowError):
        raise ParameterError(name, f"cannot read {x!r} as a number") from None
    if abs(q.numerator) > MAX_CONSTANT or q.denominator > MAX_CONSTANT:
        # exact expectations multiply such constants along a game tree; keep them short
        raise ParameterError(
            name, f"{x!r} needs numerator and denominator of at most 10**30 (e.g. eps >= 1e-30)"
        )
    return q


Examples = Mapping[str, tuple[Any, ...]]
"""A mechanism's declaration of example values per constructor parameter."""

REQUIRED = inspect.Parameter.empty
"""The default of a constructor parameter that has none."""


@dataclass(frozen=True)
class Parameter:
    """One constructor parameter of a mechanism, as it declares it.

    Attributes
    ----------
    name : str
        The keyword of ``__init__``.
    default : Any
        ``__init__``'s default (:data:`REQUIRED` when there is none).
    examples : tuple
        Values other than the default that the differential tests play; an entry may be a
        callable ``(n, m) -> value`` for values that depend on the sizes (a reserve offer),
        or a mechanism class (an instance with its own declared parameters, e.g. the
        mixture's revenue mechanism).
    splat : bool
        ``**kwargs``: a value is a dict of keywords.
    """

    name: str
    default: Any
    examples: tuple[Any, ...]
    splat: bool = False

    def example_values(self, n: int, m: int) -> list[Any]:
        """The examples for ``n`` players and ``m`` goods (or states); a class stays a class
        (a mechanism class stands for an instance with its own parameters)."""
        return [x(n, m) if callable(x) and not isinstance(x, type) else x for x in self.examples]


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or a == b)
    except (TypeError, ValueError):  # e.g. arrays
        return False


def _recording(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``__init__`` so that the outermost call records its arguments in ``_arguments``
    (see :meth:`Mechanism.given_arguments`)."""
    sig = inspect.signature(init)

    @functools.wraps(init)
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> None:
        if "_arguments" not in self.__dict__:
            try:
                bound = sig.bind(self, *args, **kwargs).arguments
            except TypeError:  # init raises its own error below
                bound = {}
            self.__dict__["_arguments"] = {k: v for k, v in bound.items() if k != "self"}
        init(self, *args, **kwargs)

    wrapped.__dict__["_records_arguments"] = True
    return wrapped


class PendingOffer(NamedTuple):
    """A take-it-or-leave-it question: ``item`` at ``price`` (YES buys it, NO refuses).

    ``item`` is a bundle bitmask (auctions; in markets the bundle that replaces the player's
    endowed one) or an abstract state (``states`` contexts); ``price`` an integer.
    """

    item: int
    price: int


class Mechanism(ABC):
    """Base class of every mechanism: rules, action encoding and public observations."""

    #: registry key, e.g. ``"best_belief"``
    name: ClassVar[str]
    #: human title
    title: ClassVar[str]
    #: the phases of decision nodes, in order of play
    phases: ClassVar[tuple[str, ...]]
    #: whether every decision node is simultaneous (a parallel env is then offered)
    simultaneous_only: ClassVar[bool] = True
    #: whether every player acts at every decision node (PettingZoo's aec_to_parallel needs it)
    every_player_acts: ClassVar[bool] = True
    #: the context class the mechanism runs on
    context_kind: ClassVar[str] = "auction"
    #: whether action masks depend on more than (phase, player); if not, envs cache them
    mask_depends_on_state: ClassVar[bool] = True
    #: per ``__init__`` parameter, the values other than the default that the differential
    #: tests play (see :class:`Parameter`); every parameter must be declared
    parameter_examples: ClassVar[Examples] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_records_arguments", False):
            cls.__init__ = _recording(init)  # type: ignore[method-assign]

    # -- parameters --------------------------------------------------------------------------
    @classmethod
    def parameters(cls) -> tuple[Parameter, ...]:
        """The constructor's parameters (from ``__init__``'s signature) with their declared
        examples; a parameter without a declaration has none (a test requires one)."""
        if cls.__init__ is object.__init__:
            return ()
        out = []
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                continue
            splat = p.kind is inspect.Parameter.VAR_KEYWORD
            default = {} if splat else p.default
            examples = tuple(cls.parameter_examples.get(p.name, ()))
            out.append(Parameter(p.name, default, examples, splat))
        return tuple(out)

    def given_arguments(self) -> dict[str, Any]:
        """The constructor arguments this instance was built with that differ from their
        defaults (``**kwargs`` entries by their own keywords)."""
        declared = {p.name: p for p in self.parameters()}
        out: dict[str, Any] = {}
        for k, v in self.__dict__.get("_arguments", {}).items():
            p = declared.get(k)
            if p is not None and p.splat:
                out.update(v)
            elif p is None or not _same(v, p.default):
                out[k] = v
        return out

    # -- rules -----------------------------------------------------------------------------
    @abstractmethod
    def start(self, ctx: Any) -> Any:
        """Initial state for a context (only the public part of the context is used)."""

    @abstractmethod
    def node(self, state: Any) -> Node:
        """What happens at ``state``."""

    @abstractmethod
    def validate(self, state: Any, player: int, action: Any) -> Any:
        """Return ``action`` if legal for ``player`` at ``state``, else raise ActionError."""

    @abstractmethod
    def resolve(self, state: Any, actions: Mapping[int, Any]) -> Any:
        """Resolve a decision node given every acting player's validated action."""

    def chance(self, state: Any, index: int) -> Any:
        """Resolve a chance node with its outcome ``index``."""
        raise NotImplementedError(f"{type(self).__name__} has no chance nodes")

    # -- encodings -------------------------------------------------------------------------
    @abstractmethod
    def layout(self, spec: EnvSpec) -> ActionLayout:
        """The MultiDiscrete layout of actions (union over phases)."""

    @abstractmethod
    def action_mask(
        self, state: Any, player: int, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        """Flat mask over the layout's values for ``player`` at ``state``'s decision node."""

    @abstractmethod
    def decode(
        self, state: Any, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        """Turn a (mask-checked) array action into the phase's structured action."""

    @abstractmethod
    def encode(
        self, state: Any, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        """Turn a structured action into its array form (inverse of :meth:`decode`)."""

    @abstractmethod
    def public_size(self, spec: EnvSpec) -> int:
        """Length of :meth:`public_features`."""

    @abstractmethod
    def public_features(self, state: Any, player: int, spec: EnvSpec) -> np.ndarray:
        """What ``player`` has seen of the play so far, plus its pending question."""

    def default_price_cap(self, n: int, value_cap: int) -> int:
        """The price grid an env uses when none is given (prices up to the largest value)."""
        return value_cap

    # -- questions -------------------------------------------------------------------------
    def pending_offer(self, state: Any, player: int) -> PendingOffer | None:
        """The offer ``player`` answers YES/NO at ``state``'s decision node, or ``None`` when
        the node asks it no such question. The one place that says who is asked what: agents,
        menus and learner features read it here (the batched counterpart is
        :meth:`~mechgym.envs.engine.batched.BatchedRules.pending_offers`)."""
        return None

    # -- theory ------------------------------------------------------------------------------
    def benchmarks(self, ctx: Any) -> dict[str, Any]:
        """The context's benchmarks that this mechanism's guarantee refers to (JSON-friendly)."""
        return {}

    def guarantee(self, ctx: Any, ev: Evaluation) -> Guarantee | None:
        """The theorem's guarantee checked exactly against an evaluation, or ``None``."""
        return None

    def sample_chances(
        self, state: Any, rng: np.random.Generator
    ) -> tuple[Any, list[tuple[Chance, int]]]:
        """Resolve the chance nodes from ``state`` on, each drawn by :func:`sample_chance`
        from ``rng`` in the order met, up to the next decision or terminal node; return the
        state there and the ``(node, outcome)`` drawn. A mechanism may answer it faster (the
        same draws from the same stream)."""
        draws: list[tuple[Chance, int]] = []
        while isinstance(node := self.node(state), Chance):
            k = sample_chance(node, rng)
            draws.append((node, k))
            state = self.chance(state, k)
        return state, draws

    # -- reporting -------------------------------------------------------------------------
    def describe_action(self, state: Any, player: int, action: Any) -> str:
        """A one-line human description of an action (for transcripts)."""
        return repr(action)

    def params(self) -> dict[str, Any]:
        """The mechanism's constants, JSON-friendly."""
        return {}


@dataclass(frozen=True)
class Guarantee:
    """A theorem's guarantee: ``value >= bound`` (or ``==`` when ``exact``), checked exactly.

    A theorem with several conclusions lists the others in ``parts`` (e.g. M5's SW = MSW and
    utilities ≥ 0 beside its revenue bound); it holds when every part holds. ``kind`` says
    what the statement is: ``"theorem"`` (a paper's theorem, under its solution concept) or
    ``"property of predicted play"`` (true of the scripted prediction, not a theorem).
    """

    statement: str
    bound: Fraction
    value: Fraction
    exact: bool = False
    parts: tuple[Guarantee, ...] = ()
    kind: str = "theorem"

    @property
    def holds(self) -> bool:
        own = self.value == self.bound if self.exact else self.value >= self.bound
        return own and all(p.holds for p in self.parts)

    def _line(self) -> str:
        own = self.value == self.bound if self.exact else self.value >= self.bound
        rel = "=" if self.exact else "≥"
        verdict = "holds" if own else "violated"
        return (
            f"{self.statement}: {_short_num(self.value)} {rel} {_short_num(self.bound)}, {verdict}"
        )

    def __str__(self) -> str:
        text = self._line()
        if self.parts:
            text += "; " + "; ".join(p._line() for p in self.parts)
        if self.kind != "theorem":
            text += f" ({self.kind})"
        return text

    def to_json(self) -> dict[str, Any]:
        """JSON fields: ``statement``, ``bound``/``value`` (floats, and exact rationals as
        strings), ``holds`` (bool), ``kind`` (``"inequality"`` or ``"equality"``), ``source``
        (``"theorem"`` or a property of predicted play) and the other ``parts``."""
        out = {
            "statement": self.statement,
            "bound": float(self.bound),
            "bound_exact": str(self.bound),
            "value": float(self.value),
            "value_exact": str(self.value),
            "holds": self.holds,
            # what the statement is (``value = bound`` or ``value >= bound``) and where it
            # comes from; not the same thing as a report's "exact" (chance enumerated)
            "kind": "equality" if self.exact else "inequality",
            "source": self.kind,
        }
        if self.parts:
            out["parts"] = [p.to_json() for p in self.parts]
        return out


def _short_num(x: Fraction) -> str:
    """A readable number: integers as they are, other rationals to 6 significant digits."""
    x = Fraction(x)
    return str(x.numerator) if x.denominator == 1 else f"{float(x):.6g}"


class Policy(Protocol):
    """Anything that chooses an action for a player at a decision node."""

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        """The (structured) action of ``player`` at ``state``."""
        ...


def asked_at(mech: Mechanism, state: Any, player: int, *phases: str) -> bool:
    """Whether ``state``'s node is a decision of one of ``phases`` at which ``player`` acts
    (a helper of :meth:`Mechanism.pending_offer`)."""
    node = mech.node(state)
    return isinstance(node, Decision) and node.phase in phases and player in node.players


def require_kind(mech: Mechanism, source: Any) -> None:
    """Raise a :class:`ContextError` unless ``source`` (a context or a generator) is of the
    kind of context the mechanism runs on."""
    kind = getattr(source, "kind", None) or getattr(
        getattr(source, "context_class", None), "kind", None
    )
    if kind != mech.context_kind:
        from mechgym.envs.model.examples import DEFAULT_EXAMPLE

        raise ContextError(
            "context",
            f"{mech.title} needs a '{mech.context_kind}' context, got '{kind}' "
            f"(e.g. the example '{DEFAULT_EXAMPLE.get(mech.context_kind, '?')}')",
        )


def step_decision(mech: Mechanism, state: Any, node: Decision, actions: Mapping[int, Any]) -> Any:
    """Validate every acting player's action and resolve the node."""
    checked = {p: mech.validate(state, p, actions[p]) for p in node.players}
    return mech.resolve(state, checked)


def play(
    mech: Mechanism,
    ctx: Any,
    policies: Mapping[int, Policy],
    rng: np.random.Generator,
) -> tuple[Outcome, list[tuple[Any, Node, dict[int, Any] | int]]]:
    """Play one episode, sampling chance from ``rng``; return the outcome and the transcript.

    The transcript lists ``(state, node, actions-or-chance-index)`` for every non-terminal node.
    """
    require_kind(mech, ctx)
    state = mech.start(ctx)
    transcript: list[tuple[Any, Node, dict[int, Any] | int]] = []
    while True:
        node = mech.node(state)
        if isinstance(node, Terminal):
            return node.outcome, transcript
        if isinstance(node, Chance):
            k = sample_chance(node, rng)
            transcript.append((state, node, k))
            state = mech.chance(state, k)
        else:
            acts = {p: policies[p].act(mech, ctx, state, p) for p in node.players}
            transcript.append((state, node, acts))
            state = step_decision(mech, state, node, acts)


def sample_chance(node: Chance, rng: np.random.Generator) -> int:
    """Draw a chance outcome exactly: a uniform integer against the common denominator.

    Exact for every rational probability, however small: denominators beyond int64 are
    sampled from 32-bit chunks (see :func:`uniform_below`).
    """
    denom = 1
    for p in node.probs:
        denom = denom * p.denominator // _gcd(denom, p.denominator)
    r = uniform_below(denom, rng)
    acc = 0
    for k, p in enumerate(node.probs):
        acc += p.numerator * (denom // p.denominator)
        if r < acc:
            return k
    return len(node.probs) - 1


_INT64_HIGH = (1 << 63) - 1


def uniform_below(bound: int, rng: np.random.Generator) -> int:
    """A uniform integer in ``0..bound-1`` for any positive Python int ``bound``.

    Below 2**63 - 1 this is ``rng.integers(bound)`` (the same stream as before); above it,
    rejection sampling on ``bound.bit_length()`` random bits drawn as 32-bit chunks, which
    accepts with probability above 1/2 per round.
    """
    if bound < 1:
        raise ValueError(f"bound must be positive, got {bound}")
    if bound <= _INT64_HIGH:
        return int(rng.integers(bound))
    bits = bound.bit_length()
    chunks = -(-bits // 32)
    while True:
        words = rng.integers(0, 1 << 32, size=chunks, dtype=np.uint64)
        x = 0
        for w in words:
            x = (x << 32) | int(w)
        x >>= chunks * 32 - bits
        if x < bound:
            return x


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


@dataclass(frozen=True)
class Visit:
    """A decision node reached with positive probability under a profile."""

    prob: Fraction
    state: Any
    node: Decision
    actions: dict[int, Any]


@dataclass
class Evaluation:
    """Exact expectations of a deterministic profile (chance enumerated).

    Attributes
    ----------
    expected_revenue, expected_welfare : Fraction
    expected_utilities : tuple[Fraction, ...]
    outcomes : list[tuple[Fraction, Outcome]]
        Terminal outcomes with their probabilities.
    visits : list[Visit]
        Decision nodes reached with positive probability, with the profile's actions.
    """

    expected_revenue: Fraction
    expected_welfare: Fraction
    expected_utilities: tuple[Fraction, ...]
    outcomes: list[tuple[Fraction, Outcome]]
    visits: list[Visit]

    def coalition_utility(self, members: tuple[int, ...]) -> Fraction:
        """Expected total utility of a set of players."""
        return sum((self.expected_utilities[i] for i in members), Fraction(0))

    def probability(self, predicate: Any) -> Fraction:
        """Probability that the terminal outcome satisfies ``predicate(outcome)``."""
        return sum((p for p, o in self.outcomes if predicate(o)), Fraction(0))


def evaluate_exact(
    mech: Mechanism,
    ctx: Any,
    policies: Mapping[int, Policy],
    state: Any = None,
) -> Evaluation:
    """Enumerate every chance outcome under a deterministic profile and return exact expectations.

    Parameters
    ----------
    mech : Mechanism
    ctx : context
        Supplies utilities and welfare (``ctx.utilities``, ``ctx.welfare``).
    policies : mapping player -> Policy
        Deterministic policies (the same call must return the same action).
    state : optional
        Start from this state instead of ``mech.start(ctx)`` (subgame evaluation).
    """
    require_kind(mech, ctx)
    n = ctx.n
    outcomes: list[tuple[Fraction, Outcome]] = []
    visits: list[Visit] = []
    stack: list[tuple[Fraction, Any]] = [(Fraction(1), mech.start(ctx) if state is None else state)]
    while stack:
        prob, st = stack.pop()
        node = mech.node(st)
        if isinstance(node, Terminal):
            outcomes.append((prob, node.outcome))
        elif isinstance(node, Chance):
            for k in range(len(node.probs) - 1, -1, -1):
                if node.probs[k] > 0:
                    stack.append((prob * node.probs[k], mech.chance(st, k)))
        else:
            acts = {p: policies[p].act(mech, ctx, st, p) for p in node.players}
            visits.append(Visit(prob, st, node, acts))
            stack.append((prob, step_decision(mech, st, node, acts)))
    rev = sum((p * o.revenue for p, o in outcomes), Fraction(0))
    sw = sum((p * ctx.welfare(o) for p, o in outcomes), Fraction(0))
    utils = [Fraction(0)] * n
    for p, o in outcomes:
        for i, u in enumerate(ctx.utilities(o)):
            utils[i] += p * u
    return Evaluation(rev, sw, tuple(utils), outcomes, visits)


class Fixed:
    """A policy that plays fixed actions at given phases and defers to ``base`` elsewhere.

    Used for exact deviation checks: ``Fixed(base, {"respond": False})`` answers NO wherever
    the player responds and otherwise plays ``base``.
    """

    def __init__(self, base: Policy, by_phase: Mapping[str, Any], only_state: Any = None) -> None:
        self.base = base
        self.by_phase = dict(by_phase)
        self.only_state = only_state

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        node = mech.node(state)
        if (
            isinstance(node, Decision)
            and node.phase in self.by_phase
            and (self.only_state is None or state == self.only_state)
        ):
            return self.by_phase[node.phase]
        return self.base.act(mech, ctx, state, player)
