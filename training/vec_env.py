"""The learner env: an SB3 ``VecEnv`` whose ``n_envs`` slots are one batch of the mechanism's
rules, with float or exact money.

One learner (a player or a coalition) against given policies: every decision that is not
the learner's is played inside ``step``/``reset``, so every step is a decision of the learner
in every slot, and the reward is the learner's own. With ``n_envs=1`` and exact money it is
the reference, which :class:`~mechgym.training.learner_env.LearnerEnv` offers as a Gymnasium
env; the vectorised learners run the same class with float money.

* **Slots.** Slot ``b`` is episode ``b`` of one :class:`~mechgym.envs.engine.batched.BatchState`.
  A slot whose learner is not asked is advanced (others play, chance is drawn) on its own
  sub-batch until the learner decides; an episode in which the learner never decides is
  played out and skipped, at most ``max_skips`` times in a row per slot (then
  :class:`NoDecisionError`).
* **Learner.** One player, or a coalition acting member by member at simultaneous nodes
  (one step per member, its observation names the member), rewarded with the coalition's
  total utility; with ``align_coalitions`` the coalition is one shared-reward block of every
  context (other blocks keep their remaining members), so that scripted players and the
  theorems' benchmarks see the coalition that actually plays. ``rotate`` draws the learner
  per episode (self-play).
* **Reward**: at the end of the episode, ``ctx.rewards`` of the learner for one player (its
  coalition's total if the context shares rewards), the members' summed utilities for a
  coalition. With exact money it is computed from the exact outcome, and
  ``info["exact_reward"]`` (the Fraction as a string) and ``info["rule"]`` come with it.
* **Others** follow batched policies (:func:`~mechgym.training.batched_obs.resolve_batched`):
  ``"predicted"``, ``"random"``, a named deviation, a model path, a trained
  :class:`~mechgym.training.policies.LearnedPolicy` (self-play / IBR), a mapping per player;
  with exact money also exact policies. Outside ``learn_phases`` the learner's members play
  ``scripted``.
* **Encodings.** ``menu``: ``Discrete(K)`` over the menus (entry ``k`` is the menu's
  ``k``-th action; invalid entries masked); ``multidiscrete``: the layout with its flat masks;
  ``factored`` / ``continuous``: one sub-decision of the learner's move per step
  (:mod:`mechgym.envs.engine.factored`), the observation ending with the move so far.
  :meth:`VecLearnerEnv.action_masks` gives ``(n_envs, mask)`` booleans, and
  ``env_method("action_masks")`` its rows, which is how sb3-contrib's MaskablePPO reads
  masks from a ``VecEnv`` (``get_action_masks``).
* **Observations** are the exact builder's (see :mod:`mechgym.training.batched_obs`), so a
  model trained here plays and is evaluated on the exact path, and the other way round.
* **Auto-reset.** A finished slot reports its reward with ``done`` and
  ``info["terminal_observation"]`` (SB3's convention) and starts a fresh episode on a fresh
  context: from a sampler of the generator, a fixed family, or one fixed context.
* **Illegal actions** (algorithms without masks): ``illegal="penalty"`` ends the slot's
  episode with reward ``-illegal_penalty`` and ``info["illegal"]``; ``"raise"`` raises the
  typed error.

Rewards are float32 as SB3 stores them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from gymnasium import spaces
from mechgym.agents.batched import batched_agents
from mechgym.agents.menus import menu_grid
from mechgym.envs.batched_api import (
    ContextSource,
    ExactSampler,
    FamilySampler,
    context_source,
    put_state,
    take_state,
)
from mechgym.envs.engine.batched import BatchState, ContextBatch, batched_rules
from mechgym.envs.engine.episode import BatchOfOne, Episode, batch_of_one
from mechgym.envs.engine.errors import IllegalActionError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.factored import FACTORED_ENCODINGS, Composer, entry_of
from mechgym.envs.engine.game import Terminal
from mechgym.envs.engine.spaces import canonical_encoding
from mechgym.envs.model.family import ContextFamily
from mechgym.envs.pettingzoo.registry import entry
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from .batched_obs import BatchedObservationBuilder, padded_menu, resolve_batched_players
from .encodings import Encoding, ObservationBuilder, make_encoding
from .learner_env import (
    Group,
    NoDecisionError,
    align_context,
    as_group,
    group_value,
    learner_setting,
)
from .policies import class_path

__all__ = ["AlignedSource", "VecLearnerEnv"]


class AlignedSource:
    """Contexts of ``source`` with ``group`` made one shared-reward coalition (the batched
    :func:`~mechgym.training.learner_env.align_context`; other blocks lose its members)."""

    def __init__(self, source: ContextSource, group: Group) -> None:
        self.source = source
        self.group = group

    def sample(self, B: int, rng: np.random.Generator) -> ContextBatch:
        ctx = self.source.sample(B, rng)
        if ctx.contexts is not None:
            # exact contexts stay exact (the exact path reads them)
            return ContextBatch.from_contexts([align_context(c, self.group) for c in ctx.contexts])
        return align_batch(ctx, self.group)


def align_batch(ctx: ContextBatch, group: Group) -> ContextBatch:
    """``ctx`` with ``group`` as one shared-reward block (labels = smallest member)."""
    n = ctx.n
    in_g = np.zeros(n, dtype=bool)
    in_g[list(group)] = True
    lab = ctx.coalition
    same = (lab[:, :, None] == lab[:, None, :]) & ~in_g[None, None, :]
    rest = np.argmax(same, axis=2)  # first remaining member of each player's old block
    ctx.coalition = np.where(in_g[None, :], min(group), rest).astype(np.int64)
    ctx.shared_reward = np.ones(ctx.B, dtype=bool)
    ctx.contexts = None
    return ctx


def menu_price_cap(
    mechanism: str,
    context: Any = None,
    generator: Any = None,
    contexts: Sequence[Any] | None = None,
    value_cap: int | None = None,
    constants: Mapping[str, Any] | None = None,
) -> int:
    """A price grid wide enough for the menus' scaled offers (factors up to 2).

    A menu entry is an action of the layout, so its prices must be on the layout's grid
    (entries off it are marked invalid); twice the value cap keeps the offers of the
    seed-000 menus on it.
    """
    spec = learner_setting(mechanism, context, generator, contexts, value_cap, None, constants).spec
    return menu_grid(spec.price_cap, spec.value_cap)


class VecLearnerEnv(VecEnv):
    """One learner against given policies in ``n_envs`` slots (see the module docstring).

    Parameters
    ----------
    mechanism : str or MechanismEnv
        A catalogue name, or a raw AEC env whose mechanism and contexts are played.
    learner : int or tuple of int or str
        The learning player, or coalition (``(1, 2)`` or ``"1,2"``).
    n_envs : int
        Slots (episodes at once).
    money : {"float", "exact"}
        The rules' money: float64 (the batched path), or exact integers and Fractions (the
        reference: rewards exact, ``info["exact_reward"]``; exact policies may play).
    opponents : str, policy or mapping, default "predicted"
        Who plays the other players: ``"predicted"``, ``"random"``, a deviation name, a model
        path, a trained policy, a batched policy, a mapping per player; with exact money also
        an exact policy (``act(mech, ctx, state, player)``) or a source ``(ctx, rng) -> policy``.
    encoding : {"menu", "multidiscrete", "factored", "continuous"}
        ``factored``/``continuous``: every step is one sub-decision of the learner's move
        (:mod:`mechgym.envs.engine.factored`); the observation ends with its move so far.
    learn_phases : sequence of str, optional
        Phases the learner decides (default all); elsewhere it plays ``scripted``.
    scripted : policy description, default "predicted"
    context, generator, contexts : optional
        One context (or example name), a generator (or spec string), or a fixed family.
    seed : int, optional
        Seeds the slots' generator (contexts, chance, opponents).
    normalize : {"symlog", "none"}
    features : bool
        Append own-information features (see :mod:`mechgym.training.encodings`).
    illegal : {"penalty", "raise"}
    illegal_penalty : float, optional
        Default: the value cap.
    align_coalitions : bool
        Make a coalition learner one shared-reward block of every context.
    max_skips : int
        Episodes in a row a slot may play without a decision of the learner.
    rotate : sequence of learners, optional
        Self-play: each episode the learner is drawn uniformly from these (same sizes).
    constants : mapping, optional
        The mechanism's constants (ε, variants).
    value_cap, price_cap : int, optional
        Env sizes (``price_cap`` defaults to :func:`menu_price_cap` for menus).
    price_levels, price_grid : int, str
        Amount grids of the factored encodings.
    """

    def __init__(
        self,
        mechanism: Any,
        learner: int | Sequence[int] | str = 0,
        *,
        n_envs: int = 64,
        money: str = "float",
        opponents: Any = "predicted",
        encoding: str = "menu",
        learn_phases: Sequence[str] | None = None,
        scripted: Any = "predicted",
        context: Any = None,
        generator: Any = None,
        contexts: Sequence[Any] | None = None,
        seed: int | None = None,
        normalize: str = "symlog",
        features: bool = True,
        illegal: str = "penalty",
        illegal_penalty: float | None = None,
        align_coalitions: bool = True,
        max_skips: int = 1000,
        rotate: Sequence[Any] | None = None,
        constants: Mapping[str, Any] | None = None,
        value_cap: int | None = None,
        price_cap: int | None = None,
        price_levels: int = 16,
        price_grid: str = "linear",
    ) -> None:
        if isinstance(n_envs, bool) or not isinstance(n_envs, int | np.integer) or n_envs < 1:
            raise ParameterError("n_envs", f"must be an integer >= 1, got {n_envs!r}")
        if money not in ("float", "exact"):
            raise ParameterError("money", f"use 'float' or 'exact', got {money!r}")
        from .algos import configure_torch

        # a learner is about to be built on this env: small models run fastest on one thread
        configure_torch()
        encoding = canonical_encoding(encoding)
        setting = learner_setting(
            mechanism, context, generator, contexts, value_cap, price_cap, constants
        )
        if price_cap is None and encoding == "menu":
            spec = setting.spec
            wide = menu_grid(spec.price_cap, spec.value_cap)
            setting = replace(setting, spec=replace(spec, price_cap=wide))
        self.setting = setting
        self.mech = setting.mechanism
        self.mech_name = self.mech.name
        self.constants = dict(constants or {})
        self.agents = entry(self.mech_name).load_agents()
        self.env_spec = setting.spec
        n = self.env_spec.n
        self.n = n
        groups = [as_group(g) for g in rotate] if rotate else [as_group(learner)]
        for g in groups:
            bad = [p for p in g if not 0 <= p < n]
            if bad:
                raise ParameterError("learner", f"players {bad} are outside 0..{n - 1}")
            if len(g) != len(groups[0]):
                raise ParameterError("rotate", "self-play learners must all have the same size")
        self.groups = groups
        self.group = groups[0]
        phases = tuple(learn_phases) if learn_phases else tuple(self.mech.phases)
        unknown = [ph for ph in phases if ph not in self.mech.phases]
        if unknown:
            raise ParameterError(
                "learn_phases",
                f"unknown phases {unknown}; '{self.mech_name}' has {list(self.mech.phases)}",
            )
        self.learn_phases = phases
        if illegal not in ("penalty", "raise"):
            raise ParameterError("illegal", f"use 'penalty' or 'raise', got {illegal!r}")
        self.illegal = illegal
        self.illegal_penalty = float(
            self.env_spec.value_cap if illegal_penalty is None else illegal_penalty
        )
        self.align_coalitions = align_coalitions
        if max_skips < 1:
            raise ParameterError("max_skips", "must be at least 1")
        self.max_skips = int(max_skips)
        self.encoding: Encoding = make_encoding(
            encoding,
            self.mech_name,
            self.mech,
            self.env_spec,
            self.agents,
            price_levels=price_levels,
            price_grid=price_grid,
        )
        self.normalize = normalize
        self.features = features
        self.builders = {
            g: ObservationBuilder(self.encoding, g, setting.context_class, normalize, features)
            for g in groups
        }
        self.builder = self.builders[self.group]
        self.money = money
        self.exact_money = money == "exact"
        if self.exact_money:
            if not isinstance(self.mech, BatchOfOne):
                raise ParameterError("money", f"'{self.mech_name}' has no exact batched rules")
            self.rules = self.mech.rules(n, self.env_spec.m, self.env_spec)
        else:
            self.rules = batched_rules(self.mech, self.env_spec)
        self.batched = batched_agents(self.mech_name)
        if self.encoding.name == "menu" and self.batched.menu is None:
            raise ParameterError(
                "encoding", f"'{self.mech_name}' has no batched menu; use encoding='multidiscrete'"
            )
        self.L = len(self.rules.layout)
        self.player_group = np.full(n, -1, dtype=np.int64)
        for k, g in enumerate(self.groups):
            self.player_group[list(g)] = k
        self.group_mask = np.zeros((len(self.groups), n), dtype=bool)
        for k, g in enumerate(self.groups):
            self.group_mask[k, list(g)] = True
        self.group_size = np.array([len(g) for g in self.groups], dtype=np.int64)
        self.group_first = np.array([g[0] for g in self.groups], dtype=np.int64)
        self.learn_phase_mask = np.array([ph in self.learn_phases for ph in self.rules.phases])
        self.obs_builders = {
            p: BatchedObservationBuilder(self.builders[g], self.rules)
            for g in self.groups
            for p in g
        }
        if isinstance(setting.generator, ContextFamily):
            base: ContextSource = FamilySampler(setting.generator)
        elif setting.generator is None:
            base = context_source(context=setting.context)
        elif self.exact_money:
            # exact contexts drawn one by one (the exact env's stream and objects)
            base = ExactSampler(setting.generator)
        else:
            base = context_source(generator=setting.generator)
        self.sources = [self._aligned(base, g) for g in self.groups]
        self._opponents_spec: Any = opponents
        self._scripted_spec: Any = scripted
        self.opponents = self._resolve(opponents)
        self.scripted = self._resolve(scripted)
        self.rng = np.random.default_rng(seed)
        self._pending_seed: int | None = None
        self._actions: np.ndarray | None = None
        self.ctx: ContextBatch | None = None
        self.state: BatchState | None = None
        self.episodes = 0
        self.composer: Composer | None = None
        if self.encoding.name in FACTORED_ENCODINGS:
            self.composer = Composer(self.encoding.plan, int(n_envs))  # type: ignore[attr-defined]
            action_space: spaces.Space = self.encoding.action_space
        elif self.encoding.name == "menu":
            action_space = spaces.Discrete(self.encoding.K)
        else:
            action_space = spaces.MultiDiscrete(self.rules.layout.sizes)
        self.render_mode = None
        super().__init__(int(n_envs), self.builder.space, action_space)

    def _resolve(self, spec: Any) -> dict[int, Any]:
        return resolve_batched_players(
            spec, range(self.n), self.mech_name, self.env_spec, exact=self.exact_money
        )

    def _aligned(self, base: ContextSource, group: Group) -> ContextSource:
        if not self.align_coalitions or len(group) == 1:
            return base
        if isinstance(base, FamilySampler):
            return FamilySampler(base.family.map(lambda c: align_context(c, group)))
        return AlignedSource(base, group)

    # -- configuration -------------------------------------------------------------------------
    def set_opponents(self, opponents: Any) -> None:
        """Replace the non-learners' policies (from the next decision on)."""
        self.opponents = self._resolve(opponents)
        self._opponents_spec = opponents

    def meta(self) -> dict[str, Any]:
        """What a saved model needs to be played again (see :func:`policies.save_model`),
        with the setting it fits (:func:`mechgym.training.sidecar.setting`)."""
        from .sidecar import setting

        return {
            **setting(self.builder),
            "mechanism": self.mech_name,
            "constants": self.constants,
            "encoding": self.encoding.name,
            **{k: v for k, v in self.encoding.describe().items() if k != "encoding"},
            "members": list(self.group),
            "learn_phases": list(self.learn_phases),
            "normalize": self.normalize,
            "features": self.features,
            "shared": len(self.groups) > 1,
            "groups": [list(g) for g in self.groups],
            "spec": {
                "n": self.env_spec.n,
                "m": self.env_spec.m,
                "value_cap": self.env_spec.value_cap,
                "price_cap": self.env_spec.price_cap,
            },
            "context_class": class_path(self.setting.context_class),
            "n_envs": self.num_envs,
        }

    # -- VecEnv API ----------------------------------------------------------------------------
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the slots' common generator at the next :meth:`reset` (``None``: fresh)."""
        self._pending_seed = seed
        return [seed] * self.num_envs

    def reset(self) -> np.ndarray:
        if self._pending_seed is not None:
            self.rng = np.random.default_rng(self._pending_seed)
            self._pending_seed = None
        B = self.num_envs
        self.slot_group = np.zeros(B, dtype=np.int64)
        self.ctx = None
        self.skips = np.zeros(B, dtype=np.int64)
        self.decided = np.zeros(B, dtype=bool)
        self.turn = np.full(B, -1, dtype=np.int64)
        self.pending = np.zeros((B, self.n), dtype=bool)
        self.mine = np.zeros((B, self.n), dtype=bool)
        self.buffer = np.zeros((B, self.n, self.L), dtype=np.int64)
        self.last_player = np.zeros(B, dtype=np.int64)
        idx = np.arange(B)
        self._new_episodes(idx)
        self._settle(idx, np.zeros(B, dtype=np.float32), np.zeros(B, dtype=bool), [{} for _ in idx])
        self.reset_infos = [
            {"player": int(p), "learner": list(self.groups[g])}
            for p, g in zip(self.turn, self.slot_group, strict=True)
        ]
        return self._observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self.state is None or self._actions is None:
            raise OutOfSpaceError("-", "-", "call reset() before step()")
        B = self.num_envs
        acts = self._actions
        self._actions = None
        rewards = np.zeros(B, dtype=np.float32)
        dones = np.zeros(B, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(B)]
        rows = np.arange(B)
        p = self.turn
        arrays, legal, why = self._decode(acts)
        bad = np.flatnonzero(~legal)
        if len(bad) and self.illegal == "raise":
            b = int(bad[0])
            raise why[b][0](f"player_{int(p[b])}", self._phase_name(b), why[b][1])
        if self.composer is not None:
            # a move under way: the slot waits for the learner's next sub-decision
            x = None if self._x is None else self._x[legal]
            self.composer.choose(np.flatnonzero(legal), self._entry[legal], x)
            legal = legal & ~self.composer.composing
            arrays = self.composer.act
        good = np.flatnonzero(legal)
        self.buffer[good, p[good]] = arrays[good]
        self.pending[good, p[good]] = False
        self.decided[good] = True
        self.last_player[good] = p[good]
        for b in bad:
            rewards[b] = -self.illegal_penalty
            dones[b] = True
            infos[b]["illegal"] = f"player_{int(p[b])} ({self._phase_name(int(b))}): {why[b][1]}"
            infos[b]["terminal_observation"] = np.zeros(self.observation_space.shape, np.float32)
        if len(bad):
            self._new_episodes(bad)
        more = self.pending[rows, :].any(axis=1) & legal
        nxt = np.flatnonzero(more)
        self.turn[nxt] = np.argmax(self.pending[nxt], axis=1)
        self._begin_moves(nxt)
        resolve = np.flatnonzero(legal & ~more)
        if len(resolve):
            self._play(resolve)
        todo = np.concatenate([resolve, bad]).astype(np.int64)
        self._settle(np.sort(todo), rewards, dones, infos)
        return self._observe(), rewards, dones, infos

    def action_masks(self) -> np.ndarray:
        """``(n_envs, size)`` booleans: the legal values of every slot's pending decision."""
        return self._masks

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        value = getattr(self, attr_name)
        return [value] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        idx = list(self._get_indices(indices))
        if method_name == "action_masks":
            masks = self.action_masks()
            return [masks[i] for i in idx]
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result] * len(idx)

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))

    # -- internals -----------------------------------------------------------------------------
    def _phase_name(self, b: int) -> str:
        assert self.state is not None
        ph = int(self.state.phase[b])
        return self.rules.phases[ph] if ph >= 0 else "done"

    def _decode(self, acts: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        """Layout arrays of the learner's actions, legality, and why (error class, text)."""
        B = self.num_envs
        why: list[Any] = [None] * B
        if self.composer is not None:
            return self._decode_sub(acts)
        if self.encoding.name == "menu":
            a = acts.reshape(B).astype(np.int64) if acts.size == B else None
            if a is None:
                raise OutOfSpaceError(
                    "learner", "-", f"expected {B} menu indices, got {acts.shape}"
                )
            inside = (a >= 0) & (a < self.encoding.K)
            k = np.clip(a, 0, self.encoding.K - 1)
            legal = inside & self._masks[np.arange(B), k]
            arrays = self._menu_acts[np.arange(B), k]
            for b in np.flatnonzero(~legal):
                if not inside[b]:
                    why[b] = (
                        OutOfSpaceError,
                        f"menu entry {int(a[b])} is outside 0..{self.encoding.K - 1}",
                    )
                else:
                    why[b] = (IllegalActionError, f"menu entry {int(a[b])} is masked here")
            return arrays, legal, why
        lay = self.rules.layout
        arr = acts.reshape(B, self.L).astype(np.int64)
        inside = ((arr >= 0) & (arr < lay.sizes)).all(axis=1)
        pos = lay.offsets[:-1] + np.clip(arr, 0, lay.sizes - 1)
        allowed = np.take_along_axis(self._masks, pos, axis=1).all(axis=1)
        legal = inside & allowed
        for b in np.flatnonzero(~legal):
            if not inside[b]:
                why[b] = (OutOfSpaceError, f"action {arr[b].tolist()} is outside the space")
            else:
                k = int(np.flatnonzero(~np.take_along_axis(self._masks[b], pos[b], axis=0))[0])
                why[b] = (
                    IllegalActionError,
                    f"field '{lay.names[k]}' = {int(arr[b, k])} is not allowed here",
                )
        return arr, legal, why

    def _decode_sub(self, acts: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        """Legality of the learner's sub-decisions (the composer takes them in step_wait)."""
        assert self.composer is not None
        B = self.num_envs
        why: list[Any] = [None] * B
        D = self.composer.plan.D
        valid = self._masks
        self._x: np.ndarray | None = None
        if self.encoding.name == "continuous":
            arr = np.asarray(acts, dtype=np.float64)
            if arr.size != 2 * B:
                raise OutOfSpaceError("learner", "-", f"expected {B} pairs, got {arr.shape}")
            arr = arr.reshape(B, 2)
            inside = np.isfinite(arr).all(axis=1)
            entry = entry_of(np.where(inside, arr[:, 0], 0.0), valid)
            self._x = np.clip(np.nan_to_num(arr[:, 1]), 0.0, 1.0)
            self._entry = entry
            for b in np.flatnonzero(~inside):
                why[b] = (OutOfSpaceError, f"action {arr[b].tolist()} is not two numbers")
            return self.composer.act, inside, why
        if acts.size != B:
            raise OutOfSpaceError("learner", "-", f"expected {B} sub-decisions, got {acts.shape}")
        a = acts.reshape(B).astype(np.int64)
        inside = (a >= 0) & (a < D)
        legal = inside & valid[np.arange(B), np.clip(a, 0, D - 1)]
        self._entry = a
        for b in np.flatnonzero(~legal):
            if not inside[b]:
                why[b] = (OutOfSpaceError, f"sub-decision {int(a[b])} is outside 0..{D - 1}")
            else:
                label = self.composer.label(int(b))
                why[b] = (IllegalActionError, f"{label}: entry {int(a[b])} is masked here")
        return self.composer.act, legal, why

    def _begin_moves(self, idx: np.ndarray) -> None:
        """Start the learner's factored moves in slots ``idx`` (for the members at turn)."""
        if self.composer is None or not len(idx):
            return
        assert self.ctx is not None and self.state is not None
        sub = take_state(self.state, idx)
        turn = self.turn[idx]
        masks = self.rules.masks(sub)[np.arange(len(idx)), turn]
        lower = None if self.ctx.lower is None else self.ctx.lower[idx, turn]
        self.composer.begin(idx, masks, lower)

    def _new_episodes(self, idx: np.ndarray, contexts: Sequence[Any] | None = None) -> None:
        """Fresh contexts (drawn, or ``contexts``) and initial states for slots ``idx``
        (learner drawn for self-play)."""
        k = len(idx)
        if len(self.groups) > 1 and contexts is None:
            self.slot_group[idx] = self.rng.integers(len(self.groups), size=k)
        groups = self.slot_group[idx]
        fresh: ContextBatch | None = None
        if contexts is not None:
            fresh = ContextBatch.from_contexts(list(contexts))
        for gi in np.unique(groups) if fresh is None else ():
            sel = np.flatnonzero(groups == gi)
            part = self.sources[int(gi)].sample(len(sel), self.rng)
            if fresh is None:
                fresh = part if len(sel) == k else _empty_like(part, k)
            if len(sel) != k:
                fresh.put(sel, part)
        assert fresh is not None
        if self.ctx is None:
            self.ctx = fresh
            self.state = self.rules.reset(fresh, self.rng)
        else:
            self.ctx.put(idx, fresh)
            assert self.state is not None
            put_state(self.state, idx, self.rules.reset(fresh, self.rng))
        self.decided[idx] = False
        self.pending[idx] = False
        self.mine[idx] = False
        self.turn[idx] = -1

    def _sub(self, idx: np.ndarray) -> tuple[ContextBatch, BatchState, bool]:
        assert self.ctx is not None and self.state is not None
        if len(idx) == self.num_envs:
            return self.ctx, self.state, True
        return self.ctx.take(idx), take_state(self.state, idx), False

    def _play(self, idx: np.ndarray) -> None:
        """Resolve the pending node of slots ``idx``: the learner's buffered actions, the
        others' policies; then the chance nodes that follow."""
        ctx, state, whole = self._sub(idx)
        acting = state.acting
        mine = self.mine[idx]
        in_group = self.group_mask[self.slot_group[idx]]
        others = acting & ~mine
        acts = np.where(mine[:, :, None], self.buffer[idx], 0)
        if others.any():
            for table, who in (
                (self.opponents, others & ~in_group),
                (self.scripted, others & in_group),
            ):
                if not who.any():
                    continue
                players = [int(p) for p in np.flatnonzero(who.any(axis=0))]
                by_pol: dict[int, list[int]] = {}
                pols: dict[int, Any] = {}
                for p in players:
                    pol = table[p]
                    by_pol.setdefault(id(pol), []).append(p)
                    pols[id(pol)] = pol
                for key, ps in by_pol.items():
                    out = pols[key].act(self.rules, ctx, state, ps, self.rng)
                    sel = np.zeros(self.n, dtype=bool)
                    sel[ps] = True
                    use = who & sel[None, :]
                    acts = np.where(use[:, :, None], out, acts)
        new = self.rules.step(ctx, state, acts, self.rng)
        new.chance = []  # the log serves replay only
        if whole:
            self.state = new
        else:
            assert self.state is not None
            put_state(self.state, idx, new)
        self.mine[idx] = False
        self.buffer[idx] = 0

    def _settle(
        self,
        idx: np.ndarray,
        rewards: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Advance slots ``idx`` until the learner decides in each: finish ended episodes
        (reward, terminal observation, fresh episode) and let the others play."""
        guard = 0
        while len(idx):
            guard += 1
            if guard > 100_000:
                raise RuntimeError("slots did not reach a learner decision")
            assert self.state is not None and self.ctx is not None
            ended = idx[self.state.done[idx]]
            if len(ended):
                self._finish(ended, rewards, dones, infos)
            st = self.state
            ph = st.phase[idx]
            learned = np.where(ph >= 0, self.learn_phase_mask[np.maximum(ph, 0)], False)
            pend = st.acting[idx] & self.group_mask[self.slot_group[idx]] & learned[:, None]
            ready = pend.any(axis=1)
            r = idx[ready]
            if len(r):
                self.pending[r] = pend[ready]
                self.mine[r] = pend[ready]
                self.turn[r] = np.argmax(pend[ready], axis=1)
                self.skips[r] = 0
                self._begin_moves(r)
            idx = idx[~ready]
            if len(idx):
                self.mine[idx] = False
                self._play(idx)

    def _finish(
        self,
        ended: np.ndarray,
        rewards: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        assert self.state is not None and self.ctx is not None
        scored = ended[self.decided[ended]]
        skipped = ended[~self.decided[ended]]
        if len(scored):
            ctx, state, _ = self._sub(scored)
            util = self.rules.utilities(ctx, state)
            rew = ctx.rewards(util)
            sg = self.slot_group[scored]
            # one player: its reward (its coalition's total if the context shares it);
            # a coalition: the members' summed utilities, as the exact env
            value = np.where(
                self.group_size[sg] == 1,
                rew[np.arange(len(scored)), self.group_first[sg]],
                (util * self.group_mask[sg]).sum(axis=1),
            )
            if self.exact_money:
                value = self._exact_rewards(ctx, state, scored, infos)
            rewards[scored] = value
            dones[scored] = True
            last = self.last_player_of(scored)
            for p in np.unique(last):
                sel = np.flatnonzero(last == p)
                term = self.obs_builders[int(p)].terminal(ctx, state, int(p))
                for k in sel:
                    infos[int(scored[k])]["terminal_observation"] = term[k]
            self.episodes += len(scored)
        if len(skipped):
            self.skips[skipped] += 1
            if (self.skips[skipped] > self.max_skips).any():
                b = int(skipped[np.argmax(self.skips[skipped])])
                g = self.groups[int(self.slot_group[b])]
                raise NoDecisionError(
                    "learn_phases",
                    f"learner {list(g)} had no decision in phases {list(self.learn_phases)} in "
                    f"{self.max_skips} episodes of '{self.mech_name}'",
                )
        self._new_episodes(ended)

    def _exact_rewards(
        self,
        ctx: ContextBatch,
        state: BatchState,
        scored: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> np.ndarray:
        """The learner's exact rewards of ended slots, from the exact outcomes."""
        out = np.zeros(len(scored), dtype=np.float64)
        for k, b in enumerate(scored):
            c = ctx.context(k)
            episode = Episode(c, batch_of_one(c), take_state(state, np.array([k])))
            node = self.mech.node(episode)
            assert isinstance(node, Terminal)
            group = self.groups[int(self.slot_group[b])]
            exact = group_value(c, node.outcome, group)
            out[k] = float(exact)
            infos[int(b)]["exact_reward"] = str(exact)
            infos[int(b)]["rule"] = node.outcome.rule
        return out

    def episode(self, slot: int = 0) -> Episode:
        """Slot ``slot``'s state as an exact-engine state (exact money only)."""
        if not self.exact_money:
            raise ParameterError("money", "exact states need money='exact'")
        assert self.ctx is not None and self.state is not None
        c = self.ctx.context(slot)
        return Episode(c, batch_of_one(c), take_state(self.state, np.array([slot])))

    def restart(self, contexts: Sequence[Any] | None = None) -> np.ndarray:
        """Start fresh episodes in every slot (on ``contexts``, one per slot, if given) and
        return the observations; the generator stream goes on."""
        if self.state is None:
            self.reset()
        B = self.num_envs
        idx = np.arange(B)
        if contexts is not None:
            if len(contexts) != B:
                raise ParameterError("contexts", f"give {B} contexts, one per slot")
            cls = self.setting.context_class
            spec = self.env_spec
            for c in contexts:
                if type(c) is not cls or (c.n, c.m) != (spec.n, spec.m):
                    raise ParameterError(
                        "options.context",
                        f"must be a {cls.__name__} with n={spec.n}, m={spec.m}",
                    )
            if self.align_coalitions:
                contexts = [
                    align_context(c, self.groups[int(g)]) if len(self.groups[int(g)]) > 1 else c
                    for c, g in zip(contexts, self.slot_group, strict=True)
                ]
        self._new_episodes(idx, contexts)
        self._settle(idx, np.zeros(B, dtype=np.float32), np.zeros(B, dtype=bool), [{} for _ in idx])
        return self._observe()

    def last_player_of(self, slots: np.ndarray) -> np.ndarray:
        """The learner member who decided last in each slot (whose terminal view is shown)."""
        return self.last_player[slots]

    def _observe(self) -> np.ndarray:
        assert self.ctx is not None and self.state is not None
        B = self.num_envs
        obs = np.zeros((B, *self.observation_space.shape), dtype=np.float32)
        menu_mode = self.encoding.name == "menu"
        prefix = None
        if self.composer is not None:
            self._masks = self.composer.action_masks().astype(bool)
            prefix = self.composer.features()
        elif menu_mode:
            K = self.encoding.K
            self._menu_acts = np.zeros((B, K, self.L), dtype=np.int64)
            self._masks = np.zeros((B, K), dtype=bool)
        else:
            masks = self.rules.masks(self.state)
            self._masks = masks[np.arange(B), np.maximum(self.turn, 0)].astype(bool)
        for p in np.unique(self.turn):
            rows = np.flatnonzero(self.turn == p)
            menu = None
            if menu_mode:
                menu = padded_menu(self.batched.menu, self.rules, self.ctx, self.state, int(p), K)
                self._menu_acts[rows] = menu[0][rows]
                self._masks[rows] = menu[1][rows]
            built = self.obs_builders[int(p)].build(self.ctx, self.state, int(p), menu, prefix)
            obs[rows] = built[rows]
        return obs


def _empty_like(part: ContextBatch, k: int) -> ContextBatch:
    """A batch of ``k`` slots shaped like ``part`` (filled by ``put``)."""
    idx = np.zeros(k, dtype=np.int64)
    out = part.take(idx)
    if out.contexts is not None:
        out.contexts = list(out.contexts)
    return out
