"""Several learners at once: independent learners, iterated best response, self-play.

Every scheme trains one model per *group* (a player or a coalition) through a
:class:`~mechgym.training.learner_env.LearnerEnv`, in rounds:

``independent`` (default)
    Gauss–Seidel alternation: in each round the groups train one after another, each for
    ``steps`` steps against the others' *latest* policies (frozen while it trains); a group
    that has not trained yet is played by ``init`` (``"predicted"`` by default, or
    ``"random"``). Models keep learning across rounds.
``ibr``
    Iterated best response (Jacobi): in each round every group trains a *fresh* model for
    ``steps`` steps against the others' policies of the previous round (``init`` in round 1);
    all groups switch to their new policies together at the end of the round.
``selfplay``
    Parameter sharing for symmetric players: one model; each episode the learning player is
    drawn uniformly from the groups and everyone else plays a frozen snapshot of the same
    model, refreshed every round (``init`` plays before the first round).

A group that has no decision to make under the current profile (the game always ends before
its turn) skips that round; :attr:`MultiLearner.idle` counts such rounds.

Learned policies act deterministically (argmax under the mask) as opponents and in
evaluation. Checkpoints (:meth:`MultiLearner.save`) hold every model (SB3 ``.zip`` plus
metadata) and ``trainer.json``; :meth:`MultiLearner.resume` continues from the latest one.
TensorBoard logs are written under ``tensorboard_log`` (one run per group) when given.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mechgym.agents.base import PhasePolicy
from mechgym.envs.engine.errors import ParameterError

from .algos import load_model, make_model
from .learner_env import Group, LearnerEnv, NoDecisionError, as_group, group_label
from .policies import LearnedPolicy, SharedPolicy, resolve_source, save_model

SCHEMES = ("independent", "ibr", "selfplay")


class MultiLearner:
    """Train every group of a mechanism (see the module docstring).

    Parameters
    ----------
    mechanism : str
    groups : sequence of learners, optional
        Players or coalitions; default every player on its own.
    scheme : {"independent", "ibr", "selfplay"}
    algo : str
        ``maskable_ppo`` (default), ``ppo``, ``a2c`` or ``dqn``.
    encoding : {"menu", "raw"}
    init : policy description
        Plays groups that have not trained yet (default ``"predicted"``).
    seed : int
    context, generator, contexts : the contexts to train on (one of them).
    learn_phases : phases learned (elsewhere the groups play ``scripted``).
    tensorboard_log : str, optional
    hyper : dict, optional
        Hyper-parameters passed to :func:`~mechgym.training.algos.make_model`.
    env_kwargs : dict, optional
        Extra :class:`LearnerEnv` options (``normalize``, ``features``, ``constants``...).
    n_envs : int
        ``1``: the exact single-episode :class:`LearnerEnv` (the reference); more: a
        :class:`~mechgym.training.vec_env.VecLearnerEnv` of ``n_envs`` slots on the batched
        path, the other groups playing batched (trained models included).
    """

    def __init__(
        self,
        mechanism: str,
        groups: Sequence[Any] | None = None,
        scheme: str = "independent",
        algo: str = "maskable_ppo",
        encoding: str = "menu",
        init: Any = "predicted",
        seed: int = 0,
        context: Any = None,
        generator: Any = None,
        contexts: Sequence[Any] | None = None,
        learn_phases: Sequence[str] | None = None,
        scripted: Any = "predicted",
        tensorboard_log: str | None = None,
        hyper: Mapping[str, Any] | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        n_envs: int = 1,
    ) -> None:
        if scheme not in SCHEMES:
            raise ParameterError(
                "scheme", f"unknown scheme {scheme!r}; use one of {', '.join(SCHEMES)}"
            )
        self.mechanism = mechanism
        self.scheme = scheme
        self.algo = algo
        self.encoding = encoding
        self.init = init
        self.seed = int(seed)
        self.learn_phases = tuple(learn_phases) if learn_phases else None
        self.scripted = scripted
        self.tensorboard_log = tensorboard_log
        self.hyper = dict(hyper or {})
        self.env_kwargs = dict(env_kwargs or {})
        self._source_kwargs = {"context": context, "generator": generator, "contexts": contexts}
        if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
            raise ParameterError("n_envs", f"must be an integer >= 1, got {n_envs!r}")
        self.n_envs = n_envs
        probe = self._make_env(0, 0)
        self.n = probe.env_spec.n
        self.mech = probe.mech
        self.agents = probe.agents
        self.env_spec = probe.env_spec
        self.groups: list[Group] = (
            [as_group(g) for g in groups] if groups else [(i,) for i in range(self.n)]
        )
        seen: set[int] = set()
        for g in self.groups:
            if seen & set(g):
                raise ParameterError(
                    "groups", f"player(s) {sorted(seen & set(g))} are in two groups"
                )
            seen |= set(g)
        self._init_source = resolve_source(init, mechanism, self.env_spec)
        self._scripted_source = resolve_source(scripted, mechanism, self.env_spec)
        self.round = 0
        self.steps: dict[str, int] = {group_label(g): 0 for g in self.groups}
        self.trained: set[Group] = set()
        #: rounds in which a group had no decision to learn from (label -> count)
        self.idle: dict[str, int] = {}
        self.envs: dict[Group, LearnerEnv] = {}
        self.models: dict[Group, Any] = {}
        self.policies: dict[Group, LearnedPolicy] = {}
        if scheme == "selfplay":
            sizes = {len(g) for g in self.groups}
            if len(sizes) != 1:
                raise ParameterError("groups", "self-play needs groups of one size")
            env = self._make_env(self.groups[0], 1, rotate=self.groups)
            model = self._new_model(env, "shared")
            for g in self.groups:
                self.envs[g] = env
                self.models[g] = model
            self._refresh_shared()
        else:
            for k, g in enumerate(self.groups):
                env = self._make_env(g, k + 1)
                self.envs[g] = env
                self.models[g] = self._new_model(env, group_label(g), offset=k)
                self.policies[g] = LearnedPolicy(self.models[g], env.builder)

    # -- construction --------------------------------------------------------------------------
    def _make_env(
        self, learner: Any, offset: int, rotate: Sequence[Group] | None = None
    ) -> LearnerEnv:
        kwargs = dict(self.env_kwargs)
        if rotate is not None:
            kwargs["rotate"] = list(rotate)
        if self.n_envs > 1:
            from .vec_env import VecLearnerEnv

            return VecLearnerEnv(  # type: ignore[return-value]
                self.mechanism,
                learner,
                n_envs=self.n_envs,
                encoding=self.encoding,
                learn_phases=self.learn_phases,
                scripted=self.scripted,
                seed=self.seed * 1000 + offset,
                **self._source_kwargs,
                **kwargs,
            )
        return LearnerEnv(
            self.mechanism,
            learner,
            encoding=self.encoding,
            learn_phases=self.learn_phases,
            scripted=self.scripted,
            seed=self.seed * 1000 + offset,
            **self._source_kwargs,
            **kwargs,
        )

    def _new_model(self, env: LearnerEnv, label: str, offset: int = 0) -> Any:
        return make_model(
            self.algo,
            env,
            seed=self.seed * 1000 + offset,
            tensorboard_log=self.tensorboard_log,
            **self.hyper,
        )

    # -- profiles ------------------------------------------------------------------------------
    def _group_source(self, g: Group, policy: Any) -> Callable[[Any, np.random.Generator], Any]:
        """A group's learned policy, scripted outside the learned phases."""
        if self.learn_phases is None or set(self.learn_phases) == set(self.mech.phases):
            return lambda ctx, rng: policy
        scripted = self._scripted_source
        phases = self.learn_phases
        return lambda ctx, rng: PhasePolicy(scripted(ctx, rng), dict.fromkeys(phases, policy))

    def _refresh_shared(self) -> None:
        g0 = self.groups[0]
        env = self.envs[g0]
        shared = SharedPolicy(self.models[g0], env.builders)
        for g in self.groups:
            self.policies[g] = shared

    def opponent_sources(
        self,
        exclude: Group,
        policies: Mapping[Group, Any] | None = None,
        trained: set[Group] | None = None,
    ) -> dict[int, Any]:
        """Who plays each player while ``exclude`` trains: trained groups' policies (latest,
        or those given), ``init`` for groups not trained yet."""
        out: dict[int, Any] = {}
        pols = self.policies if policies is None else policies
        done = self.trained if trained is None else trained
        for g in self.groups:
            if g == exclude:
                src: Any = self._init_source
            elif g in done and g in pols:
                src = self._group_source(g, pols[g])
            else:
                src = self._init_source
            for p in g:
                out[p] = src
        for p in range(self.n):
            out.setdefault(p, self._init_source)
        return out

    def _batched_group(self, g: Group, policy: Any) -> Any:
        """A group's learned policy on the batched path, scripted outside the learned phases."""
        from .batched_obs import BatchedLearned, ByPhaseBatched, resolve_batched

        learned = BatchedLearned(policy)
        if self.learn_phases is None or set(self.learn_phases) == set(self.mech.phases):
            return learned
        scripted = resolve_batched(self.scripted, self.mechanism)
        return ByPhaseBatched(scripted, dict.fromkeys(self.learn_phases, learned))

    def batched_opponents(
        self,
        exclude: Group,
        policies: Mapping[Group, Any] | None = None,
        trained: set[Group] | None = None,
    ) -> dict[int, Any]:
        """:meth:`opponent_sources` as batched policies (for the vectorised env)."""
        from .batched_obs import resolve_batched

        init = resolve_batched(self.init, self.mechanism)
        pols = self.policies if policies is None else policies
        done = self.trained if trained is None else trained
        out: dict[int, Any] = {}
        for g in self.groups:
            src = (
                self._batched_group(g, pols[g])
                if g != exclude and g in done and g in pols
                else init
            )
            for p in g:
                out[p] = src
        for p in range(self.n):
            out.setdefault(p, init)
        return out

    def profile(self, learned_only: bool = True) -> Callable[[Any], dict[int, Any]]:
        """The current profile as ``ctx -> {player: policy}`` for exact evaluation.

        With ``learned_only`` every group plays its model (even before training: the argmax
        of its initial network); otherwise untrained groups play ``init``.
        """
        sources: dict[int, Any] = {}
        for g in self.groups:
            if learned_only or g in self.trained:
                src = self._group_source(g, self.policies[g])
            else:
                src = self._init_source
            for p in g:
                sources[p] = src
        rng = np.random.default_rng(self.seed)
        init = self._init_source

        def prof(ctx: Any) -> dict[int, Any]:
            return {p: sources.get(p, init)(ctx, rng) for p in range(self.n)}

        return prof

    # -- training ------------------------------------------------------------------------------
    def train_round(self, steps: int, on_group: Callable[[Group, int], None] | None = None) -> None:
        """One round of the scheme, ``steps`` learner steps per group (self-play: per group
        too, in one shared run of ``steps * len(groups)``)."""
        if steps < 1:
            raise ParameterError("steps", "must be at least 1")
        self.round += 1
        if self.scheme == "selfplay":
            g0 = self.groups[0]
            env = self.envs[g0]
            if self.n_envs > 1:
                from .batched_obs import resolve_batched

                env.set_opponents(
                    resolve_batched(self.init, self.mechanism)
                    if self.round == 1
                    else self._batched_group(g0, self.policies[g0])
                )
            elif self.round == 1:
                env.set_opponents(self._init_source)
            else:
                env.set_opponents(self._group_source(g0, self.policies[g0]))
            total = steps * len(self.groups)
            done = self._learn(self.models[g0], total, "shared")
            for g in self.groups:
                self.steps[group_label(g)] += steps if done else 0
                self.trained.add(g)
            self._refresh_shared()
            if on_group:
                on_group(g0, total)
            return
        snapshot = dict(self.policies) if self.scheme == "ibr" else None
        trained_before = set(self.trained)
        new_policies: dict[Group, LearnedPolicy] = {}
        for k, g in enumerate(self.groups):
            env = self.envs[g]
            sources = self.batched_opponents if self.n_envs > 1 else self.opponent_sources
            if self.scheme == "ibr":
                env.set_opponents(sources(g, snapshot, trained_before))
                self.models[g] = self._new_model(env, group_label(g), offset=k + 100 * self.round)
            else:
                env.set_opponents(sources(g))
            if self._learn(self.models[g], steps, group_label(g)):
                self.steps[group_label(g)] += steps
            pol = LearnedPolicy(self.models[g], env.builder)
            if self.scheme == "ibr":
                new_policies[g] = pol
            else:
                self.policies[g] = pol
                self.trained.add(g)
            if on_group:
                on_group(g, steps)
        if self.scheme == "ibr":
            self.policies.update(new_policies)
            self.trained |= set(self.groups)

    def _learn(self, model: Any, steps: int, label: str) -> bool:
        """Train; ``False`` (and a note in :attr:`idle`) when the group had no decision to
        make under the current profile (e.g. the game always ends before its turn)."""
        kwargs: dict[str, Any] = {"reset_num_timesteps": False}
        if self.tensorboard_log:
            kwargs["tb_log_name"] = f"group_{label}"
        try:
            model.learn(steps, **kwargs)
        except NoDecisionError:
            self.idle[label] = self.idle.get(label, 0) + 1
            model._last_obs = None  # the next learn() starts from a fresh reset
            return False
        return True

    @property
    def total_steps(self) -> int:
        return sum(self.steps.values())

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Save every model under ``directory/round_RRR/`` and ``directory/trainer.json``."""
        d = Path(directory)
        rd = d / f"round_{self.round:03d}"
        rd.mkdir(parents=True, exist_ok=True)
        for g in self.groups if self.scheme != "selfplay" else self.groups[:1]:
            meta = {**self.envs[g].meta(), "algo": self.algo, "scheme": self.scheme}
            name = "shared" if self.scheme == "selfplay" else f"group_{group_label(g)}"
            save_model(self.models[g], rd / f"{name}.zip", meta)
        state = {
            "mechanism": self.mechanism,
            "scheme": self.scheme,
            "algo": self.algo,
            "encoding": self.encoding,
            "seed": self.seed,
            "round": self.round,
            "steps": self.steps,
            "idle": self.idle,
            "groups": [list(g) for g in self.groups],
            "trained": [list(g) for g in sorted(self.trained)],
            "learn_phases": list(self.learn_phases) if self.learn_phases else None,
            "checkpoint": rd.name,
        }
        (d / "trainer.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
        return rd

    def load_round(self, directory: str | Path) -> None:
        """Restore models and counters from ``directory`` (written by :meth:`save`)."""
        d = Path(directory)
        side = d / "trainer.json"
        if not side.exists():
            raise ParameterError("resume", f"no checkpoint at {d} (trainer.json missing)")
        state = json.loads(side.read_text(encoding="utf-8"))
        if state["mechanism"] != self.mechanism or state["scheme"] != self.scheme:
            raise ParameterError(
                "resume",
                f"checkpoint is {state['mechanism']}/{state['scheme']},"
                f" not {self.mechanism}/{self.scheme}",
            )
        if [list(g) for g in self.groups] != state["groups"]:
            raise ParameterError(
                "resume",
                f"checkpoint groups {state['groups']} differ from {[list(g) for g in self.groups]}",
            )
        rd = d / state["checkpoint"]
        for g in self.groups if self.scheme != "selfplay" else self.groups[:1]:
            name = "shared" if self.scheme == "selfplay" else f"group_{group_label(g)}"
            model = load_model(
                state["algo"],
                str(rd / f"{name}.zip"),
                env=self.envs[g],
                tensorboard_log=self.tensorboard_log,
            )
            if self.scheme == "selfplay":
                for h in self.groups:
                    self.models[h] = model
            else:
                self.models[g] = model
                self.policies[g] = LearnedPolicy(model, self.envs[g].builder)
        if self.scheme == "selfplay":
            self._refresh_shared()
        self.round = int(state["round"])
        self.steps = {k: int(v) for k, v in state["steps"].items()}
        self.idle = {k: int(v) for k, v in state.get("idle", {}).items()}
        self.trained = {tuple(g) for g in state["trained"]}

    @classmethod
    def resume(cls, directory: str | Path, **kwargs: Any) -> MultiLearner:
        """Rebuild a trainer from ``directory/trainer.json`` and load its latest checkpoint.

        ``kwargs`` must give the contexts again (``context``, ``generator`` or ``contexts``)
        and any non-default options; mechanism, scheme, algorithm, encoding, seed and groups
        come from the checkpoint.
        """
        d = Path(directory)
        side = d / "trainer.json"
        if not side.exists():
            raise ParameterError("resume", f"no checkpoint at {d} (trainer.json missing)")
        state = json.loads(side.read_text(encoding="utf-8"))
        trainer = cls(
            state["mechanism"],
            groups=[tuple(g) for g in state["groups"]],
            scheme=state["scheme"],
            algo=state["algo"],
            encoding=state["encoding"],
            seed=state["seed"],
            learn_phases=state["learn_phases"],
            **kwargs,
        )
        trainer.load_round(d)
        return trainer
