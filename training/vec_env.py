"""A vectorised learner env: an SB3 ``VecEnv`` whose ``n_envs`` slots are one batch on the
batched path.

The batched twin of :class:`~mechgym.training.learner_env.LearnerEnv`, with the same
learner, opponents, encodings, observations and rewards, for ``n_envs`` episodes at once:

* **Slots.** Slot ``b`` is episode ``b`` of one :class:`~mechgym.envs.engine.batched.BatchState`.
  Every ``step`` is one decision of the learner in every slot. A slot whose learner is not
  asked is advanced (others play, chance is drawn) on its own sub-batch until the learner
  decides; an episode in which the learner never decides is played out and skipped, at most
  ``max_skips`` times in a row per slot (then :class:`NoDecisionError`).
* **Learner.** One player, or a coalition acting member by member at simultaneous nodes
  (one step per member, its observation names the member), rewarded with the coalition's
  total utility; with ``align_coalitions`` the coalition is one shared-reward block of every
  context, as in the exact env. ``rotate`` draws the learner per episode (self-play).
* **Others** follow batched policies (:func:`~mechgym.training.batched_obs.resolve_batched`):
  ``"predicted"``, ``"random"``, a named deviation, a model path, a trained
  :class:`~mechgym.training.policies.LearnedPolicy` (self-play / IBR), a mapping per player.
  Outside ``learn_phases`` the learner's members play ``scripted``.
* **Encodings.** ``menu``: ``Discrete(K)`` over the batched menus (entry ``k`` is the exact
  menu's ``k``-th action; invalid entries masked); ``raw``: the ``MultiDiscrete`` layout with
  its flat masks; ``factored`` / ``continuous``: one sub-decision of the learner's move per
  step (:mod:`mechgym.envs.engine.factored`), as the exact env's encoding, the observation
  ending with the move so far. :meth:`VecLearnerEnv.action_masks` gives ``(n_envs, mask)``
  booleans, and
  ``env_method("action_masks")`` its rows, which is how sb3-contrib's MaskablePPO reads
  masks from a ``VecEnv`` (``get_action_masks``).
* **Observations** are the exact builder's (see :mod:`mechgym.training.batched_obs`), so a
  model trained here plays and is evaluated on the exact path, and the other way round.
* **Auto-reset.** A finished slot reports its reward with ``done`` and
  ``info["terminal_observation"]`` (SB3's convention) and starts a fresh episode on a fresh
  context: from a batched sampler of the generator, a fixed family, or one fixed context.
* **Illegal actions** (algorithms without masks): ``illegal="penalty"`` ends the slot's
  episode with reward ``-illegal_penalty`` and ``info["illegal"]``; ``"raise"`` raises the
  typed error.

Money is float64 on this path; rewards are float32 as SB3 stores them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from mechgym.agents.batched import batched_agents
from mechgym.envs.batched_api import (
    ContextSource,
    FamilySampler,
    context_source,
    put_state,
    take_state,
)
from mechgym.envs.engine.batched import BatchState, ContextBatch, batched_rules
from mechgym.envs.engine.errors import IllegalActionError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.factored import Composer, entry_of
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from .batched_obs import BatchedObservationBuilder, padded_menu, resolve_batched_players
from .learner_env import Group, LearnerEnv, NoDecisionError, align_context

__all__ = ["AlignedSource", "VecLearnerEnv"]


class AlignedSource:
    """Contexts of ``source`` with ``group`` made one shared-reward coalition (the batched
    :func:`~mechgym.training.learner_env.align_context`; other blocks lose its members)."""

    def __init__(self, source: ContextSource, group: Group) -> None:
        self.source = source
        self.group = group

    def sample(self, B: int, rng: np.random.Generator) -> ContextBatch:
        ctx = self.source.sample(B, rng)
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

    Exact menus hold structured actions at any price; the batched path can only express
    prices on the layout's grid, and marks the other entries invalid. Twice the value cap
    keeps the offers of the seed-000 menus on the grid, so both paths offer the same menu
    (the exact path's menus do not depend on the grid).
    """
    from .learner_env import make_raw_env

    raw = make_raw_env(mechanism, context, generator, contexts, None, value_cap, None, constants)
    return max(raw.spec.price_cap, 2 * raw.spec.value_cap)


class VecLearnerEnv(VecEnv):
    """One learner against batched policies in ``n_envs`` slots (see the module docstring).

    Parameters are those of :class:`~mechgym.training.learner_env.LearnerEnv`, plus
    ``n_envs``; ``opponents`` and ``scripted`` also take batched policies and trained
    policies.
    """

    def __init__(
        self,
        mechanism: str,
        learner: int | Sequence[int] | str = 0,
        *,
        n_envs: int = 64,
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
        from .algos import configure_torch

        # a learner is about to be built on this env: small models run fastest on one thread
        configure_torch()
        if price_cap is None and encoding == "menu":
            price_cap = menu_price_cap(
                mechanism, context, generator, contexts, value_cap, constants
            )
        # the exact env validates every option and owns the exact encoding and builders,
        # which evaluation and saved models use
        self.exact = LearnerEnv(
            mechanism,
            learner,
            encoding=encoding,
            learn_phases=learn_phases,
            context=context,
            generator=generator,
            contexts=contexts,
            seed=seed,
            normalize=normalize,
            features=features,
            illegal=illegal,
            illegal_penalty=illegal_penalty,
            align_coalitions=align_coalitions,
            max_skips=max_skips,
            rotate=rotate,
            constants=constants,
            value_cap=value_cap,
            price_cap=price_cap,
            price_levels=price_levels,
            price_grid=price_grid,
        )
        ex = self.exact
        self.raw = ex.raw
        self.mech = ex.mech
        self.mech_name = ex.mech_name
        self.constants = ex.constants
        self.agents = ex.agents
        self.env_spec = ex.env_spec
        self.groups = ex.groups
        self.group = ex.group
        self.learn_phases = ex.learn_phases
        self.encoding = ex.encoding
        self.builders = ex.builders
        self.builder = ex.builder
        self.illegal = ex.illegal
        self.illegal_penalty = ex.illegal_penalty
        self.align_coalitions = align_coalitions
        self.max_skips = ex.max_skips
        self.normalize = normalize
        self.features = features
        self.rules = batched_rules(self.mech, self.env_spec)
        self.batched = batched_agents(self.mech_name)
        if self.encoding.name == "menu" and self.batched.menu is None:
            raise ParameterError(
                "encoding", f"'{self.mech_name}' has no batched menu; use encoding='multidiscrete'"
            )
        n = self.env_spec.n
        self.n = n
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
        if contexts is not None:
            base: ContextSource = context_source(contexts=contexts)
        elif self.raw.generator is None:
            base = context_source(context=self.raw.context)
        else:
            base = context_source(generator=self.raw.generator)
        self.sources = [self._aligned(base, g) for g in self.groups]
        self._opponents_spec: Any = opponents
        self._scripted_spec: Any = scripted
        self.opponents = resolve_batched_players(opponents, range(n), self.mech_name, self.env_spec)
        self.scripted = resolve_batched_players(scripted, range(n), self.mech_name, self.env_spec)
        self.rng = np.random.default_rng(seed)
        self._pending_seed: int | None = None
        self._actions: np.ndarray | None = None
        self.ctx: ContextBatch | None = None
        self.state: BatchState | None = None
        self.episodes = 0
        self.composer: Composer | None = None
        if self.encoding.name in ("factored", "continuous"):
            self.composer = Composer(self.encoding.plan, int(n_envs))  # type: ignore[attr-defined]
            action_space: spaces.Space = self.encoding.action_space
        elif self.encoding.name == "menu":
            action_space = spaces.Discrete(self.encoding.K)
        else:
            action_space = spaces.MultiDiscrete(self.rules.layout.sizes)
        self.render_mode = None
        super().__init__(int(n_envs), self.builder.space, action_space)

    def _aligned(self, base: ContextSource, group: Group) -> ContextSource:
        if not self.align_coalitions or len(group) == 1:
            return base
        if isinstance(base, FamilySampler):
            return FamilySampler(base.family.map(lambda c: align_context(c, group)))
        return AlignedSource(base, group)

    # -- configuration -------------------------------------------------------------------------
    def set_opponents(self, opponents: Any) -> None:
        """Replace the non-learners' policies (from the next decision on)."""
        self.opponents = resolve_batched_players(
            opponents, range(self.n), self.mech_name, self.env_spec
        )
        self._opponents_spec = opponents

    def meta(self) -> dict[str, Any]:
        """What a saved model needs to be played again (the exact env's metadata)."""
        return {**self.exact.meta(), "n_envs": self.num_envs}

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
        self.exact.close()

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

    def _new_episodes(self, idx: np.ndarray) -> None:
        """Fresh contexts and initial states for slots ``idx`` (learner drawn for self-play)."""
        k = len(idx)
        if len(self.groups) > 1:
            self.slot_group[idx] = self.rng.integers(len(self.groups), size=k)
        groups = self.slot_group[idx]
        fresh: ContextBatch | None = None
        for gi in np.unique(groups):
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
