"""TorchRL: a native batched multi-agent env over mechgym's batched path.

:class:`BatchedMechanismEnv` is a TorchRL ``EnvBase`` with ``batch_size=[B]``: ``B`` episodes
of a mechanism run at once on the batched rules (numpy, float64 money), and every call
takes and returns TensorDicts, so TorchRL (and BenchMARL-style) multi-agent training runs at
batch speed rather than one AEC step at a time::

    env = BatchedMechanismEnv("best_belief", batch_size=1024, generate="uniform:n=3,m=2,cap=10")
    td = env.reset()
    td["player_0", "observation"]   # (1024, 1, obs_size) float32
    td["player_0", "action_mask"]   # (1024, 1, K) bool: the menu entries open here
    td["player_0", "mask"]          # (1024, 1) bool: whether the agent acts now
    td = env.rand_action(td)        # masked random actions (the spec's mask is kept current)
    td = env.step(td)

It is built on the batched multi-agent API (:class:`~mechgym.envs.batched_api.BatchedEnv`):
the same rules, context sources, seeded generator, observation vectors and action checks.

* **One step, one decision node.** Every :meth:`step` resolves the pending decision node of
  every live episode; the chance nodes that follow are drawn inside it. Episodes sit in
  different phases; ``(group, "mask")`` says which agents act in which episode. The actions
  of agents that do not act are ignored, and their ``action_mask`` allows only entry 0 (the
  no-op), as in the PettingZoo envs, so masked distributions are always defined.
* **Groups** (``group_map``). By default a coalition of the contexts is a group
  (``"coalition_0_1"``) and every other player its own group (``"player_2"``); TorchRL's
  :class:`~torchrl.envs.utils.MarlGroupMapType` (``ALL_IN_ONE_GROUP`` → ``"agents"``,
  ``ONE_GROUP_PER_AGENT``) and explicit ``{group: [agent, ...]}`` maps are accepted too.
  ``coalitions=[(0, 1)]`` makes those players one shared-reward coalition in every context.
* **Learners and background.** Only the groups in ``learners`` (default: all) appear in the
  specs; the other players follow batched scripted policies (``background``:
  ``"predicted"``, ``"random"``, a named deviation, or a mapping per player).
* **Actions** (``action_encoding``). ``"menu"`` (default): ``Categorical(K)`` per agent over
  the mechanism's batched menus, entry ``k`` being the ``k``-th entry of the exact menu (the
  PettingZoo ``action_encoding="menu"``). ``"multidiscrete"``: the array layout as a
  ``MultiCategorical`` with the flat mask over its fields. ``"factored"``: a move is a
  sequence of sub-decisions (:mod:`mechgym.envs.engine.factored`), one per :meth:`step`, each
  a ``Categorical(D)`` with its exact mask; an agent's observation ends with its own move so
  far, and ``(group, "mask")`` is true while it has a sub-decision pending; the node resolves
  once every acting agent's move is complete. ``"continuous"``: as ``"factored"``, plus
  ``(group, "box")`` ``(B, g, 1)`` in ``[0, 1]``, read instead of the entry where
  ``(group, "reads_box")`` is true (amount sub-decisions). Illegal actions of acting agents
  raise the typed :class:`~mechgym.envs.engine.errors.OutOfSpaceError` or
  :class:`~mechgym.envs.engine.errors.IllegalActionError`, and the env is left as it was.
* **Rewards** ``(group, "reward")`` ``(B, g, 1)`` float32 arrive at the step an episode ends:
  utilities, or coalition totals for members of a shared-reward coalition. Group and root
  ``done`` / ``terminated`` are set then; ``truncated`` is never set (episodes are finite).
* **Resets.** Ended episodes stay ended until :meth:`reset` with a partial ``"_reset"`` mask
  starts fresh ones in those slots, on fresh contexts (what TorchRL's rollouts and collectors
  do through ``step_and_maybe_reset``).
* **Recording** (``record=True``): the actions, masks and chance draws since the last full
  reset are kept, and :meth:`BatchedMechanismEnv.recording` returns them as a
  :class:`~mechgym.envs.engine.batched.Rollout` for
  :func:`~mechgym.envs.engine.batched.replay_exact` (the exact engine on the same actions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, MultiCategorical, Unbounded
from torchrl.envs import EnvBase
from torchrl.envs.utils import MarlGroupMapType, check_marl_grouping

from mechgym.agents.batched import batched_agents
from mechgym.envs.batched_api import (
    BatchedEnv,
    ContextSource,
    private_features,
    put_state,
    static_partition,
    take_state,
)
from mechgym.envs.engine.batched import (
    BatchState,
    ContextBatch,
    Rollout,
    check_actions,
)
from mechgym.envs.engine.errors import (
    ContextError,
    IllegalActionError,
    OutOfSpaceError,
    ParameterError,
)
from mechgym.envs.engine.factored import FACTORED_ENCODINGS
from mechgym.envs.engine.observation import state_head
from mechgym.envs.engine.spaces import canonical_encoding
from mechgym.envs.pettingzoo.aec import OBS_BOUND
from mechgym.training.batched_obs import QUESTION_SIZE, learner_observations

__all__ = ["ACTION_ENCODINGS", "BatchedMechanismEnv", "PartitionSource", "static_partition"]

ACTION_ENCODINGS = ("menu", "multidiscrete", "factored", "continuous")
"""The action encodings, named as the PettingZoo envs' ``action_encoding``."""

Partition = tuple[tuple[int, ...], ...]


# -- coalitions ------------------------------------------------------------------------------
class PartitionSource:
    """Contexts of ``source`` with ``partition`` as their coalitions, rewards shared.

    Parameters
    ----------
    source : ContextSource
        Where the contexts come from.
    partition : tuple of tuples of int
        A partition of the players (every player in exactly one block).
    """

    def __init__(self, source: ContextSource, partition: Partition) -> None:
        self.source = source
        self.partition = partition
        n = sum(len(b) for b in partition)
        self.labels = np.zeros(n, dtype=np.int64)
        for block in partition:
            self.labels[list(block)] = min(block)

    def sample(self, B: int, rng: np.random.Generator) -> ContextBatch:
        """``B`` contexts of the source, relabelled (their exact contexts are dropped)."""
        ctx = self.source.sample(B, rng)
        ctx.coalition = np.broadcast_to(self.labels, (B, len(self.labels))).copy()
        ctx.shared_reward = np.ones(B, dtype=bool)
        ctx.contexts = None
        return ctx


def _as_partition(coalitions: Sequence[Sequence[int]], n: int) -> Partition:
    """Blocks given by the user, completed with singletons; checked to be disjoint."""
    seen: set[int] = set()
    blocks: list[tuple[int, ...]] = []
    for raw in coalitions:
        block = tuple(sorted(int(i) for i in raw))
        if not block:
            raise ParameterError("coalitions", "a coalition needs at least one player")
        bad = [i for i in block if not 0 <= i < n]
        if bad:
            raise ParameterError("coalitions", f"players {bad} are not in 0..{n - 1}")
        if seen & set(block) or len(set(block)) != len(block):
            raise ParameterError("coalitions", f"player in two coalitions: {list(coalitions)}")
        seen |= set(block)
        blocks.append(block)
    blocks += [(i,) for i in range(n) if i not in seen]
    return tuple(sorted(blocks))


def _group_name(block: tuple[int, ...]) -> str:
    if len(block) == 1:
        return f"player_{block[0]}"
    return "coalition_" + "_".join(str(i) for i in block)


# -- the env ---------------------------------------------------------------------------------
class BatchedMechanismEnv(EnvBase):
    """``B`` episodes of a mechanism as a TorchRL multi-agent env (see the module docstring).

    Parameters
    ----------
    mechanism : str
        A catalogue name (``"best_belief"``, ``"vcg"``, ...).
    batch_size : int
        ``B``, the number of episodes run at once (the env's ``batch_size`` is ``[B]``).
    generate : str or generator, optional
        Contexts from a generator spec such as ``"uniform:n=3,m=2,cap=10"`` (batched sampler
        when one exists) or an exact generator object.
    context : context or str, optional
        One fixed context (or the name of a worked example).
    contexts : sequence of contexts, optional
        A fixed family, drawn uniformly per episode.
    action_encoding : {"menu", "multidiscrete"}
        Menu entries (``Categorical(K)``) or the array layout (``MultiCategorical``).
    group_map : None, MarlGroupMapType or mapping of str to list of str
        ``None``: a group per coalition (needs coalitions that are the same in every
        context, or ``coalitions``). Otherwise TorchRL's group map types or an explicit map
        over the agents ``player_0 ... player_{n-1}``.
    coalitions : sequence of sequences of int, optional
        Players made one shared-reward coalition in every context (others stay alone).
    learners : sequence of str, optional
        Groups that act through the env (default: all groups).
    background : str or mapping, optional
        Batched scripted policy of the players outside ``learners``: ``"predicted"``,
        ``"random"``, a named deviation, a batched policy object, or ``{player: ...}``.
    return_state : bool
        Add the root key ``"state"``: the PettingZoo envs' global ``state()`` vector per
        episode (for centralised critics).
    record : bool
        Keep what :meth:`recording` needs (actions, masks and chance draws since the last
        full reset).
    value_cap, price_cap : int, optional
        Sizes of the array layout. With menus, ``price_cap`` defaults to twice the value cap,
        so that every menu offer is on the layout's price grid (as the vectorised learner
        env does).
    seed : int, optional
        Seeds the env's generator (contexts, chance, scripted players).
    device : torch device
        Where the tensors live (the rules run on the CPU).
    constants : mapping, optional
        Mechanism constants (``{"eps": "1/10"}``, ...).
    price_levels, price_grid : int, str
        Amount grids of ``"factored"`` (see :mod:`mechgym.envs.engine.factored`).
    features : bool
        Append the pending-question features to each observation (asked, the agent's own
        value of the offered item, its price, their difference: own information and the
        public state only), as the SB3 learner envs' ``features=True`` do.

    Attributes
    ----------
    group_map : dict of str to list of str
        Every group and its agents (scripted groups included).
    learners : list of str
        The groups in the specs, in ``group_map`` order.
    group_players : dict of str to list of int
        Player indices of each learning group, in the order of the group's agent axis.
    scripted_players : list of int
        Players driven by ``background``.
    K : int
        Menu size (``"menu"``) or flat mask size (``"multidiscrete"``): the last axis of
        ``action_mask``.
    obs_size, state_size : int
        Lengths of an agent's observation and of the global state.
    api : BatchedEnv
        The numpy batched API underneath (rules, contexts, state, generator).
    """

    def __init__(
        self,
        mechanism: str,
        batch_size: int,
        generate: Any = None,
        *,
        context: Any = None,
        contexts: Sequence[Any] | None = None,
        action_encoding: str = "menu",
        group_map: MarlGroupMapType | Mapping[str, Sequence[str]] | None = None,
        coalitions: Sequence[Sequence[int]] | None = None,
        learners: Sequence[str] | None = None,
        background: Any = "predicted",
        record: bool = False,
        return_state: bool = False,
        value_cap: int | None = None,
        price_cap: int | None = None,
        seed: int | None = None,
        device: torch.device | str = "cpu",
        constants: Mapping[str, Any] | None = None,
        price_levels: int = 16,
        price_grid: str = "linear",
        features: bool = False,
    ) -> None:
        action_encoding = canonical_encoding(action_encoding)
        if action_encoding not in ACTION_ENCODINGS:
            raise ParameterError(
                "action_encoding",
                f"{action_encoding!r} is not one of {', '.join(ACTION_ENCODINGS)}",
            )
        consts = dict(constants or {})

        def build(cap: int | None) -> BatchedEnv:
            return BatchedEnv(
                mechanism,
                batch_size,
                generate,
                context=context,
                contexts=contexts,
                auto_reset=False,
                value_cap=value_cap,
                price_cap=cap,
                seed=seed,
                **consts,
            )

        api = build(price_cap)
        if action_encoding == "menu" and price_cap is None:
            from mechgym.agents.menus import menu_grid

            wide = menu_grid(api.spec.price_cap, api.spec.value_cap)
            if api.spec.price_cap < wide:
                api = build(wide)
        self.api = api
        self.mechanism_name = mechanism
        self.action_encoding = action_encoding
        self.rules = api.rules
        self.layout = api.layout
        n = api.spec.n
        self.n = n
        B = api.B
        super().__init__(device=device, batch_size=torch.Size([B]))

        # coalitions and groups
        if coalitions is not None:
            partition = _as_partition(coalitions, n)
            api.source = PartitionSource(api.source, partition)
        self.group_map = self._resolve_groups(group_map, static_partition(api.source, n))
        if learners is None:
            learners = list(self.group_map)
        elif isinstance(learners, str):
            learners = [learners]
        unknown = [g for g in learners if g not in self.group_map]
        if unknown or not learners:
            raise ParameterError(
                "learners",
                f"learners must name groups among {list(self.group_map)}, got {list(learners)}",
            )
        self.learners = [g for g in self.group_map if g in learners]
        index = {a: i for i, a in enumerate(api.possible_agents)}
        self.group_players = {g: [index[a] for a in self.group_map[g]] for g in self.learners}
        learning = sorted(p for g in self.learners for p in self.group_players[g])
        self.learning_players = learning
        self.is_learner = np.zeros(n, dtype=bool)
        self.is_learner[learning] = True
        scripted = [p for p in range(n) if p not in learning]
        self.scripted_players = scripted
        self.background: dict[int, Any] = {}
        if scripted:
            from mechgym.training.batched_obs import resolve_batched_players

            self.background = resolve_batched_players(background, scripted, mechanism)

        # menus
        self.menus: Any = None
        self._menu_fn: Any = None
        self.factored: Any = None
        if action_encoding in FACTORED_ENCODINGS:
            from mechgym.envs.batched_api import FactoredDriver

            self.factored = FactoredDriver(
                self.rules, B, action_encoding, price_levels, price_grid, learning
            )
            self.K = int(self.factored.plan.D)
        elif action_encoding == "menu":
            from mechgym.agents.menus import menu_table

            self.menus = menu_table(api.mech, api.spec)
            self._menu_fn = batched_agents(mechanism).menu
            if self._menu_fn is None:
                raise ParameterError(
                    "action_encoding", f"'{mechanism}' has no batched menu; use 'multidiscrete'"
                )
            self.K = int(self.menus.K)
        else:
            self.K = int(self.layout.mask_size)
        self.return_state = bool(return_state)
        phases = len(self.rules.phases)
        self.state_size = phases + n
        self.state_size += n * int(api.context_class.private_size(n, api.spec.m))
        self.state_size += n * int(api.mech.public_size(api.spec))
        self.obs_size = int(api.observation_spaces[api.possible_agents[0]]["observation"].shape[1])
        self.features = bool(features)
        if self.features:
            self.obs_size += QUESTION_SIZE
        if self.factored is not None:
            self.obs_size += self.factored.plan.feature_size
        self._make_specs()

        self.record = bool(record)
        self._log: dict[str, Any] | None = None
        self._obs = np.zeros((B, n, self.obs_size), dtype=np.float32)
        self._state = np.zeros((B, self.state_size if self.return_state else 0), np.float32)
        self._amask = np.zeros((B, n, self.K), dtype=bool)
        self._menu_acts = np.zeros((B, n, self.K if self.menus else 0, len(self.layout)), np.int64)
        self._layout_masks: np.ndarray | None = None

    # -- construction ----------------------------------------------------------------------
    def _resolve_groups(self, group_map: Any, partition: Partition | None) -> dict[str, list[str]]:
        agents = list(self.api.possible_agents)
        if group_map is None:
            if partition is None:
                raise ParameterError(
                    "group_map",
                    "the contexts' coalitions vary from one context to the next; pass "
                    "coalitions=[...] or a group_map (e.g. MarlGroupMapType.ONE_GROUP_PER_AGENT)",
                )
            out = {_group_name(b): [agents[i] for i in b] for b in partition}
        elif isinstance(group_map, MarlGroupMapType):
            out = dict(group_map.get_group_map(agents))
        elif isinstance(group_map, Mapping):
            out = {str(g): [str(a) for a in members] for g, members in group_map.items()}
        else:
            raise ParameterError("group_map", f"cannot read a group map from {group_map!r}")
        try:
            check_marl_grouping(out, agents)
        except (ValueError, KeyError) as err:
            raise ParameterError("group_map", str(err)) from None
        return out

    def _make_specs(self) -> None:
        B = self.batch_size[0]
        dev = self.device
        L = len(self.layout)
        obs, act, rew = {}, {}, {}
        flags = {
            k: Categorical(2, shape=(B, 1), dtype=torch.bool, device=dev)
            for k in ("done", "terminated", "truncated")
        }
        done: dict[str, Any] = dict(flags)
        for g in self.learners:
            k = len(self.group_players[g])
            shape = (B, k)
            extra: dict[str, Any] = {}
            if self.menus is not None or self.factored is not None:
                action: Any = Categorical(self.K, shape=shape, dtype=torch.int64, device=dev)
                if self.action_encoding == "continuous":
                    extra["box"] = Bounded(
                        0.0, 1.0, shape=(B, k, 1), dtype=torch.float32, device=dev
                    )
            else:
                action = MultiCategorical(
                    torch.as_tensor(self.layout.sizes, dtype=torch.int64),
                    shape=(B, k, L),
                    dtype=torch.int64,
                    device=dev,
                )
            act[g] = Composite({"action": action, **extra}, shape=shape)
            obs[g] = Composite(
                {
                    "observation": Bounded(
                        -OBS_BOUND,
                        OBS_BOUND,
                        shape=(B, k, self.obs_size),
                        dtype=torch.float32,
                        device=dev,
                    ),
                    "action_mask": Categorical(
                        2, shape=(B, k, self.K), dtype=torch.bool, device=dev
                    ),
                    "mask": Categorical(2, shape=shape, dtype=torch.bool, device=dev),
                    **(
                        {"reads_box": Categorical(2, shape=shape, dtype=torch.bool, device=dev)}
                        if self.action_encoding == "continuous"
                        else {}
                    ),
                },
                shape=shape,
            )
            rew[g] = Composite(
                {"reward": Unbounded(shape=(B, k, 1), dtype=torch.float32, device=dev)},
                shape=shape,
            )
            done[g] = Composite(
                {
                    key: Categorical(2, shape=(B, k, 1), dtype=torch.bool, device=dev)
                    for key in ("done", "terminated", "truncated")
                },
                shape=shape,
            )
        self.full_action_spec = Composite(act, shape=(B,), device=dev)
        if self.return_state:
            obs["state"] = Bounded(
                -OBS_BOUND, OBS_BOUND, shape=(B, self.state_size), dtype=torch.float32, device=dev
            )
        self.full_observation_spec = Composite(obs, shape=(B,), device=dev)
        self.full_reward_spec = Composite(rew, shape=(B,), device=dev)
        self.full_done_spec = Composite(done, shape=(B,), device=dev)

    # -- TorchRL API -------------------------------------------------------------------------
    def _set_seed(self, seed: int | None) -> None:
        self.api.rng = np.random.default_rng(seed)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        api = self.api
        B = api.B
        reset = self._reset_mask(tensordict)
        if api.state is None or api.ctx is None or reset is None or reset.all():
            api.ctx = api.source.sample(B, api.rng)
            api.state = api.rules.reset(api.ctx, api.rng)
            if self.factored is not None:
                self.factored.begin(api.ctx, api.state)
            if self.record:
                self._log = {
                    "ctx": api.ctx.take(np.arange(B)),
                    "actions": [],
                    "acting": [],
                    "masks": [],
                }
            self._observe(None)
        else:
            idx = np.flatnonzero(reset)
            if len(idx):
                fresh = api.source.sample(len(idx), api.rng)
                api.ctx.put(idx, fresh)
                put_state(api.state, idx, api.rules.reset(fresh, api.rng))
                if self.factored is not None:
                    self.factored.begin(api.ctx, api.state, idx)
                self._log = None
                self._observe(idx)
        return self._output(rewards=None, ended=api.state.done)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        api = self.api
        if api.state is None or api.ctx is None:
            raise OutOfSpaceError("batch", "-", "call reset() before step()")
        ctx, state = api.ctx, api.state
        if self.factored is not None:
            return self._factored_step(tensordict)
        acts = self._decode(tensordict, state)
        scripted_acting = state.acting[:, self.scripted_players] if self.scripted_players else None
        if scripted_acting is not None and scripted_acting.any():
            by_policy: dict[int, list[int]] = {}
            for p in self.scripted_players:
                by_policy.setdefault(id(self.background[p]), []).append(p)
            for players in by_policy.values():
                out = self.background[players[0]].act(api.rules, ctx, state, players, api.rng)
                acts[:, players] = out[:, players]
        if self._log is not None:
            masks = self._layout_masks if self.menus is None else api.rules.masks(state)
            self._log["actions"].append(acts.copy())
            self._log["acting"].append(state.acting.copy())
            self._log["masks"].append(masks)
        was_live = ~state.done
        new = api.rules.step(ctx, state, acts, api.rng)
        if self._log is None:
            new.chance = []  # the log serves replay only; it would grow without bound
        api.state = new
        ended = was_live & new.done
        rewards = np.zeros((api.B, self.n), dtype=np.float64)
        if ended.any():
            rewards[ended] = api.rules.rewards(ctx, new)[ended]
        self._observe(None)
        return self._output(rewards=rewards, ended=new.done)

    def _factored_step(self, tensordict: TensorDictBase) -> TensorDictBase:
        """One sub-decision of every composing learner; complete nodes resolve (with the
        scripted players' actions) on the batched rules."""
        api, fd = self.api, self.factored
        ctx, state = api.ctx, api.state
        assert ctx is not None and state is not None
        B, n = api.B, self.n
        choices = np.zeros((B, n), dtype=np.int64)
        box = np.zeros((B, n), dtype=np.float64)
        comp = fd.composing()
        for g in self.learners:
            players = self.group_players[g]
            a = tensordict.get((g, "action"), None)
            if a is None:
                if comp[:, players].any():
                    raise OutOfSpaceError(g, self._phase_name(state), "no actions given")
                continue
            a = a.detach().cpu().numpy()
            if a.shape != (B, len(players)):
                raise OutOfSpaceError(
                    g, self._phase_name(state), f"actions must have shape {(B, len(players))}"
                )
            choices[:, players] = a
            if self.action_encoding == "continuous":
                x = tensordict.get((g, "box"), None)
                if x is not None:
                    box[:, players] = x.detach().cpu().numpy().reshape(B, len(players))
        choices = np.where(comp, choices, 0)
        fd.check(state, choices, box, self.learning_players)
        fd.apply(choices, box)
        ready = fd.ready(state)
        was_live = ~state.done
        if len(ready):
            sub, sctx = take_state(state, ready), ctx.take(ready)
            acts = fd.actions(ready)
            acts[~sub.acting] = 0
            if self.scripted_players and sub.acting[:, self.scripted_players].any():
                by_policy: dict[int, list[int]] = {}
                for p in self.scripted_players:
                    by_policy.setdefault(id(self.background[p]), []).append(p)
                for players in by_policy.values():
                    out = self.background[players[0]].act(api.rules, sctx, sub, players, api.rng)
                    acts[:, players] = out[:, players]
            masks = api.rules.masks(sub)
            names = np.array([*self.rules.phases, "done"], dtype=object)[sub.phase]
            check_actions(self.layout, masks, acts, sub.acting, names)
            if self._log is not None:
                full = np.zeros((B, n, len(self.layout)), dtype=np.int64)
                full[ready] = acts
                acting = np.zeros((B, n), dtype=bool)
                acting[ready] = sub.acting
                fmasks = np.zeros((B, n, self.layout.mask_size), dtype=np.int8)
                fmasks[ready] = masks
                self._log["actions"].append(full)
                self._log["acting"].append(acting)
                self._log["masks"].append(fmasks)
            new = api.rules.step(sctx, sub, acts, api.rng)
            if self._log is not None:
                for c in new.chance:
                    draw = np.full(B, -1, dtype=np.int64)
                    draw[ready] = c
                    state.chance.append(draw)
            put_state(state, ready, new)
            fd.begin(ctx, state, ready)
        ended = was_live & state.done
        rewards = np.zeros((B, n), dtype=np.float64)
        if ended.any():
            rewards[ended] = api.rules.rewards(ctx, state)[ended]
        self._observe(None)
        return self._output(rewards=rewards, ended=state.done)

    # -- helpers -----------------------------------------------------------------------------
    def _reset_mask(self, tensordict: TensorDictBase | None) -> np.ndarray | None:
        if tensordict is None:
            return None
        r = tensordict.get("_reset", None)
        if r is None:
            parts = [tensordict.get((g, "_reset"), None) for g in self.learners]
            parts = [p.reshape(self.batch_size[0], -1).any(-1) for p in parts if p is not None]
            if not parts:
                return None
            r = torch.stack(parts, -1).any(-1)
        return r.reshape(self.batch_size[0]).cpu().numpy().astype(bool)

    def _decode(self, tensordict: TensorDictBase, state: BatchState) -> np.ndarray:
        """``(B, n, L)`` layout actions of the learners (zeros elsewhere), checked."""
        B, L = self.api.B, len(self.layout)
        acts = np.zeros((B, self.n, L), dtype=np.int64)
        rows = np.arange(B)
        for g in self.learners:
            players = self.group_players[g]
            a = tensordict.get((g, "action"), None)
            if a is None:
                if state.acting[:, players].any():
                    raise OutOfSpaceError(g, self._phase_name(state), "no actions given")
                continue
            a = a.detach().cpu().numpy()
            if self.menus is None:
                if a.shape != (B, len(players), L):
                    raise OutOfSpaceError(
                        g,
                        self._phase_name(state),
                        f"actions must have shape {(B, len(players), L)}",
                    )
                acts[:, players] = a
                continue
            if a.shape != (B, len(players)):
                raise OutOfSpaceError(
                    g, self._phase_name(state), f"menu actions must have shape {(B, len(players))}"
                )
            for j, p in enumerate(players):
                k = a[:, j].astype(np.int64)
                acting = state.acting[:, p]
                outside = acting & ((k < 0) | (k >= self.K))
                if outside.any():
                    b = int(np.flatnonzero(outside)[0])
                    raise OutOfSpaceError(
                        f"player_{p}",
                        self._phase_name(state, b),
                        f"episode {b}: menu entry {int(k[b])} is outside 0..{self.K - 1}",
                    )
                kk = np.clip(k, 0, self.K - 1)
                masked = acting & ~self._amask[rows, p, kk]
                if masked.any():
                    b = int(np.flatnonzero(masked)[0])
                    raise IllegalActionError(
                        f"player_{p}",
                        self._phase_name(state, b),
                        f"episode {b}: menu entry {int(k[b])} is masked here",
                    )
                acts[:, p] = np.where(acting[:, None], self._menu_acts[rows, p, kk], 0)
        if self.menus is None:
            assert self._layout_masks is not None
            names = np.array([*self.rules.phases, "done"], dtype=object)[state.phase]
            check_actions(
                self.layout,
                self._layout_masks,
                acts,
                state.acting & self.is_learner[None, :],
                names,
            )
            acts[~state.acting] = 0  # the rules read only the acting players' rows
        return acts

    def teacher_actions(
        self, policy: Any, rng: np.random.Generator
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """What a batched ``policy`` (``act(rules, ctx, state, players, rng)``) plays for the
        learners at the current state, in the env's action encoding, per group: the actions,
        whether each acting agent can follow it (``ok``) and whether it does so exactly
        (``exact``). A menu must hold the move, open; the layout holds every legal move; a
        ``factored`` sub-decision builds toward the move (:meth:`Composer.entries_toward`:
        exact where the grid has the value, else its nearest level). The policy must play
        the same move at every sub-decision of a node (the scripted agents do).

        Raises
        ------
        ParameterError
            For the ``continuous`` encoding (its amounts are read from a box).
        """
        if self.action_encoding == "continuous":
            raise ParameterError(
                "action_encoding",
                "continuous amounts are read from a box, not chosen among entries; imitate "
                "through the menu, multidiscrete or factored encoding",
            )
        api = self.api
        assert api.ctx is not None and api.state is not None
        state = api.state
        players = sorted(p for g in self.learners for p in self.group_players[g])
        rows = policy.act(api.rules, api.ctx, state, players, rng)  # (B, n, L)
        B = api.B
        acts: dict[str, torch.Tensor] = {}
        ok: dict[str, torch.Tensor] = {}
        exact: dict[str, torch.Tensor] = {}
        fd = self.factored
        for g in self.learners:
            gp = self.group_players[g]
            if fd is not None:
                comp = fd.composing()[:, gp]
                a = np.zeros((B, len(gp)), dtype=np.int64)
                hit = np.ones((B, len(gp)), dtype=bool)
                for j, p in enumerate(gp):
                    b = np.flatnonzero(comp[:, j])
                    a[b, j], hit[b, j] = fd.composer.entries_toward(b * self.n + p, rows[b, p])
                acts[g] = torch.from_numpy(a)
                ok[g] = torch.ones((B, len(gp)), dtype=torch.bool)
                exact[g] = torch.from_numpy(hit)
                continue
            acting = state.acting[:, gp]
            if self.menus is None:
                masks = self._layout_masks[:, gp] if self._layout_masks is not None else None
                pos = self.layout.offsets[:-1] + np.clip(rows[:, gp], 0, self.layout.sizes - 1)
                fine = np.ones((B, len(gp)), dtype=bool)
                if masks is not None:
                    fine = np.take_along_axis(masks, pos, axis=2).astype(bool).all(axis=2)
                a = np.where(acting[:, :, None], rows[:, gp], 0)
                acts[g] = torch.from_numpy(a.astype(np.int64))
                ok[g] = exact[g] = torch.from_numpy(fine | ~acting)
                continue
            menu = self._menu_acts[:, gp]  # (B, k, K, L)
            same = (menu == rows[:, gp, None, :]).all(axis=3) & self._amask[:, gp]
            found = same.any(axis=2)
            k = np.where(found, same.argmax(axis=2), 0)
            acts[g] = torch.from_numpy(np.where(acting, k, 0).astype(np.int64))
            ok[g] = exact[g] = torch.from_numpy(found | ~acting)
        return acts, ok, exact

    def _phase_name(self, state: BatchState, b: int = 0) -> str:
        ph = int(state.phase[b])
        return self.rules.phases[ph] if ph >= 0 else "done"

    def _observe(self, idx: np.ndarray | None) -> None:
        """Refresh the learners' observations, masks and menus (rows ``idx``, or all)."""
        api = self.api
        assert api.ctx is not None and api.state is not None
        if idx is None:
            ctx, state = api.ctx, api.state
            rows = np.arange(api.B)
        else:
            ctx, state = api.ctx.take(idx), take_state(api.state, idx)
            rows = idx
        fd = self.factored
        comp = None if fd is None else fd.composing()[rows]
        for p in self.learning_players:
            acting = None if comp is None else comp[:, p]
            obs = learner_observations(api.rules, ctx, state, p, self.features, acting)
            if fd is not None:
                obs = np.concatenate([obs, fd.features(p)[rows]], axis=1)
            self._obs[rows, p] = obs
        if self.return_state:
            self._state[rows] = self._state_vectors(ctx, state)
        if fd is not None:
            self._amask[rows] = fd.action_masks()[rows] != 0
            return
        if self.menus is not None:
            self._refresh_menus(ctx, state, rows)
            return
        layout_masks = api.rules.masks(state)
        self._amask[rows[:, None], self.learning_players] = (
            layout_masks[:, self.learning_players] != 0
        )
        if idx is None:
            self._layout_masks = layout_masks
        else:
            assert self._layout_masks is not None
            self._layout_masks[idx] = layout_masks

    def _state_vectors(self, ctx: ContextBatch, state: BatchState) -> np.ndarray:
        """``(B, state_size)``: the AEC env's ``state()`` per episode (at a node's start)."""
        n = self.n
        parts = [state_head(state.phase, state.acting, len(self.rules.phases))]
        parts += [private_features(ctx, i) for i in range(n)]
        parts += [self.rules.public_features(state, i) for i in range(n)]
        out = np.concatenate(parts, axis=1).astype(np.float32)
        return np.clip(out, -OBS_BOUND, OBS_BOUND, out=out)

    def _refresh_menus(self, ctx: ContextBatch, state: BatchState, rows: np.ndarray) -> None:
        """Menus and menu masks of the learners at ``rows`` (``ctx``/``state`` are those rows);
        menus are built only where a learner acts."""
        from mechgym.training.batched_obs import padded_menu

        for p in self.learning_players:
            self._amask[rows, p] = False
            self._amask[rows, p, 0] = True  # the no-op of an agent that does not act
        busy = np.flatnonzero(state.acting[:, self.learning_players].any(axis=1))
        if not len(busy):
            return
        if len(busy) < len(rows):
            ctx, state, rows = ctx.take(busy), take_state(state, busy), rows[busy]
        for p in self.learning_players:
            acting = state.acting[:, p]
            if not acting.any():
                continue
            menu, valid = padded_menu(self._menu_fn, self.api.rules, ctx, state, p, self.K)
            mask = valid & acting[:, None]
            empty = acting & ~mask.any(axis=1)
            if empty.any():
                b = int(np.flatnonzero(empty)[0])
                raise ParameterError(
                    "price_cap",
                    f"player_{p} has no menu entry on the price grid in phase "
                    f"'{self._phase_name(state, b)}'; widen price_cap",
                )
            mask[~acting, 0] = True
            self._amask[rows, p] = mask
            self._menu_acts[rows, p] = menu

    def _output(self, rewards: np.ndarray | None, ended: np.ndarray) -> TensorDictBase:
        api = self.api
        assert api.state is not None
        B = api.B
        dev = self.device
        done = torch.from_numpy(ended.reshape(B, 1).copy()).to(dev)
        out: dict[str, Any] = {
            "done": done,
            "terminated": done.clone(),
            "truncated": torch.zeros_like(done),
        }
        if self.return_state:
            out["state"] = torch.from_numpy(self._state.copy()).to(dev)
        for g in self.learners:
            ps = self.group_players[g]
            k = len(ps)
            mask = torch.from_numpy(self._amask[:, ps].copy()).to(dev)
            gdone = done.unsqueeze(1).expand(B, k, 1).clone()
            acting = api.state.acting if self.factored is None else self.factored.composing()
            sub: dict[str, Any] = {
                "observation": torch.from_numpy(self._obs[:, ps].copy()).to(dev),
                "action_mask": mask,
                "mask": torch.from_numpy(acting[:, ps].copy()).to(dev),
                "done": gdone,
                "terminated": gdone.clone(),
                "truncated": torch.zeros_like(gdone),
            }
            if self.action_encoding == "continuous":
                box = self.factored.reads_box()[:, ps].copy()
                sub["reads_box"] = torch.from_numpy(box).to(dev)
            if rewards is not None:
                r = rewards[:, ps].astype(np.float32).reshape(B, k, 1)
                sub["reward"] = torch.from_numpy(r).to(dev)
            out[g] = TensorDict(sub, batch_size=(B, k), device=dev)
            self.full_action_spec[g, "action"].update_mask(mask.clone())
        return TensorDict(out, batch_size=(B,), device=dev)

    # -- extras ------------------------------------------------------------------------------
    def recording(self) -> Rollout:
        """The episodes since the last full reset, for
        :func:`~mechgym.envs.engine.batched.replay_exact` (needs ``record=True`` and no
        partial reset since; meaningful once every episode has ended)."""
        if not self.record:
            raise ParameterError("record", "the env was built with record=False")
        if self._log is None or self.api.state is None:
            raise ContextError(
                "recording", "nothing recorded since the last full reset (a partial reset drops it)"
            )
        log = self._log
        return Rollout(log["ctx"], log["actions"], log["acting"], log["masks"], self.api.state)
