"""The learner's observation features and policies over a batch: the one definition.

:class:`BatchedObservationBuilder` builds, for every episode of a batch, the learner's
float32 vector (AEC vector, member position, pending question, menu summaries, a factored
move so far) in the layout :class:`~mechgym.training.encodings.ObservationBuilder` states;
the exact builder is this one on the state's batch of one with exact money. So a model
trained on the learner env with either money plays the exact envs and is evaluated exactly.
``tests/test_vec_env.py`` checks the float backend against the exact one state by state, and
the summaries against an oracle that reads the structured menu actions.

The pending question is the rules' own
:meth:`~mechgym.envs.engine.batched.BatchedRules.pending_offers`; what the summaries read of
an entry (its bundle, its offer's revenue, a reported valuation, a YES to the pending
question) is read from the array layout, per mechanism, in :data:`BATCHED_SUMMARIES`. Menu
entries that the batched menu marks invalid (an entry whose prices leave the layout's grid)
get zero summaries, as masked entries do.

Batched policies (:func:`resolve_batched`) are the batched agents of
:mod:`mechgym.agents.batched` (predicted, named deviations, random), trained models
(:class:`BatchedLearned`: argmax of the model's scores under the mask, as
:class:`~mechgym.training.policies.LearnedPolicy`) and, with exact money, exact policies
(:class:`ExactOnBatch`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from mechgym.agents.batched import BatchedPolicy, RandomBatched, batched_agents
from mechgym.envs.batched_api import observation_vectors
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.mechanisms.offer_rules import decode_offers

from .encodings import QUESTION_SIZE, SUMMARY_SIZE, ObservationBuilder, symlog
from .policies import LearnedPolicy, SharedPolicy

#: ``(asked (B,) bool, item (B,) int, price (B,) int)`` of the offer ``player`` answers
Question = tuple[np.ndarray, np.ndarray, np.ndarray]
#: ``fn(rules, ctx, state, player, actions (B, K, L), question) -> (B, K, 4)`` float64
SummaryFn = Callable[
    [BatchedRules, ContextBatch, BatchState, int, np.ndarray, Question | None], np.ndarray
]

BATCHED_SUMMARIES: dict[str, SummaryFn] = {}


# -- per-mechanism features -------------------------------------------------------------------
def pending_question(rules: BatchedRules, state: BatchState, player: int) -> Question:
    """``player``'s column of :meth:`BatchedRules.pending_offers` (batched
    :func:`~mechgym.training.encodings.pending_question`)."""
    asked, item, price = rules.pending_offers(state)
    return asked[:, player], item[:, player], price[:, player]


def offer_values(ctx: ContextBatch, player: int, item: np.ndarray) -> np.ndarray:
    """``(B,)`` what YES to an offer of ``item`` ``(B,)`` is worth to ``player`` before the
    price: θ_i(item) for a bundle, θ_i(item) − θ_i(E_i) in markets, θ_i(ω) for a state."""
    rows = np.arange(ctx.B)
    vals = ctx.values[:, player]
    value = vals[rows, np.clip(item, 0, vals.shape[1] - 1)]
    if ctx.kind == "market":
        assert ctx.endowment is not None
        value = value - vals[rows, ctx.endowment[:, player]]
    return value


def question_vector(ctx: ContextBatch, player: int, q: Question) -> np.ndarray:
    """``(B, 4)`` float32 raw pending-question features (batched
    :func:`~mechgym.training.encodings.question_vector`): asked (0/1), the player's own value
    of the offered item, its price, their difference; zeros where nothing is asked."""
    asked, item, price = q
    qv = np.zeros((ctx.B, QUESTION_SIZE), dtype=np.float32)
    if asked.any():
        v = offer_values(ctx, player, item)
        qv[:, 0] = 1.0
        qv[:, 1:] = np.stack([v, price, v - price], axis=1)
        qv[~asked] = 0.0
    return qv


def learner_observations(
    rules: BatchedRules,
    ctx: ContextBatch,
    state: BatchState,
    player: int,
    features: bool,
    acting: np.ndarray | None = None,
) -> np.ndarray:
    """``(B, ·)`` float32 observations of the batched learners
    (:class:`~mechgym.integrations.torchrl_batched.BatchedMechanismEnv`, batched policies):
    the AEC vector (``acting`` overrides its acting flag), then with ``features`` the raw
    pending-question features; a factored move so far goes after them."""
    obs = observation_vectors(rules, ctx, state, player, acting)
    if not features:
        return obs
    q = question_vector(ctx, player, pending_question(rules, state, player))
    return np.concatenate([obs, q], axis=1)


def _phase_is(rules: BatchedRules, state: BatchState, name: str) -> np.ndarray:
    return state.phase == rules.phases.index(name) if name in rules.phases else state.phase < -1


def _own_values(ctx: ContextBatch, player: int, bundles: np.ndarray) -> np.ndarray:
    """``θ_player(bundle)`` for ``bundles`` ``(B, K)``."""
    vals = ctx.values[:, player]  # (B, 2^m)
    return np.take_along_axis(vals, np.clip(bundles, 0, vals.shape[1] - 1), axis=1)


def _revenue(rules: BatchedRules, acts: np.ndarray, min_price: int) -> np.ndarray:
    _, prices = decode_offers(acts, rules.spec, rules.layout, min_price=min_price)
    return prices.sum(axis=-1).astype(np.float64)


def _yes_summary(
    out: np.ndarray,
    rules: BatchedRules,
    ctx: ContextBatch,
    state: BatchState,
    player: int,
    acts: np.ndarray,
    question: Question | None,
) -> None:
    if question is None or "answer" not in rules.layout.index:
        return
    asked, item, price = question
    yes = acts[:, :, rules.layout.index["answer"]] == 1
    v = offer_values(ctx, player, item)
    gain = np.where(asked, v - price, 0).astype(np.float64)
    out[:, :, 3] = np.where(yes & asked[:, None], gain[:, None], 0.0)


def _bundle_offer_summary(min_price: Callable[[BatchedRules], int]) -> SummaryFn:
    """M1 and M3: an announcement (favourite bundle, offer); YES/NO elsewhere."""

    def fn(
        rules: BatchedRules,
        ctx: ContextBatch,
        state: BatchState,
        player: int,
        acts: np.ndarray,
        question: Question | None,
    ) -> np.ndarray:
        B, K = acts.shape[:2]
        out = np.zeros((B, K, SUMMARY_SIZE), dtype=np.float64)
        ann = _phase_is(rules, state, "announce")[:, None]
        bundle = acts[:, :, rules.layout.index["bundle"]]
        out[:, :, 0] = np.where(ann, _own_values(ctx, player, bundle), 0)
        out[:, :, 1] = np.where(ann, _revenue(rules, acts, min_price(rules)), 0)
        _yes_summary(out, rules, ctx, state, player, acts, question)
        return out

    return fn


def _report_total(
    rules: BatchedRules, ctx: ContextBatch, player: int, acts: np.ndarray
) -> np.ndarray:
    first = rules.layout.index["value_1"]
    size = ctx.values.shape[2]
    report = acts[:, :, first : first + size - 1].sum(axis=-1)
    return (report - ctx.values[:, player].sum(axis=1)[:, None]).astype(np.float64)


def _normal_form_summary(
    rules: BatchedRules,
    ctx: ContextBatch,
    state: BatchState,
    player: int,
    acts: np.ndarray,
    question: Question | None,
) -> np.ndarray:
    B, K = acts.shape[:2]
    out = np.zeros((B, K, SUMMARY_SIZE), dtype=np.float64)
    out[:, :, 1] = _revenue(rules, acts, 1)
    out[:, :, 2] = _report_total(rules, ctx, player, acts)
    return out


def _vcg_summary(
    rules: BatchedRules,
    ctx: ContextBatch,
    state: BatchState,
    player: int,
    acts: np.ndarray,
    question: Question | None,
) -> np.ndarray:
    B, K = acts.shape[:2]
    out = np.zeros((B, K, SUMMARY_SIZE), dtype=np.float64)
    out[:, :, 2] = _report_total(rules, ctx, player, acts)
    return out


def _collusion_summary(
    rules: BatchedRules,
    ctx: ContextBatch,
    state: BatchState,
    player: int,
    acts: np.ndarray,
    question: Question | None,
) -> np.ndarray:
    # CLAnnouncement's offer: its prices are the raw price fields
    B, K = acts.shape[:2]
    out = np.zeros((B, K, SUMMARY_SIZE), dtype=np.float64)
    first = rules.layout.index["price_0"]
    rev = acts[:, :, first : first + rules.spec.n].sum(axis=-1)
    out[:, :, 1] = np.where(_phase_is(rules, state, "announce")[:, None], rev, 0)
    _yes_summary(out, rules, ctx, state, player, acts, question)
    return out


def zero_summary(
    rules: BatchedRules,
    ctx: ContextBatch,
    state: BatchState,
    player: int,
    acts: np.ndarray,
    question: Question | None,
) -> np.ndarray:
    """Mechanisms whose structured actions carry none of the summarised attributes."""
    return np.zeros((*acts.shape[:2], SUMMARY_SIZE), dtype=np.float64)


def answer_summary(
    rules: BatchedRules,
    ctx: ContextBatch,
    state: BatchState,
    player: int,
    acts: np.ndarray,
    question: Question | None,
) -> np.ndarray:
    """Mechanisms whose menus summarise only a YES to the pending question."""
    out = zero_summary(rules, ctx, state, player, acts, question)
    _yes_summary(out, rules, ctx, state, player, acts, question)
    return out


def _bundle_bid_summary(
    rules: BatchedRules,
    ctx: ContextBatch,
    state: BatchState,
    player: int,
    acts: np.ndarray,
    question: Question | None,
) -> np.ndarray:
    # A' bids (BundleBid): the exact summary reads only the own value of the bid's bundle
    B, K = acts.shape[:2]
    out = np.zeros((B, K, SUMMARY_SIZE), dtype=np.float64)
    bundle = acts[:, :, rules.layout.index["bid_bundle"]]
    out[:, :, 0] = ctx.values[np.arange(B)[:, None], player, bundle]
    _yes_summary(out, rules, ctx, state, player, acts, question)
    return out


BATCHED_SUMMARIES["best_belief"] = _bundle_offer_summary(lambda r: 1)
BATCHED_SUMMARIES["knowledge_benchmark"] = _bundle_offer_summary(
    lambda r: int(getattr(r.mech, "min_price", 1))
)
BATCHED_SUMMARIES["normal_form"] = _normal_form_summary
BATCHED_SUMMARIES["vcg"] = _vcg_summary
BATCHED_SUMMARIES["collusion_leveraging"] = _collusion_summary
BATCHED_SUMMARIES["second_price_bundle"] = _bundle_bid_summary
for _name in ("perfect_revenue", "budget_balanced_market", "hope_for_the_best"):
    BATCHED_SUMMARIES[_name] = answer_summary
for _k in range(1, 5):
    BATCHED_SUMMARIES[f"naive_market_{_k}"] = answer_summary


# -- observations ---------------------------------------------------------------------------------
class BatchedObservationBuilder:
    """The exact :class:`ObservationBuilder`'s vector for every episode of a batch.

    Parameters
    ----------
    exact : ObservationBuilder
        The exact builder (encoding, members, normalisation, features) to reproduce.
    rules : BatchedRules
    """

    def __init__(self, exact: ObservationBuilder, rules: BatchedRules) -> None:
        self.exact = exact
        self.rules = rules
        self.members = exact.members
        self.size = exact.size
        self.base_size = exact.base_size
        self.bound = exact.bound
        self.encoding = exact.encoding
        name = exact.encoding.mech_name
        self.summary_fn = BATCHED_SUMMARIES.get(name)
        if exact.features and exact.encoding.summary_size and self.summary_fn is None:
            raise ParameterError(
                "features",
                f"'{name}' has no batched menu summaries; use features=False or register them"
                " in mechgym.training.batched_obs.BATCHED_SUMMARIES",
            )

    def _scale(self, base: np.ndarray) -> np.ndarray:
        return symlog(base) if self.exact.normalize == "symlog" else base.astype(np.float32)

    def build(
        self,
        ctx: ContextBatch,
        state: BatchState,
        player: int,
        menu: tuple[np.ndarray, np.ndarray] | None = None,
        prefix: np.ndarray | None = None,
    ) -> np.ndarray:
        """``(B, size)`` observations of ``player`` (a member) acting in every episode;
        ``menu`` is the batched menu ``(actions (B, K, L), valid (B, K))`` of the menu
        encoding, ``prefix`` ``(B, prefix_size)`` the moves so far of a factored encoding.
        Rows of episodes where the player does not act are meaningless."""
        B = ctx.B
        ones = np.ones(B, dtype=bool)
        base = observation_vectors(self.rules, ctx, state, player, acting=ones)
        parts = [self._scale(base)]
        if self.exact.member_size:
            pos = np.zeros((B, self.exact.member_size), dtype=np.float32)
            pos[:, self.members.index(player)] = 1.0
            parts.append(pos)
        if self.exact.features:
            q = pending_question(self.rules, state, player)
            qv = question_vector(ctx, player, q)
            qv[:, 1:] = symlog(qv[:, 1:])
            parts.append(qv)
            if self.encoding.summary_size:
                assert menu is not None and self.summary_fn is not None
                acts, valid = menu
                raw = self.summary_fn(self.rules, ctx, state, player, acts, q)
                raw = np.where(valid[:, :, None], raw, 0.0).astype(np.float32)
                parts.append(symlog(raw.reshape(B, -1)))
        if self.exact.prefix_size:
            tail = np.zeros((B, self.exact.prefix_size), np.float32) if prefix is None else prefix
            parts.append(self._scale(tail))
        obs = np.concatenate(parts, axis=1).astype(np.float32, copy=False)
        np.clip(obs, -self.bound, self.bound, out=obs)
        return obs

    def terminal(self, ctx: ContextBatch, state: BatchState, player: int) -> np.ndarray:
        """``(B, size)``: the exact builder's ``terminal`` of the AEC vector at the end."""
        out = np.zeros((ctx.B, self.size), dtype=np.float32)
        base = observation_vectors(self.rules, ctx, state, player)
        out[:, : self.base_size] = np.clip(self._scale(base), -self.bound, self.bound)
        return out


# -- menus ----------------------------------------------------------------------------------------
def padded_menu(
    menu_fn: Any, rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int, K: int
) -> tuple[np.ndarray, np.ndarray]:
    """The batched menu padded (invalid) to ``K`` entries."""
    acts, valid = menu_fn(rules, ctx, state, player)
    k = acts.shape[1]
    if k > K:
        raise ParameterError("menu", f"batched menu has {k} entries, above menu_size {K}")
    if k < K:
        B, L = acts.shape[0], acts.shape[2]
        acts = np.concatenate([acts, np.zeros((B, K - k, L), dtype=acts.dtype)], axis=1)
        valid = np.concatenate([valid, np.zeros((B, K - k), dtype=bool)], axis=1)
    return acts, valid.astype(bool)


# -- policies -------------------------------------------------------------------------------------
def batched_scores(model: Any, obs: np.ndarray) -> np.ndarray:
    """``(B, size)`` per-value action scores of a model: logits, or Q-values for DQN."""
    import torch as th

    policy = model.policy
    with th.no_grad():
        obs_t, _ = policy.obs_to_tensor(obs)
        if hasattr(policy, "q_net"):
            return policy.q_net(obs_t).cpu().numpy()
        dist = policy.get_distribution(obs_t)
        inner = getattr(dist, "distributions", None) or dist.distribution
        if isinstance(inner, list):
            return th.cat([d.logits for d in inner], dim=1).cpu().numpy()
        return inner.logits.cpu().numpy()


def masked_argmax_batch(
    scores: np.ndarray, mask: np.ndarray, nvec: np.ndarray | None
) -> np.ndarray:
    """Row-wise :func:`~mechgym.training.policies.masked_argmax`: ``(B,)`` or ``(B, fields)``."""
    masked = np.where(mask.astype(bool), scores, -np.inf)
    if nvec is None:
        return np.argmax(masked, axis=1)
    out = np.zeros((scores.shape[0], len(nvec)), dtype=np.int64)
    lo = 0
    for k, size in enumerate(nvec):
        out[:, k] = np.argmax(masked[:, lo : lo + int(size)], axis=1)
        lo += int(size)
    return out


def compose_moves(
    model: Any,
    plan: Any,
    masks: np.ndarray,
    lower: np.ndarray | None,
    observe: Any,
) -> np.ndarray:
    """``(R, L)`` layout actions a trained model composes sub-decision by sub-decision.

    ``masks`` ``(R, mask_size)`` are the rows' node masks, ``lower`` their players' own lower
    bounds (or ``None``), ``observe(prefix, rows)`` the observations ``(r, size)`` of rows
    ``rows`` with their moves so far ``prefix``. Each sub-decision is the masked argmax of the
    model's scores (``factored``) or its deterministic ``Box`` action (``continuous``: the
    legal entry by :func:`~mechgym.envs.engine.factored.entry_of`, and the amount).
    """
    from mechgym.envs.engine.factored import Composer, entry_of

    R = masks.shape[0]
    comp = Composer(plan, R)
    comp.begin(np.arange(R), masks, lower)
    while comp.composing.any():
        rows = np.flatnonzero(comp.composing)
        obs = observe(comp.features(rows), rows)
        valid = comp.action_masks()[rows].astype(bool)
        x = None
        if plan.continuous:
            a, _ = model.predict(obs, deterministic=True)
            a = np.asarray(a, dtype=np.float64).reshape(len(rows), 2)
            entry = entry_of(a[:, 0], valid)
            x = np.clip(np.nan_to_num(a[:, 1]), 0.0, 1.0)
        else:
            entry = masked_argmax_batch(batched_scores(model, obs), valid, None)
        comp.choose(rows, np.asarray(entry, dtype=np.int64), x)
    return comp.act


def _with_prefix(builder: BatchedObservationBuilder, obs: np.ndarray) -> Any:
    """``observe(prefix, rows)`` for :func:`compose_moves`: ``obs`` rows with their moves so
    far in the last ``prefix_size`` entries."""
    P = builder.exact.prefix_size

    def observe(prefix: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = obs[rows].copy()
        out[:, -P:] = np.clip(builder._scale(prefix), -builder.bound, builder.bound)
        return out

    return observe


class BatchedLearned:
    """A trained model (a :class:`LearnedPolicy` or :class:`SharedPolicy`) playing a batch:
    the argmax of its scores under the mask, per episode, as the exact policy plays."""

    def __init__(self, policy: LearnedPolicy, agents: Any = None) -> None:
        self.policy = policy
        self.encoding = policy.encoding
        self.menu_fn = None if agents is None else agents.menu
        self._builders: dict[tuple[int, int], BatchedObservationBuilder] = {}

    def _builder(self, rules: BatchedRules, player: int) -> BatchedObservationBuilder:
        key = (id(rules), player)
        hit = self._builders.get(key)
        if hit is None:
            pol = self.policy
            if isinstance(pol, SharedPolicy):
                exact = pol.by_player.get(player)
                if exact is None:
                    raise ParameterError(
                        "policy",
                        f"this shared model plays for players {sorted(pol.by_player)},"
                        f" not {player}",
                    )
            elif player in pol.builder.members:
                exact = pol.builder
            elif len(pol.builder.members) == 1:
                exact = pol._seat(player)
            else:
                raise ParameterError(
                    "policy",
                    f"this coalition model plays for players {list(pol.builder.members)},"
                    f" not {player}",
                )
            hit = BatchedObservationBuilder(exact, rules)
            self._builders[key] = hit
        return hit

    def act(
        self,
        rules: BatchedRules,
        ctx: ContextBatch,
        state: BatchState,
        players: list[int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        B, n, L = ctx.B, rules.spec.n, len(rules.layout)
        acts = np.zeros((B, n, L), dtype=np.int64)
        enc = self.encoding
        nvec = np.asarray(enc.action_space.nvec) if hasattr(enc.action_space, "nvec") else None
        masks = None
        for p in players:
            rows = np.flatnonzero(state.acting[:, p])
            if not len(rows):
                continue
            plan = getattr(enc, "plan", None)
            if plan is not None:
                masks = rules.masks(state) if masks is None else masks
                builder = self._builder(rules, p)
                observe = _with_prefix(builder, builder.build(ctx, state, p)[rows])
                lower = None if ctx.lower is None else ctx.lower[rows, p]
                acts[rows, p] = compose_moves(
                    self.policy.model, plan, masks[rows, p], lower, observe
                )
                continue
            menu = None
            if enc.name == "menu":
                if self.menu_fn is None:
                    self.menu_fn = batched_agents(enc.mech_name).menu
                menu = padded_menu(self.menu_fn, rules, ctx, state, p, enc.K)
                mask = menu[1]
            else:
                masks = rules.masks(state) if masks is None else masks
                mask = masks[:, p].astype(bool)
            obs = self._builder(rules, p).build(ctx, state, p, menu)
            choice = masked_argmax_batch(
                batched_scores(self.policy.model, obs[rows]), mask[rows], nvec
            )
            if menu is not None:
                acts[rows, p] = menu[0][rows, choice]
            else:
                acts[rows, p] = choice
        return acts


class ByPhaseBatched:
    """``by_phase[name]`` at nodes of that phase, ``base`` elsewhere (batched PhasePolicy)."""

    def __init__(self, base: Any, by_phase: Mapping[str, Any]) -> None:
        self.base = base
        self.by_phase = dict(by_phase)

    def act(
        self,
        rules: BatchedRules,
        ctx: ContextBatch,
        state: BatchState,
        players: list[int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        acts = self.base.act(rules, ctx, state, players, rng)
        for name, pol in self.by_phase.items():
            if name not in rules.phases:
                continue
            here = state.phase == rules.phases.index(name)
            if here.any():
                acts = np.where(here[:, None, None], pol.act(rules, ctx, state, players, rng), acts)
        return acts


class ExactOnBatch:
    """An exact policy (``act(mech, ctx, state, player)``), or a source ``(ctx, rng) ->
    policy``, played on a batch with exact money: episode by episode on its exact state, the
    structured action written in the layout (:meth:`Mechanism.encode`)."""

    def __init__(self, source: Any) -> None:
        self.source = source if not hasattr(source, "act") else (lambda ctx, rng: source)
        self._policies: dict[int, tuple[Any, Any]] = {}

    def _policy(self, ctx: Any, rng: np.random.Generator) -> Any:
        hit = self._policies.get(id(ctx))
        if hit is None or hit[0] is not ctx:
            if len(self._policies) > 512:
                self._policies.clear()
            hit = self._policies[id(ctx)] = (ctx, self.source(ctx, rng))
        return hit[1]

    def act(
        self,
        rules: BatchedRules,
        ctx: ContextBatch,
        state: BatchState,
        players: Sequence[int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        from mechgym.envs.batched_api import take_state
        from mechgym.envs.engine.episode import Episode, batch_of_one

        if not getattr(getattr(rules, "money", None), "exact", False):
            raise ParameterError(
                "opponents", "an exact policy plays on exact money only (money='exact')"
            )
        mech, spec, layout = rules.mech, rules.spec, rules.layout
        out = np.zeros((ctx.B, spec.n, len(layout)), dtype=np.int64)
        for b in range(ctx.B):
            who = [p for p in players if state.acting[b, p]]
            if not who:
                continue
            c = ctx.context(b)
            episode = Episode(c, batch_of_one(c), take_state(state, np.array([b])))
            pol = self._policy(c, rng)
            for p in who:
                action = pol.act(mech, c, episode, p)
                out[b, p] = mech.encode(episode, p, action, spec, layout)
        return out


def resolve_batched(
    spec: Any, mech_name: str, env_spec: Any = None, exact: bool = False
) -> BatchedPolicy:
    """A batched policy from a description: ``"predicted"``, ``"random"``, a deviation name,
    a model path (``.zip``), a :class:`LearnedPolicy`, or a batched policy object; with
    ``exact`` (exact money) also an exact policy or a policy source (:class:`ExactOnBatch`).
    A model must fit ``mech_name`` (and the sizes of ``env_spec``, an EnvSpec, when given)."""
    from mechgym.agents.base import PhasePolicy

    if isinstance(spec, LearnedPolicy):
        return BatchedLearned(spec)
    if isinstance(spec, PhasePolicy):
        return ByPhaseBatched(
            resolve_batched(spec.base, mech_name, env_spec, exact),
            {k: resolve_batched(v, mech_name, env_spec, exact) for k, v in spec.by_phase.items()},
        )
    if hasattr(spec, "act") and _is_batched(spec):
        return spec
    if exact and (hasattr(spec, "act") or callable(spec)):
        return ExactOnBatch(spec)
    if not isinstance(spec, str):
        raise ParameterError(
            "opponents",
            f"cannot play {spec!r} on the batched path; give a name, a model path, a trained "
            "policy or a batched policy (act(rules, ctx, state, players, rng)); exact policies "
            "play with money='exact'",
        )
    agents = batched_agents(mech_name)
    if spec == "predicted":
        return agents.predicted
    if spec == "random":
        return RandomBatched()
    if spec in agents.deviations:
        return agents.deviations[spec]
    from pathlib import Path

    if spec.endswith(".zip") or Path(spec).exists() or Path(spec + ".zip").exists():
        from .policies import load_policy

        return BatchedLearned(load_policy(spec, mechanism=mech_name, spec=env_spec))
    known = ["predicted", "random", *agents.deviations]
    raise ParameterError(
        "opponents", f"unknown opponent {spec!r}; use one of {', '.join(known)} or a model path"
    )


def resolve_batched_players(
    spec: Any, players: Sequence[int], mech_name: str, env_spec: Any = None, exact: bool = False
) -> dict[int, BatchedPolicy]:
    """One batched policy per player: a mapping ``{player: description}`` or one for all
    (``exact``: see :func:`resolve_batched`)."""
    if isinstance(spec, Mapping):
        missing = [p for p in players if p not in spec]
        if missing:
            raise ParameterError("opponents", f"no policy given for players {missing}")
        cache: dict[int, BatchedPolicy] = {}
        out = {}
        for p in players:
            key = id(spec[p])
            if key not in cache:
                cache[key] = resolve_batched(spec[p], mech_name, env_spec, exact)
            out[p] = cache[key]
        return out
    pol = resolve_batched(spec, mech_name, env_spec, exact)
    return dict.fromkeys(players, pol)


def _is_batched(obj: Any) -> bool:
    import inspect

    try:
        params = inspect.signature(obj.act).parameters
    except (TypeError, ValueError):
        return False
    return len(params) == 5 or "rules" in params
