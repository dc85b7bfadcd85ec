"""Ray RLlib (the ``rllib`` extra): mechgym mechanisms on RLlib's new API stack.

* :class:`MechanismMultiAgentEnv` — one episode at a time on the exact path (the PettingZoo
  AEC env underneath): turn-based, each acting agent observes ``{"observations",
  "action_mask"}`` (the learner observation of :mod:`mechgym.training.encodings` and the
  mask of its menu) and answers with a menu index.
* :class:`BatchedMultiAgentEnv` — RLlib's vectorised multi-agent env
  (``VectorMultiAgentEnv``) over the batched path: ``num_envs_per_env_runner`` episodes
  advance one decision node per ``step`` on the batched rules, all the players acting at a
  node observing at once. :class:`BatchedEnvRunner` is the env runner that builds it
  (Ray 2.60's ``MultiAgentEnvRunner`` otherwise wraps single envs in a Python loop).
* Both envs share spaces, menus and observations (the batched builders reproduce the exact
  ones), so a policy trained on either plays on the other and is evaluated exactly
  (:class:`ModulePolicy`). Rewards arrive at the end of an episode: each player's utility,
  or its coalition's total where the context shares rewards. Players outside ``learners``
  are played inside the env by scripted policies (``opponents``).
* :class:`MaskedPPOTorchRLModule` is RLlib's default PPO module with the mask applied to the
  logits, so every sampled action is legal; :func:`ppo_config` builds PPO with one such
  module per player or per coalition, and sizes ``num_env_runners`` to the CPUs Ray has
  (:func:`size_env_runners`), refusing at once a request the cluster can never meet.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from mechgym.envs.engine.errors import IllegalActionError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.game import Decision, Terminal
from mechgym.envs.pettingzoo.aec import agent_name
from mechgym.envs.pettingzoo.registry import entry
from mechgym.training.encodings import MenuEncoding, ObservationBuilder

INSTALL_HINT = (
    "the rllib backend needs Ray RLlib: install the extra into a virtualenv of its own "
    "(Ray 2.60 pins gymnasium 1.2.2): pip install torch==2.13.0 && pip install -e '.[rllib,train]'"
)

try:
    import ray
    import torch
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import (
        DefaultPPOTorchRLModule,
    )
    from ray.rllib.core.columns import Columns
    from ray.rllib.env.env_context import EnvContext
    from ray.rllib.env.multi_agent_env import MultiAgentEnv
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
    from ray.rllib.env.vector.vector_multi_agent_env import VectorMultiAgentEnv
    from ray.rllib.utils.torch_utils import FLOAT_MIN
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(INSTALL_HINT) from exc

__all__ = [
    "INSTALL_HINT",
    "BatchedEnvRunner",
    "BatchedMultiAgentEnv",
    "MaskedPPOTorchRLModule",
    "MechanismMultiAgentEnv",
    "ModulePolicy",
    "connect",
    "env_config",
    "policy_groups",
    "ppo_config",
    "runner_report",
    "sampling_throughput",
    "size_env_runners",
]

POLICIES = ("player", "coalition")
"""How agents map to policies: one per player, or one per coalition of the contexts."""


# -- what both envs share ------------------------------------------------------------------------
class _Setup:
    """The exact env of a config and what both RLlib envs read from it: menus (encoding),
    observation builders, spaces, learning and scripted players."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.mech_name = str(config.get("mechanism", "best_belief"))
        e = entry(self.mech_name)
        kwargs: dict[str, Any] = dict(config.get("params", {}) or {})
        if config.get("contexts") is not None:
            from mechgym.envs.model.family import ContextFamily

            kwargs["generator"] = ContextFamily(tuple(config["contexts"]))
        elif config.get("example") is not None:
            kwargs["context"] = config["example"]  # a named example or a context
        elif config.get("generate") is not None:
            kwargs["generator"] = config["generate"]
        if config.get("price_cap") is not None:
            kwargs["price_cap"] = int(config["price_cap"])
        # RLlib gives each env runner a worker index; offset the seed so runners differ
        worker = int(getattr(config, "worker_index", 0) or 0)
        self.seed = int(config.get("seed", 0)) + 1000 * worker
        self.raw = e.load_env_module().raw_env(seed=self.seed, action_encoding="menu", **kwargs)
        raw = self.raw
        # the PettingZoo env's own menus: observation summaries and actions read one table
        self.encoding = MenuEncoding(
            self.mech_name, raw.mechanism, raw.spec, e.load_agents(), table=raw.menus
        )
        n = raw.spec.n
        self.n = n
        self.builders = [
            ObservationBuilder(self.encoding, (p,), raw.context_class) for p in range(n)
        ]
        learners = config.get("learners")
        self.learners = sorted({int(p) for p in learners}) if learners else list(range(n))
        bad = [p for p in self.learners if not 0 <= p < n]
        if bad:
            raise ParameterError("learners", f"players {bad} are not in 0..{n - 1}")
        self.scripted = [p for p in range(n) if p not in self.learners]
        self.opponents = config.get("opponents", "predicted")
        self.agents = [agent_name(p) for p in self.learners]
        K = self.encoding.K
        self.observation_spaces = {
            agent_name(p): spaces.Dict(
                {
                    "observations": self.builders[p].space,
                    "action_mask": spaces.Box(0.0, 1.0, shape=(K,), dtype=np.float32),
                }
            )
            for p in self.learners
        }
        self.action_spaces = {a: spaces.Discrete(K) for a in self.agents}


# -- one episode at a time (exact path) ----------------------------------------------------------
class MechanismMultiAgentEnv(MultiAgentEnv):
    """A mechgym mechanism as an RLlib ``MultiAgentEnv`` (menu encoding, one agent per player).

    Parameters
    ----------
    config : dict
        ``mechanism`` (default ``"best_belief"``); ``generate`` (a generator spec),
        ``example`` (a built-in example or a context) or ``contexts`` (a fixed family);
        ``seed`` (default 0), ``params`` (mechanism constants), ``price_cap``,
        ``learners`` (players RLlib drives; default all) and ``opponents`` (who plays the
        others: ``"predicted"``, ``"random"``, a deviation).
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        setup = _Setup(config if config is not None else {})
        self.setup = setup
        self.mech_name = setup.mech_name
        self.raw = setup.raw
        self.encoding = setup.encoding
        self.builders = setup.builders
        self.possible_agents = list(setup.agents)
        self.agents = list(self.possible_agents)
        self.observation_spaces = setup.observation_spaces
        self.action_spaces = setup.action_spaces
        self._learning = set(setup.learners)
        self._sources: dict[int, Any] = {}
        if setup.scripted:
            from mechgym.training.policies import resolve_sources

            self._sources = resolve_sources(
                setup.opponents, setup.scripted, self.mech_name, self.raw.spec
            )
        self._rng = np.random.default_rng(setup.seed)
        self._scripted: dict[int, Any] = {}

    def _obs(self, player: int) -> dict[str, np.ndarray]:
        raw = self.raw
        base = raw.observe(agent_name(player))["observation"]
        if isinstance(raw.node, Decision) and player in raw.node.players:
            obs = self.builders[player].build(raw.context, raw.game_state, player)
            mask = raw.current_mask(agent_name(player))
        else:
            obs = self.builders[player].terminal(base)
            mask = np.zeros(self.encoding.K, dtype=np.int8)
        return {"observations": np.asarray(obs), "action_mask": mask.astype(np.float32)}

    def _play_scripted(self) -> None:
        """Let scripted players act until a learner is selected or the episode ends."""
        raw = self.raw
        while isinstance(raw.node, Decision):
            p = raw._index[raw.agent_selection]
            if p in self._learning:
                return
            raw.step(self._scripted[p].act(raw.mechanism, raw.context, raw.game_state, p))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        for _ in range(1000):
            self.raw.reset(seed=seed)
            seed = None
            self._scripted = {
                p: src(self.raw.context, self._rng) for p, src in self._sources.items()
            }
            self._play_scripted()
            if isinstance(self.raw.node, Decision):
                return self._next(), {}
        raise ParameterError(
            "learners", f"players {sorted(self._learning)} had no decision in 1000 episodes"
        )

    def _next(self) -> dict[str, Any]:
        return {self.raw.agent_selection: self._obs(self.raw._index[self.raw.agent_selection])}

    def step(self, action_dict: dict[str, Any]):
        raw = self.raw
        for action in action_dict.values():
            raw.step(int(action))  # a menu entry of the acting agent
        self._play_scripted()
        if isinstance(raw.node, Terminal):
            exact = raw.exact_rewards()
            rewards = {
                a: float(exact[p]) for p, a in zip(self.setup.learners, self.agents, strict=True)
            }
            obs = {a: self._obs(p) for p, a in zip(self.setup.learners, self.agents, strict=True)}
            done = dict.fromkeys(self.agents, True) | {"__all__": True}
            trunc = dict.fromkeys(self.agents, False) | {"__all__": False}
            return obs, rewards, done, trunc, {}
        obs = self._next()
        # RLlib wants a reward beside every observation of an agent that has acted before
        return obs, dict.fromkeys(obs, 0.0), {"__all__": False}, {"__all__": False}, {}


# -- many episodes per call (batched path) -------------------------------------------------------
class _SlotEnv(MultiAgentEnv):
    """What RLlib's env runner reads of one sub-env of a vector env: agents and spaces."""

    def __init__(self, setup: _Setup) -> None:
        super().__init__()
        self.possible_agents = list(setup.agents)
        self.agents = list(setup.agents)
        self.observation_spaces = setup.observation_spaces
        self.action_spaces = setup.action_spaces


class BatchedMultiAgentEnv(VectorMultiAgentEnv):
    """``num_envs`` episodes of a mechanism on the batched path, as RLlib's vectorised
    multi-agent env (see the module docstring).

    Every :meth:`step` resolves the pending decision node of every episode (the chance nodes
    that follow are drawn inside it); every learning player acting at a node observes at
    once. Ended episodes restart on the next step (RLlib's ``"next_step"`` autoreset), on a
    fresh context.

    Parameters
    ----------
    config : dict
        As :class:`MechanismMultiAgentEnv`.
    num_envs : int
        Episodes run at once.
    """

    def __init__(self, config: Mapping[str, Any] | None = None, num_envs: int = 64) -> None:
        from mechgym.agents.batched import batched_agents
        from mechgym.envs.batched_api import context_source
        from mechgym.envs.engine.batched import batched_rules
        from mechgym.training.batched_obs import BatchedObservationBuilder

        super().__init__()
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ParameterError("num_envs", f"must be an integer >= 1, got {num_envs!r}")
        setup = _Setup(config if config is not None else {})
        self.setup = setup
        raw = setup.raw
        self.mech_name = setup.mech_name
        self.rules = batched_rules(raw.mechanism, raw.spec)
        self.menu_fn = batched_agents(self.mech_name).menu
        if self.menu_fn is None:
            raise ParameterError("mechanism", f"'{self.mech_name}' has no batched menu")
        if raw.generator is None:
            self.source = context_source(context=raw.context)
        else:
            self.source = context_source(generator=raw.generator)
        self.builders = {
            p: BatchedObservationBuilder(setup.builders[p], self.rules) for p in setup.learners
        }
        self.background: dict[int, Any] = {}
        if setup.scripted:
            from mechgym.training.batched_obs import resolve_batched_players

            self.background = resolve_batched_players(
                setup.opponents, setup.scripted, self.mech_name
            )
        self.num_envs = int(num_envs)
        self.K = setup.encoding.K
        self.L = len(self.rules.layout)
        self.learners = list(setup.learners)
        self.agents = list(setup.agents)
        self.envs = [_SlotEnv(setup)] * self.num_envs  # one view serves every slot
        self.single_observation_spaces = setup.observation_spaces
        self.single_action_spaces = setup.action_spaces
        self.single_observation_space = spaces.Dict(setup.observation_spaces)
        self.single_action_space = spaces.Dict(setup.action_spaces)
        self.metadata = {"autoreset_mode": "next_step"}
        self.rng = np.random.default_rng(setup.seed)
        B, n = self.num_envs, setup.n
        self.ctx: Any = None
        self.state: Any = None
        self._ended = np.zeros(B, dtype=bool)
        self._obs = np.zeros((B, n, setup.builders[0].size), dtype=np.float32)
        self._mask = np.zeros((B, n, self.K), dtype=bool)
        self._menu_acts = np.zeros((B, n, self.K, self.L), dtype=np.int64)
        self.is_learner = np.zeros(n, dtype=bool)
        self.is_learner[self.learners] = True

    # -- RLlib's vector API --------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        rows = np.arange(self.num_envs)
        self._start(rows)
        self._ended[:] = False
        return [self._acting_obs(b) for b in rows], [{} for _ in rows]

    def step(self, actions: Sequence[Mapping[str, Any]]):
        from mechgym.envs.batched_api import put_state, take_state

        B = self.num_envs
        if len(actions) != B:
            raise OutOfSpaceError("batch", "-", f"expected {B} action dicts, got {len(actions)}")
        restart = np.flatnonzero(self._ended)
        go = np.flatnonzero(~self._ended)
        if len(restart):
            self._start(restart)
        ended = np.zeros(B, dtype=bool)
        if len(go):
            whole = len(go) == B
            ctx = self.ctx if whole else self.ctx.take(go)
            state = self.state if whole else take_state(self.state, go)
            acts = self._decode(actions, go, state)
            acts = self._scripted_actions(ctx, state, acts)
            new = self.rules.step(ctx, state, acts, self.rng)
            new.chance = []  # the log serves replay only
            new = self._settle(ctx, new)
            if whole:
                self.state = new
            else:
                put_state(self.state, go, new)
            ended[go] = new.done
            self._observe(go[~new.done])
            self._observe_terminal(ctx, new, go)
            rewards = self.rules.rewards(ctx, new)
        obs, rew, term, trunc = [], [], [], []
        pos = {int(b): i for i, b in enumerate(go)}
        for b in range(B):
            if b in restart:
                obs.append(self._acting_obs(b))
                rew.append(dict.fromkeys(self.agents, 0.0))
                term.append(dict.fromkeys(self.agents, False) | {"__all__": False})
                trunc.append(dict.fromkeys(self.agents, False) | {"__all__": False})
            elif ended[b]:
                obs.append(self._terminal_obs(b))
                rew.append({agent_name(p): float(rewards[pos[b], p]) for p in self.learners})
                term.append(dict.fromkeys(self.agents, True) | {"__all__": True})
                trunc.append(dict.fromkeys(self.agents, False) | {"__all__": False})
            else:
                o = self._acting_obs(b)
                obs.append(o)
                rew.append(dict.fromkeys(o, 0.0))
                term.append({"__all__": False})
                trunc.append({"__all__": False})
        self._ended = ended
        return obs, rew, term, trunc, [{} for _ in range(B)]

    # -- helpers -------------------------------------------------------------------------------
    def _start(self, rows: np.ndarray) -> None:
        """Fresh episodes in ``rows``, played on by the scripted players until a learner acts
        (an episode in which no learner acts is drawn again, at most 1000 times)."""
        from mechgym.envs.batched_api import put_state

        todo = rows
        for _ in range(1000):
            fresh = self.source.sample(len(todo), self.rng)
            st = self._settle(fresh, self.rules.reset(fresh, self.rng))
            if self.ctx is None or len(todo) == self.num_envs:
                self.ctx, self.state = fresh, st
            else:
                self.ctx.put(todo, fresh)
                put_state(self.state, todo, st)
            live = ~st.done
            self._observe(todo[live])
            todo = todo[~live]
            if not len(todo):
                return
        raise ParameterError(
            "learners", f"players {self.learners} had no decision in 1000 episodes"
        )

    def _settle(self, ctx: Any, state: Any) -> Any:
        """Advance the episodes where only scripted players act, until a learner acts."""
        from mechgym.envs.batched_api import put_state, take_state

        if not self.background:
            return state
        for _ in range(10_000):
            idle = ~state.done & ~(state.acting & self.is_learner[None, :]).any(axis=1)
            if not idle.any():
                return state
            rows = np.flatnonzero(idle)
            sub_ctx, sub = ctx.take(rows), take_state(state, rows)
            acts = self._scripted_actions(
                sub_ctx, sub, np.zeros((len(rows), self.setup.n, self.L), np.int64)
            )
            new = self.rules.step(sub_ctx, sub, acts, self.rng)
            new.chance = []
            put_state(state, rows, new)
        raise RuntimeError("scripted players did not reach a learner's decision")

    def _scripted_actions(self, ctx: Any, state: Any, acts: np.ndarray) -> np.ndarray:
        by_policy: dict[int, list[int]] = {}
        for p in self.background:
            if state.acting[:, p].any():
                by_policy.setdefault(id(self.background[p]), []).append(p)
        for players in by_policy.values():
            out = self.background[players[0]].act(self.rules, ctx, state, players, self.rng)
            acts[:, players] = out[:, players]
        return acts

    def _phase(self, b: int) -> str:
        ph = int(self.state.phase[b])
        return self.rules.phases[ph] if ph >= 0 else "done"

    def _decode(
        self, actions: Sequence[Mapping[str, Any]], go: np.ndarray, state: Any
    ) -> np.ndarray:
        """``(len(go), n, L)`` layout actions of the learners' menu entries, checked."""
        acts = np.zeros((len(go), self.setup.n, self.L), dtype=np.int64)
        for i, b in enumerate(go):
            given = actions[int(b)]
            for p in self.learners:
                if not state.acting[i, p]:
                    continue
                agent = agent_name(p)
                if agent not in given:
                    raise OutOfSpaceError(
                        agent, self._phase(int(b)), f"episode {b}: no action given"
                    )
                k = int(given[agent])
                if not 0 <= k < self.K:
                    raise OutOfSpaceError(
                        agent,
                        self._phase(int(b)),
                        f"episode {b}: menu entry {k} is outside 0..{self.K - 1}",
                    )
                if not self._mask[b, p, k]:
                    raise IllegalActionError(
                        agent, self._phase(int(b)), f"episode {b}: menu entry {k} is masked here"
                    )
                acts[i, p] = self._menu_acts[b, p, k]
        return acts

    def _observe(self, rows: np.ndarray) -> None:
        """Observations, menus and masks of the learners acting in episodes ``rows``."""
        from mechgym.envs.batched_api import take_state
        from mechgym.training.batched_obs import padded_menu

        self._mask[rows] = False
        if not len(rows):
            return
        ctx, state = self.ctx.take(rows), take_state(self.state, rows)
        for p in self.learners:
            sel = np.flatnonzero(state.acting[:, p])
            if not len(sel):
                continue
            c, s = ctx.take(sel), take_state(state, sel)
            menu = padded_menu(self.menu_fn, self.rules, c, s, p, self.K)
            at = rows[sel]
            self._obs[at, p] = self.builders[p].build(c, s, p, menu)
            self._menu_acts[at, p] = menu[0]
            self._mask[at, p] = menu[1]
            empty = ~menu[1].any(axis=1)
            if empty.any():
                b = int(at[np.flatnonzero(empty)[0]])
                raise ParameterError(
                    "price_cap",
                    f"{agent_name(p)} has no menu entry on the price grid in phase "
                    f"'{self._phase(b)}' (episode {b}); widen price_cap",
                )

    def _acting_obs(self, b: int) -> dict[str, dict[str, np.ndarray]]:
        acting = self.state.acting[b]
        return {
            agent_name(p): {
                "observations": self._obs[b, p].copy(),
                "action_mask": self._mask[b, p].astype(np.float32),
            }
            for p in self.learners
            if acting[p]
        }

    def _observe_terminal(self, ctx: Any, state: Any, rows: np.ndarray) -> None:
        """Final observations of the episodes of ``ctx``/``state`` (rows ``rows``) that ended."""
        from mechgym.envs.batched_api import take_state

        sel = np.flatnonzero(state.done)
        if not len(sel):
            return
        c, s = ctx.take(sel), take_state(state, sel)
        for p in self.learners:
            self._obs[rows[sel], p] = self.builders[p].terminal(c, s, p)

    def _terminal_obs(self, b: int) -> dict[str, dict[str, np.ndarray]]:
        zeros = np.zeros(self.K, dtype=np.float32)
        return {
            agent_name(p): {"observations": self._obs[b, p].copy(), "action_mask": zeros.copy()}
            for p in self.learners
        }


class BatchedEnvRunner(MultiAgentEnvRunner):
    """RLlib's multi-agent env runner over :class:`BatchedMultiAgentEnv`
    (``num_envs_per_env_runner`` episodes per env step)."""

    def make_env(self) -> None:
        if self.env is not None:
            self.env.close()
        ctx = EnvContext(
            self.config.env_config,
            worker_index=self.worker_index,
            num_workers=self.config.num_env_runners,
            remote=self.config.remote_worker_envs,
        )
        self.env = BatchedMultiAgentEnv(ctx, num_envs=self.config.num_envs_per_env_runner)
        self.num_envs = self.env.num_envs
        self._needs_initial_reset = True


# -- the masked PPO module -----------------------------------------------------------------------
class MaskedPPOTorchRLModule(DefaultPPOTorchRLModule):
    """RLlib's default PPO torch module over ``{"observations", "action_mask"}``
    observations: the network reads ``observations``; masked actions get logit ``-inf``."""

    def __init__(self, *, observation_space: Any = None, **kwargs: Any) -> None:
        self.observation_space_with_mask = observation_space
        super().__init__(observation_space=observation_space["observations"], **kwargs)

    def setup(self) -> None:
        from mechgym.training.algos import configure_torch

        configure_torch()  # every process that builds a module: env runners and learner
        super().setup()
        self.observation_space = self.observation_space_with_mask

    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        mask, batch = self._split(batch)
        return self._masked(super()._forward_inference(batch, **kwargs), mask)

    def _forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        mask, batch = self._split(batch)
        return self._masked(super()._forward_exploration(batch, **kwargs), mask)

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        # the learner calls compute_values first, which moved the mask out of the obs
        out = super()._forward_train(batch, **kwargs)
        return self._masked(out, batch["action_mask"])

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> Any:
        if isinstance(batch[Columns.OBS], dict):
            mask, batch = self._split(batch)
            batch["action_mask"] = mask
        return super().compute_values(batch, embeddings)

    @staticmethod
    def _split(batch: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        obs = batch[Columns.OBS]
        batch[Columns.OBS] = obs["observations"]
        return obs["action_mask"], batch

    @staticmethod
    def _masked(out: dict[str, Any], mask: Any) -> dict[str, Any]:
        out[Columns.ACTION_DIST_INPUTS] = out[Columns.ACTION_DIST_INPUTS] + torch.clamp(
            torch.log(mask), min=FLOAT_MIN
        )
        return out


# -- resources -----------------------------------------------------------------------------------
def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to a Ray cluster (``address``, e.g. ``"127.0.0.1:6379"``; else ``RAY_ADDRESS``)
    or start a local one with ``num_cpus`` CPUs (default: the machine's)."""
    if ray.is_initialized():
        return
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    where = address or os.environ.get("RAY_ADDRESS")
    try:
        if where:
            ray.init(address=where, **kw)
        else:
            ray.init(num_cpus=num_cpus, **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ParameterError("address", f"cannot reach a Ray cluster at {where}: {first}") from None


def cluster_cpus() -> int:
    """CPUs of the Ray cluster this process is connected to, else of this machine (what a
    local ``ray.init()`` would offer)."""
    if ray.is_initialized():
        return int(ray.cluster_resources().get("CPU", 0))
    return int(os.cpu_count() or 1)


def size_env_runners(num_env_runners: int | None = None, cpus: int | None = None) -> int:
    """The number of env runners to use: ``None`` sizes them to the cluster (one CPU each,
    one CPU left to the learner in the driver), a number is checked against it.

    Raises
    ------
    ParameterError
        A request the cluster can never meet (RLlib would wait forever on "Pending
        Demands").
    """
    cpus = cluster_cpus() if cpus is None else int(cpus)
    if num_env_runners is None:
        return max(cpus - 1, 0)
    if isinstance(num_env_runners, bool) or not isinstance(num_env_runners, int | np.integer):
        raise ParameterError("num_env_runners", f"must be an integer >= 0, got {num_env_runners!r}")
    if num_env_runners < 0:
        raise ParameterError("num_env_runners", f"must be >= 0, got {num_env_runners}")
    if num_env_runners > cpus:
        raise ParameterError(
            "num_env_runners",
            f"{num_env_runners} env runners need {num_env_runners} CPUs (one each) but the Ray "
            f"cluster has {cpus}; ask for at most {cpus}, leave it unset to size it to the "
            "cluster, or add nodes",
        )
    return int(num_env_runners)


# -- configuration -------------------------------------------------------------------------------
def env_config(
    mechanism: str = "best_belief",
    generate: str | None = None,
    example: Any = None,
    contexts: Sequence[Any] | None = None,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    learners: Sequence[int] | None = None,
    opponents: Any = "predicted",
) -> dict[str, Any]:
    """The ``env_config`` of both RLlib envs, with a price grid wide enough for the menus."""
    from mechgym.training.vec_env import menu_price_cap

    given = [x is not None for x in (generate, example, contexts)]
    if sum(given) > 1:
        raise ParameterError("context", "give at most one of generate, example, contexts")
    price_cap = menu_price_cap(
        mechanism,
        context=example,
        generator=generate,
        contexts=list(contexts) if contexts is not None else None,
        constants=params,
    )
    cfg: dict[str, Any] = {
        "mechanism": mechanism,
        "seed": int(seed),
        "price_cap": price_cap,
        "params": dict(params or {}),
        "opponents": opponents,
        "learners": sorted(int(p) for p in learners) if learners else None,
    }
    for key, value in (("generate", generate), ("example", example), ("contexts", contexts)):
        if value is not None:
            cfg[key] = list(value) if key == "contexts" else value
    return cfg


def policy_groups(config: Mapping[str, Any], policies: str = "player") -> dict[str, list[str]]:
    """``{policy id: [agent, ...]}`` of an env config: one policy per player, or one per
    coalition of the contexts (coalitions that are the same in every context)."""
    from mechgym.envs.batched_api import context_source, static_partition

    if policies not in POLICIES:
        raise ParameterError("policies", f"{policies!r} is not one of {', '.join(POLICIES)}")
    setup = _Setup(config)
    if policies == "player":
        return {a: [a] for a in setup.agents}
    raw = setup.raw
    source = (
        context_source(context=raw.context)
        if raw.generator is None
        else context_source(generator=raw.generator)
    )
    partition = static_partition(source, setup.n)
    if partition is None:
        raise ParameterError(
            "policies",
            "the contexts' coalitions vary from one context to the next; use policies='player'",
        )
    out: dict[str, list[str]] = {}
    for block in partition:
        members = [agent_name(p) for p in block if p in setup.learners]
        if members:
            name = members[0] if len(block) == 1 else "coalition_" + "_".join(map(str, block))
            out[name] = members
    return out


def ppo_config(
    mechanism: str = "best_belief",
    generate: str | None = None,
    example: Any = None,
    seed: int = 0,
    num_env_runners: int | None = None,
    train_batch_size: int = 1024,
    *,
    contexts: Sequence[Any] | None = None,
    batched: bool = False,
    num_envs_per_env_runner: int | None = None,
    policies: str = "player",
    learners: Sequence[int] | None = None,
    opponents: Any = "predicted",
    params: Mapping[str, Any] | None = None,
    lr: float = 1e-3,
    num_epochs: int = 5,
    minibatch_size: int | None = None,
) -> Any:
    """PPO with one action-masked policy per player (or per coalition) on RLlib's new API
    stack.

    Parameters
    ----------
    mechanism, generate, example, contexts, params
        The mechanism, its contexts (a generator spec, a named example or context, or a
        fixed family) and its constants.
    seed : int
        Seeds the envs (offset per env runner) and RLlib.
    num_env_runners : int, optional
        Sampling processes; ``None`` sizes them to the cluster (:func:`size_env_runners`),
        and a request the cluster cannot meet fails here.
    train_batch_size : int
        Agent steps per training iteration.
    batched : bool
        Sample with :class:`BatchedEnvRunner` on the batched path (``num_envs_per_env_runner``
        episodes per env step, default 64) instead of one exact episode at a time.
    policies : {"player", "coalition"}
        One policy per player, or one per coalition of the contexts (see
        :func:`policy_groups`).
    learners, opponents
        The players RLlib drives (default all) and the scripted policy of the others.
    lr, num_epochs, minibatch_size
        PPO's learning rate, epochs and minibatch (default ``min(256, train_batch_size)``).
    """
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    runners = size_env_runners(num_env_runners)
    cfg = env_config(mechanism, generate, example, contexts, seed, params, learners, opponents)
    groups = policy_groups(cfg, policies)
    policy_of = {a: pid for pid, members in groups.items() for a in members}
    envs = (
        (64 if num_envs_per_env_runner is None else int(num_envs_per_env_runner)) if batched else 1
    )
    if envs < 1:
        raise ParameterError("num_envs_per_env_runner", f"must be >= 1, got {envs}")
    runner_kw: dict[str, Any] = {"num_env_runners": runners, "num_envs_per_env_runner": envs}
    if batched:
        runner_kw["env_runner_cls"] = BatchedEnvRunner
    spec = RLModuleSpec(
        module_class=MaskedPPOTorchRLModule,
        model_config=DefaultModelConfig(fcnet_hiddens=[64, 64], vf_share_layers=False),
    )
    return (
        PPOConfig()
        .environment(MechanismMultiAgentEnv, env_config=cfg)
        .env_runners(**runner_kw)
        .training(
            train_batch_size=train_batch_size,
            minibatch_size=minibatch_size or min(256, train_batch_size),
            num_epochs=num_epochs,
            lr=lr,
            gamma=1.0,  # one auction per episode: undiscounted Monte-Carlo returns
            lambda_=1.0,
            entropy_coeff=0.01,
        )
        .multi_agent(
            policies=set(groups),
            policy_mapping_fn=lambda agent_id, *a, **k: policy_of[agent_id],
        )
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs=dict.fromkeys(groups, spec)))
        .debugging(seed=seed)
    )


# -- trained modules as policies -----------------------------------------------------------------
class ModulePolicy:
    """Trained RLlib modules as one deterministic policy over engine states: each player's
    module (its own, or its coalition's) plays the argmax of its logits under the menu's
    mask, so the profile can be evaluated exactly.

    Parameters
    ----------
    modules : mapping of str to RLModule
        Policy id -> module (``algo.get_module(pid)``).
    policy_of : mapping of int to str
        Player -> policy id.
    encoding : MenuEncoding
        The menus the modules were trained on.
    context_class : type
        The env's context class (sizes the observation).
    """

    def __init__(
        self,
        modules: Mapping[str, Any],
        policy_of: Mapping[int, str],
        encoding: MenuEncoding,
        context_class: Any,
    ) -> None:
        self.modules = dict(modules)
        self.policy_of = dict(policy_of)
        self.encoding = encoding
        self.builders = {p: ObservationBuilder(encoding, (p,), context_class) for p in policy_of}
        self._cache: dict[bytes, int] = {}

    def encoded_action(self, ctx: Any, state: Any, player: int) -> int:
        """The menu index ``player`` plays at ``state``."""
        if player not in self.policy_of:
            raise ParameterError("policy", f"no trained module plays for player {player}")
        obs = np.asarray(self.builders[player].build(ctx, state, player), dtype=np.float32)
        mask = self.encoding.mask(ctx, state, player)
        key = bytes([player]) + obs.tobytes() + mask.tobytes()
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        module = self.modules[self.policy_of[player]]
        batch = {
            Columns.OBS: {
                "observations": torch.from_numpy(obs[None].copy()),
                "action_mask": torch.from_numpy(mask[None].astype(np.float32)),
            }
        }
        with torch.no_grad():
            logits = module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS][0].numpy()
        k = int(np.argmax(np.where(mask, logits, -np.inf)))
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = k
        return k

    def act(self, mech: Any, ctx: Any, state: Any, player: int) -> Any:
        return self.encoding.decode(ctx, state, player, self.encoded_action(ctx, state, player))


# -- measurements --------------------------------------------------------------------------------
def runner_report(algo: Any) -> list[dict[str, Any]]:
    """Per remote env runner: its index, process id, node and env steps sampled so far."""

    def info(runner: Any) -> dict[str, Any]:
        return {
            "worker_index": int(runner.worker_index),
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "env_steps_sampled": int(runner.num_env_steps_sampled_lifetime),
        }

    return list(algo.env_runner_group.foreach_env_runner(info, local_env_runner=False))


def sampling_throughput(
    mechanism: str = "best_belief",
    batched: bool = False,
    num_envs: int = 64,
    agent_steps: int = 4096,
    generate: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Sampling speed of one env runner in this process (PPO's masked modules exploring):
    agent steps (decisions) and episodes per second, after a warm-up."""
    cfg = ppo_config(
        mechanism,
        generate=generate,
        seed=seed,
        num_env_runners=0,
        batched=batched,
        num_envs_per_env_runner=num_envs if batched else 1,
    )
    runner = (BatchedEnvRunner if batched else MultiAgentEnvRunner)(config=cfg)
    try:
        runner.sample(num_timesteps=max(agent_steps // 8, 1), explore=True)
        t0 = time.perf_counter()
        episodes = runner.sample(num_timesteps=agent_steps, explore=True)
        dt = time.perf_counter() - t0
    finally:
        runner.stop()
    steps = sum(e.agent_steps() for e in episodes)
    done = sum(1 for e in episodes if e.is_done)
    return {
        "agent_steps_per_second": steps / dt,
        "episodes_per_second": done / dt,
        "num_envs": num_envs if batched else 1,
        "agent_steps": int(steps),
        "seconds": dt,
    }
