"""PPO on the batched path: TorchRL's clipped PPO and GAE over the native batched env.

:func:`train_batched` trains masked-categorical actors and value critics directly on the
arrays of :class:`~mechgym.integrations.torchrl_batched.BatchedMechanismEnv` (``B`` episodes
at once, partial resets of ended slots), with TorchRL's
:class:`~torchrl.objectives.ClipPPOLoss` and :class:`~torchrl.objectives.value.GAE`::

    from mechgym.training.batched_ppo import train_batched

    result = train_batched("best_belief", encoding="menu", decisions=500_000, seed=0)
    result.policy.exact()            # an exact policy, for metrics.evaluate_profile
    result.policy.save("m1.pt")

* **Groups.** Every learning group of the env (a player, or a shared-reward coalition) has
  one actor and one critic (``share_parameters=False``), shared by the members of a
  coalition; with ``share_parameters=True`` one actor and one critic play every group. The
  observation names the player it is for (its own-index one-hot), so a shared network
  knows whom it plays.
* **Actions.** A ``Discrete`` menu (or any encoding whose actions are one index under an
  ``action_mask``) is a :class:`~torchrl.modules.MaskedCategorical`; the
  ``"multidiscrete"`` layout is one masked categorical per field (:class:`MaskedFields`);
  the ``"continuous"`` encoding adds a Beta-distributed amount in ``(0, 1)`` wherever a
  sub-decision reads the box (:class:`MaskedCategoricalBeta`).
* **Who acts when.** A step resolves one decision node per episode; an agent that does not
  act there has only the no-op open. The policy loss and entropy count only the
  transitions where the agent acts (``(group, "mask")``); advantages run over every step of
  the agent's own sequence: GAE goes through the steps where it does not act with their
  true rewards (an episode's reward arrives at its last step, acting or not) and the
  critic, trained on every step, bootstraps across them. With ``gamma = lmbda = 1`` (the
  default: one-auction episodes, rewards at the end) an acting step's advantage is the
  episode's return minus the critic's value, exactly as if the idle steps were compacted
  away; with ``lmbda < 1`` idle steps add their decay.
* **Background.** Players outside ``learners`` are scripted through the env's
  ``background`` (``"predicted"``, ``"random"``, a deviation, or a batched policy such as a
  :class:`~mechgym.training.batched_policy.BatchedLearnedPolicy`).
* **Budget.** ``decisions`` counts the learners' decisions (acting agent × step) collected;
  training stops at the first update that reaches it.
* **Best-response rounds.** :meth:`BatchedPPO.train` with ``learners=[g]`` updates group g
  only; the other groups' networks stay frozen and play their actor's mode (or sample, if
  named in ``explore``): ``converge --scheme alternating``. With ``mixed``, a frozen group
  plays in each episode one of its past actors (:meth:`BatchedPPO.snapshot`), drawn
  uniformly: a best response to the others' average play, as in fictitious play
  (``converge --scheme fictitious``).

Learners start from random initial weights; everything random comes from ``seed`` (the env's
generator and a forked torch generator), so the same seed gives the same parameters.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from mechgym.envs.engine.errors import ParameterError
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import distributions as D
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MaskedCategorical, ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from .batched_policy import BatchedLearnedPolicy, PolicyNet, beta_concentrations, symlog

__all__ = [
    "BatchedPPO",
    "BatchedPPOConfig",
    "BatchedPPOResult",
    "MaskedFields",
    "ppo_loss",
    "train_batched",
]


class MaskedFields(D.Distribution):
    """Independent masked categoricals, one per field of a ``MultiDiscrete`` layout, from
    flat logits and a flat mask (the layout's concatenated fields). Fields of one size share
    one :class:`~torchrl.modules.MaskedCategorical`, so no field is padded."""

    arg_constraints: ClassVar[dict[str, Any]] = {}

    def __init__(
        self, logits: torch.Tensor, mask: torch.Tensor, groups: Sequence[Any], fields: int
    ) -> None:
        self._parts = []
        for which, index in groups:
            m = mask[..., index]
            m[..., 0] |= ~m.any(-1)  # a field that allows nothing (unread here) allows 0
            self._parts.append((which, MaskedCategorical(logits=logits[..., index], mask=m)))
        self._fields = fields
        super().__init__(logits.shape[:-1], torch.Size([fields]), validate_args=False)

    def _gather(self, draw: Any) -> torch.Tensor:
        out = torch.empty((*self.batch_shape, self._fields), dtype=torch.long)
        for which, dist in self._parts:
            out[..., which] = draw(dist)
        return out

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        if sample_shape != torch.Size():
            raise ValueError("MaskedFields draws one sample per row")
        return self._gather(lambda d: d.sample())

    @property
    def mode(self) -> torch.Tensor:
        return self._gather(lambda d: d.mode)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return sum(d.log_prob(value[..., which]).sum(-1) for which, d in self._parts)

    def entropy(self) -> torch.Tensor:
        return sum(d.entropy().sum(-1) for _, d in self._parts)


class MaskedCategoricalBeta(D.Distribution):
    """The ``"continuous"`` encoding's move: a masked categorical over the entries and,
    where the pending sub-decision reads the box (an amount), a Beta-distributed value in
    ``(0, 1)``. Logits are the ``K`` entry logits followed by the two raw concentration
    outputs (:func:`~mechgym.training.batched_policy.beta_concentrations`). A sample is
    ``(..., 2)``: the entry (as a float) and the box value; where the box is not read, its
    value is 0.5 and adds nothing to the log-probability or the entropy."""

    arg_constraints: ClassVar[dict[str, Any]] = {}
    #: keeps Beta log-probabilities finite at the ends of ``(0, 1)``
    EDGE = 1e-6

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor, reads_box: torch.Tensor) -> None:
        self._cat = MaskedCategorical(logits=logits[..., :-2], mask=mask)
        conc = beta_concentrations(logits[..., -2:])
        self._beta = D.Beta(conc[..., 0], conc[..., 1], validate_args=False)
        self._reads = reads_box.to(torch.bool).reshape(logits.shape[:-1])
        super().__init__(logits.shape[:-1], torch.Size([2]), validate_args=False)

    def _join(self, entry: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = torch.where(self._reads, x, torch.full_like(x, 0.5))
        return torch.stack([entry.to(x.dtype), x], -1)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        if sample_shape != torch.Size():
            raise ValueError("MaskedCategoricalBeta draws one sample per row")
        x = self._beta.sample().clamp(self.EDGE, 1 - self.EDGE)
        return self._join(self._cat.sample(), x)

    @property
    def mode(self) -> torch.Tensor:
        return self._join(self._cat.mode, self._beta.mean)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        entry = value[..., 0].round().to(torch.long)
        x = value[..., 1].clamp(self.EDGE, 1 - self.EDGE)
        lp = self._beta.log_prob(x)
        return self._cat.log_prob(entry) + torch.where(self._reads, lp, torch.zeros_like(lp))

    def entropy(self) -> torch.Tensor:
        h = self._beta.entropy()
        return self._cat.entropy() + torch.where(self._reads, h, torch.zeros_like(h))


def _split_move(move: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A :class:`MaskedCategoricalBeta` sample as the env's entry and box value."""
    return move[..., 0].round().to(torch.long), move[..., 1:2]


def field_groups(sizes: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per field size: the fields of that size and ``(fields, size)`` positions of their
    values in the flat layout mask."""
    offsets = [0]
    for s in sizes:
        offsets.append(offsets[-1] + int(s))
    out = []
    for size in sorted({int(s) for s in sizes}):
        which = [k for k, s in enumerate(sizes) if int(s) == size]
        index = torch.tensor([[offsets[k] + v for v in range(size)] for k in which])
        out.append((torch.tensor(which), index))
    return out


@dataclass
class BatchedPPOConfig:
    """Hyper-parameters of :func:`train_batched` (defaults suit one-auction episodes)."""

    batch_size: int = 4096
    rollout_steps: int = 2
    epochs: int = 2
    minibatches: int = 2
    learning_rate: float = 3e-3
    gamma: float = 1.0
    lmbda: float = 1.0
    clip_epsilon: float = 0.2
    entropy_coef: float = 0.01
    critic_coef: float = 0.5
    max_grad_norm: float = 1.0
    hidden: tuple[int, ...] = (64, 64)

    def check(self) -> None:
        """Raise a :class:`ParameterError` naming the first bad field."""
        for name in ("batch_size", "rollout_steps", "epochs", "minibatches"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ParameterError(name, f"must be a positive integer, got {v!r}")
        for name in ("learning_rate", "clip_epsilon"):
            if not getattr(self, name) > 0:
                raise ParameterError(name, f"must be positive, got {getattr(self, name)!r}")
        for name in ("gamma", "lmbda"):
            if not 0 <= getattr(self, name) <= 1:
                raise ParameterError(name, f"must be in [0, 1], got {getattr(self, name)!r}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ParameterError("hidden", f"needs positive widths, got {self.hidden!r}")


@dataclass
class BatchedPPOResult:
    """What :func:`train_batched` returns.

    Attributes
    ----------
    policy : BatchedLearnedPolicy
        The learned actors (batched, exact and TorchRL forms; save/load).
    decisions : int
        Learner decisions collected (acting agent × step).
    frames : int
        Env steps × batch size.
    seconds : float
        Wall-clock of the whole run (collection and updates).
    updates : int
        PPO iterations (collect, then ``epochs × minibatches`` gradient steps).
    history : list of dict
        Per update: ``decisions`` so far, ``seconds``, ``episodes`` ended, ``reward`` (per
        group, the mean episode reward of its agents over the episodes that ended) and
        ``entropy`` (per group, of its acting agents' policies).
    groups : dict of str to list of int
        The learning groups and their players.
    idle : bool
        Training stopped before the budget: the learners were not reached (see
        :meth:`BatchedPPO.train`).
    """

    policy: BatchedLearnedPolicy
    decisions: int
    frames: int
    seconds: float
    updates: int
    history: list[dict[str, Any]] = field(default_factory=list)
    groups: dict[str, list[int]] = field(default_factory=dict)
    idle: bool = False

    @property
    def decisions_per_second(self) -> float:
        return self.decisions / self.seconds if self.seconds > 0 else 0.0


# -- modules ---------------------------------------------------------------------------------
class _Nets:
    """Actor and critic networks per group (one pair shared by all with ``share``)."""

    def __init__(
        self, groups: Sequence[str], obs: int, out: int, hidden: Sequence[int], share: bool
    ) -> None:
        self.actor: dict[str, PolicyNet] = {}
        self.critic: dict[str, PolicyNet] = {}
        self.distinct_actors: list[PolicyNet] = []
        critics: list[PolicyNet] = []
        for g in groups:
            if share and self.distinct_actors:
                self.actor[g], self.critic[g] = self.distinct_actors[0], critics[0]
                continue
            a, c = PolicyNet(obs, out, hidden), PolicyNet(obs, 1, hidden)
            self.distinct_actors.append(a)
            critics.append(c)
            self.actor[g], self.critic[g] = a, c
        self.parameters = [p for m in (*self.distinct_actors, *critics) for p in m.parameters()]


def _features(g: str) -> TensorDictModule:
    # the networks' symlog, once per collected step rather than in every pass over it
    return TensorDictModule(symlog, in_keys=[(g, "observation")], out_keys=[(g, "features")])


def _actor(g: str, net: PolicyNet, sizes: Sequence[int] | None, continuous: bool = False) -> Any:
    logits = TensorDictModule(net.net, in_keys=[(g, "features")], out_keys=[(g, "logits")])
    if continuous:
        return ProbabilisticActor(
            logits,
            in_keys={
                "logits": (g, "logits"),
                "mask": (g, "action_mask"),
                "reads_box": (g, "reads_box"),
            },
            out_keys=[(g, "move")],
            distribution_class=MaskedCategoricalBeta,
            return_log_prob=True,
            log_prob_key=(g, "action_log_prob"),
        )
    if sizes is None:
        dist_cls: Any = MaskedCategorical
        dist_kwargs: dict[str, Any] = {}
    else:
        dist_cls = MaskedFields
        dist_kwargs = {"groups": field_groups(sizes), "fields": len(sizes)}
    return ProbabilisticActor(
        logits,
        in_keys={"logits": (g, "logits"), "mask": (g, "action_mask")},
        out_keys=[(g, "action")],
        distribution_class=dist_cls,
        distribution_kwargs=dist_kwargs,
        return_log_prob=True,
        log_prob_key=(g, "action_log_prob"),
    )


def _critic(g: str, net: PolicyNet) -> ValueOperator:
    return ValueOperator(net.net, in_keys=[(g, "features")], out_keys=[(g, "state_value")])


def _loss(
    g: str, actor: Any, critic: Any, cfg: BatchedPPOConfig, action: str = "action"
) -> ClipPPOLoss:
    loss = ClipPPOLoss(
        actor,
        critic,
        clip_epsilon=cfg.clip_epsilon,
        entropy_coeff=cfg.entropy_coef,
        critic_coeff=0.0,  # the critic's loss is taken over every step, in _run
        loss_critic_type="l2",
        log_explained_variance=False,
        normalize_advantage=False,  # done over the acting steps only, in _advantages
        functional=False,
        reduction="none",
    )
    loss.loss_mask_key = None  # the acting mask is applied per term below
    loss.set_keys(
        reward=(g, "reward"),
        action=(g, action),
        sample_log_prob=(g, "action_log_prob"),
        value=(g, "state_value"),
        advantage=(g, "advantage"),
        value_target=(g, "value_target"),
        done=(g, "done"),
        terminated=(g, "terminated"),
    )
    return loss


def _gae(g: str, cfg: BatchedPPOConfig) -> GAE:
    # no value network: the values are taken during collection (BatchedPPO.collect), where
    # each step's is the previous step's next value, so the critic runs once per step
    gae = GAE(gamma=cfg.gamma, lmbda=cfg.lmbda, value_network=None, average_gae=False)
    gae.set_keys(
        reward=(g, "reward"),
        done=(g, "done"),
        terminated=(g, "terminated"),
        value=(g, "state_value"),
        advantage=(g, "advantage"),
        value_target=(g, "value_target"),
    )
    return gae


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    x = x.reshape(mask.shape)
    return torch.where(mask, x, torch.zeros_like(x)).sum() / mask.sum().clamp_min(1)


# -- training --------------------------------------------------------------------------------
def train_batched(
    mechanism: str,
    *,
    encoding: str = "menu",
    decisions: int = 200_000,
    batch_size: int | None = None,
    seed: int = 0,
    learners: Sequence[str] | None = None,
    background: Any = "predicted",
    share_parameters: bool = False,
    coalitions: Sequence[Sequence[int]] | None = None,
    generate: Any = None,
    context: Any = None,
    contexts: Sequence[Any] | None = None,
    config: BatchedPPOConfig | None = None,
    threads: int | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> BatchedPPOResult:
    """Train the env's learning groups with PPO on the batched path (module docstring).

    Parameters
    ----------
    mechanism : str
        Catalogue name (``"best_belief"``, ...).
    encoding : str
        The TorchRL env's ``action_encoding`` (``"menu"``, ``"multidiscrete"``, ...).
    decisions : int
        Budget of learner decisions.
    batch_size : int, optional
        Episodes run at once (default :attr:`BatchedPPOConfig.batch_size`).
    seed : int
        Seeds the env (contexts, chance, scripted players) and the networks and sampling.
    learners : sequence of str, optional
        Groups that learn (default: all, e.g. ``["player_0"]`` or ``["coalition_0_1"]``).
    background : str, mapping or batched policy
        Play of the players outside ``learners`` (the env's ``background``).
    share_parameters : bool
        One actor and one critic for every learning group.
    coalitions : sequence of sequences of int, optional
        Shared-reward coalitions in every context (each one group).
    generate, context, contexts
        Where the contexts come from (as the env takes them).
    config : BatchedPPOConfig, optional
        Hyper-parameters; keyword ``overrides`` (``epochs=4``, ...) replace its fields.
    threads : int, optional
        Torch threads for this run (default
        :func:`~mechgym.training.algos.torch_threads`); the process's count is restored
        afterwards. Large batches gain from a second thread on an otherwise idle machine.
    callback : callable, optional
        Called with each update's history row.
    env_kwargs : mapping, optional
        More :class:`BatchedMechanismEnv` arguments (``value_cap``, ``constants``, ...).

    Returns
    -------
    BatchedPPOResult
    """
    from mechgym.integrations.torchrl_batched import BatchedMechanismEnv

    from .algos import configure_torch

    known = set(BatchedPPOConfig.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ParameterError(
            unknown[0], f"not a setting of the batched learner; use one of {', '.join(known)}"
        )
    cfg = BatchedPPOConfig(**{**(config.__dict__ if config else {}), **overrides})
    if batch_size is not None:
        cfg.batch_size = batch_size
    cfg.check()
    if isinstance(decisions, bool) or not isinstance(decisions, int) or decisions < 1:
        raise ParameterError("decisions", f"must be a positive integer, got {decisions!r}")
    before = torch.get_num_threads()
    configure_torch(threads, remember=False)

    env = BatchedMechanismEnv(
        mechanism,
        cfg.batch_size,
        generate,
        context=context,
        contexts=contexts,
        action_encoding=encoding,
        coalitions=coalitions,
        learners=learners,
        background=background,
        seed=seed,
        **dict(env_kwargs or {}),
    )
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            ppo = BatchedPPO(env, cfg, share_parameters, seed)
            result = ppo.train(decisions, callback)
    finally:
        torch.set_num_threads(before)
    result.policy = ppo.learned_policy((env_kwargs or {}).get("constants"))
    return result


class BatchedPPO:
    """The actors, critics, losses and optimiser of :func:`train_batched` over one env.

    Parameters
    ----------
    env : BatchedMechanismEnv
    cfg : BatchedPPOConfig
    share_parameters : bool
    seed : int
        Seeds the minibatch order (the networks are initialised from torch's generator).
    """

    def __init__(
        self, env: Any, cfg: BatchedPPOConfig, share_parameters: bool = False, seed: int = 0
    ) -> None:
        self.env, self.cfg = env, cfg
        self.groups = list(env.learners)
        self.sizes = None
        if env.action_encoding == "multidiscrete":
            self.sizes = [int(s) for s in env.layout.sizes]
        self.continuous = env.action_encoding == "continuous"
        # the continuous head: the entry logits, then the Beta's two concentrations
        out = env.K + (2 if self.continuous else 0)
        nets = _Nets(self.groups, env.obs_size, out, cfg.hidden, share_parameters)
        self.nets = nets
        actors = {g: _actor(g, nets.actor[g], self.sizes, self.continuous) for g in self.groups}
        critics = {g: _critic(g, nets.critic[g]) for g in self.groups}
        self.action = "move" if self.continuous else "action"
        self.losses = {g: _loss(g, actors[g], critics[g], cfg, self.action) for g in self.groups}
        self.gaes = {g: _gae(g, cfg) for g in self.groups}
        self.features = TensorDictSequential(*(_features(g) for g in self.groups))
        self.policy = self._playing(actors)
        self.actors = actors
        self._modes: dict[tuple[str, ...], TensorDictSequential] = {}
        self.values = TensorDictSequential(*critics.values())
        self.optim = torch.optim.Adam(nets.parameters, lr=cfg.learning_rate)
        self.perm_gen = torch.Generator().manual_seed(seed)
        # which past actor each episode of a ``mixed`` group plays (fictitious play)
        self.mix_gen = torch.Generator().manual_seed(seed + 104729)
        self.history: dict[str, list[tuple[TensorDictSequential, bool]]] = {}
        self._picks: dict[str, torch.Tensor] = {}
        self._td: TensorDictBase | None = None

    def _playing(self, actors: Mapping[str, Any]) -> TensorDictSequential:
        """The actors in one module that writes each group's env action (in
        ``continuous``, the entry and the box split from the Beta-headed move)."""
        steps: list[Any] = list(actors.values())
        if self.continuous:
            steps += [
                TensorDictModule(
                    _split_move, in_keys=[(g, "move")], out_keys=[(g, "action"), (g, "box")]
                )
                for g in actors
            ]
        return TensorDictSequential(*steps)

    def snapshot(self, g: str, sample: bool = False) -> None:
        """Add a frozen copy of group ``g``'s current actor to its history, the population
        a ``mixed`` group plays from (:meth:`collect`); ``sample``: the copy samples its
        actions (an untrained actor standing for random play), else it plays its mode."""
        if g not in self.groups:
            raise ParameterError("snapshot", f"{g} is not a learning group of this env")
        net = copy.deepcopy(self.nets.actor[g])
        net.requires_grad_(False)
        actor = _actor(g, net, self.sizes, self.continuous)
        self.history.setdefault(g, []).append((self._playing({g: actor}), sample))

    def _play_history(self, td: TensorDictBase, g: str) -> TensorDictBase:
        """Overwrite ``g``'s actions in ``td`` with those of the past actor each episode
        drew (:attr:`history`), drawn uniformly when the episode starts."""
        members = self.history[g]
        B = td.batch_size[0]
        picks = self._picks.get(g)
        if picks is None or picks.numel() != B:  # histories only grow: old picks stay valid
            picks = torch.randint(len(members), (B,), generator=self.mix_gen)
            self._picks[g] = picks
        keys = [(g, "features"), (g, "action_mask")]
        outs = [(g, "action")]
        if self.continuous:
            keys.append((g, "reads_box"))
            outs += [(g, "move"), (g, "box")]
        for k, (module, sample) in enumerate(members):
            chosen = picks == k
            if not chosen.any():
                continue
            kind = ExplorationType.RANDOM if sample else ExplorationType.DETERMINISTIC
            with set_exploration_type(kind):
                out = module(td.select(*keys).clone())
            for key in outs:
                cur, new = td[key], out[key]
                where = chosen.reshape((B,) + (1,) * (cur.dim() - 1))
                td[key] = torch.where(where, new.to(cur.dtype), cur)
        return td

    def _redraw(self, ended: torch.Tensor, mixed: Sequence[str]) -> None:
        """New history draws for the episodes that just ended (their slots restart)."""
        if not ended.any():
            return
        for g in mixed:
            picks = self._picks[g]
            fresh = torch.randint(len(self.history[g]), picks.shape, generator=self.mix_gen)
            self._picks[g] = torch.where(ended, fresh, picks)

    def collect(
        self, explore: Sequence[str] | None = None, mixed: Sequence[str] = ()
    ) -> TensorDictBase:
        """``rollout_steps`` steps of every slot, sampled from the actors: ``(B, T)``
        (ended slots restart at once), with the critics' values of every step and of the
        step after it (the next step's, or after the last one a pass over its successor;
        where a slot ended, the value after it is unused: the step is terminal).

        ``explore`` names the groups that sample (default: all); the others play their
        actor's mode (argmax under the mask), as frozen opponents do in evaluation. A group
        in ``mixed`` plays instead, in each episode, one member of its :attr:`history`
        drawn uniformly when the episode starts (fictitious play's mixture over pure
        strategies, not a mixture of moves within an episode)."""
        env = self.env
        if self._td is None:
            self._td = env.reset()
        td = self._td
        frames = []
        fixed = self._mode_policy(explore)
        with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
            for _ in range(self.cfg.rollout_steps):
                td = self.values(self.policy(self.features(td)))
                if fixed is not None:
                    with set_exploration_type(ExplorationType.DETERMINISTIC):
                        td = fixed(td)
                for g in mixed:
                    td = self._play_history(td, g)
                step, td = env.step_and_maybe_reset(td)
                if mixed:
                    self._redraw(step["next", "done"].reshape(-1), mixed)
                frames.append(step)
            last = self.values(self.features(td.select(*[(g, "observation") for g in self.groups])))
        self._td = td
        data = torch.stack(frames, dim=1)
        data.names = [None, "time"]  # the axis GAE runs along
        for g in self.groups:
            v = data[g, "state_value"]
            data["next", g, "state_value"] = torch.cat(
                [v[:, 1:], last[g, "state_value"][:, None]], 1
            )
        return data

    def _mode_policy(self, explore: Sequence[str] | None) -> TensorDictSequential | None:
        """The actors of the groups outside ``explore`` in one module (cached), or ``None``
        when every group samples."""
        if explore is None:
            return None
        fixed = tuple(g for g in self.groups if g not in set(explore))
        if not fixed:
            return None
        if fixed not in self._modes:
            self._modes[fixed] = self._playing({g: self.actors[g] for g in fixed})
        return self._modes[fixed]

    def _learning(self, learners: Sequence[str] | None) -> list[str]:
        """``learners`` checked against the env's groups (default: every group)."""
        if learners is None:
            return list(self.groups)
        unknown = [g for g in learners if g not in self.groups]
        if unknown or not learners:
            raise ParameterError(
                "learners",
                f"{unknown[0] if unknown else 'none'} is not a learning group of this env; "
                f"use some of {', '.join(self.groups)}",
            )
        if len({id(self.nets.actor[g]) for g in self.groups}) < len(self.groups) and set(
            learners
        ) != set(self.groups):
            raise ParameterError(
                "learners", "parameter-shared groups share one actor: they learn together"
            )
        return [g for g in self.groups if g in set(learners)]

    @torch.no_grad()
    def advantages(self, data: TensorDictBase, learners: Sequence[str] | None = None) -> None:
        """GAE per group over the time axis (values, targets and advantages written in
        ``data``), then advantages normalised over the steps where the agents act."""
        for g in self._learning(learners):
            self.gaes[g](data)
            _normalise_advantage(data, g)

    def update(
        self,
        data: TensorDictBase,
        row: dict[str, Any] | None = None,
        learners: Sequence[str] | None = None,
    ) -> None:
        """``epochs`` passes of ``minibatches`` gradient steps over ``data`` (advantages in)
        for the ``learners`` (default: every group; the others' networks are untouched)."""
        cfg = self.cfg
        groups = self._learning(learners)
        keys: tuple[str, ...] = ("features", "action_mask", "mask", self.action, "action_log_prob")
        if self.continuous:
            keys += ("reads_box",)
        keep = [(g, k) for g in groups for k in (*keys, "advantage", "value_target")]
        entropy = None if row is None else row.setdefault("entropy", {})
        losses = {g: self.losses[g] for g in groups}
        self._descend(
            data.select(*keep),
            lambda mb: ppo_loss(losses, mb, cfg.critic_coef, entropy),
            self.optim,
            self.nets.parameters,
        )

    def _descend(
        self,
        data: TensorDictBase,
        loss: Callable[[TensorDictBase], torch.Tensor],
        optim: torch.optim.Optimizer,
        params: Sequence[torch.nn.Parameter],
    ) -> list[float]:
        """``epochs`` passes of ``minibatches`` clipped gradient steps of ``loss`` over the
        flattened ``data``; returns each step's loss."""
        cfg = self.cfg
        N = data.numel()
        flat = data.reshape(N)
        n_mb = min(cfg.minibatches, N)
        seen = []
        for _ in range(cfg.epochs):
            if n_mb == 1:  # the whole batch: its order does not matter
                chunks = [flat]
            else:
                order = torch.randperm(N, generator=self.perm_gen)
                chunks = [flat[c] for c in order.chunk(n_mb)]
            for mb in chunks:
                total = loss(mb)
                optim.zero_grad(set_to_none=True)
                total.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                optim.step()
                seen.append(float(total.detach()))
        return seen

    #: consecutive collections without a decision of the learners after which
    #: :meth:`train` gives up (they are never reached under the others' play)
    MAX_IDLE_COLLECTS = 16

    def train(
        self,
        budget: int,
        callback: Callable[[dict[str, Any]], None] | None = None,
        learners: Sequence[str] | None = None,
        explore: Sequence[str] | None = None,
        mixed: Sequence[str] = (),
    ) -> BatchedPPOResult:
        """Collect and update until ``budget`` decisions of the ``learners`` (default: every
        group) are collected.

        The other groups are frozen: their networks are not updated and they play their
        actor's mode, unless named in ``explore`` (then they sample, e.g. an untrained actor
        standing for random play) or in ``mixed`` (then each episode plays one member of
        the group's :attr:`history`, see :meth:`collect`). If the learners make no decision in
        :attr:`MAX_IDLE_COLLECTS` collections in a row (the others' play never reaches
        them), training stops early and the result says ``idle``."""
        groups = self._learning(learners)
        stray = [g for g in explore or () if g not in self.groups]
        if stray:
            raise ParameterError("explore", f"{stray[0]} is not a learning group of this env")
        sampled = None if learners is None else [*groups, *(explore or ())]
        for g in mixed:
            if g in groups or not self.history.get(g):
                raise ParameterError(
                    "mixed", f"{g} must be a frozen group with a history (see snapshot)"
                )
        done = updates = empty = collects = 0
        history: list[dict[str, Any]] = []
        start = time.perf_counter()
        idle = False
        while done < budget:
            data = self.collect(sampled, mixed)
            collects += 1
            found = sum(int(data[g, "mask"].sum()) for g in groups)
            if not found:
                empty += 1
                if empty >= self.MAX_IDLE_COLLECTS:
                    idle = True
                    break
                continue
            empty = 0
            self.advantages(data, groups)
            row: dict[str, Any] = {"reward": {}, "entropy": {}}
            for g in groups:
                ended = data["next", g, "done"][..., 0, 0]
                r = data["next", g, "reward"].mean(-2).squeeze(-1)  # per agent of the group
                row["reward"][g] = float(r[ended].mean()) if ended.any() else None
            done += found
            row["episodes"] = int(data["next", "done"].sum())
            self.update(data, row, groups)
            updates += 1
            row["decisions"] = done
            row["seconds"] = time.perf_counter() - start
            history.append(row)
            if callback is not None:
                callback(row)
        return BatchedPPOResult(
            policy=self.learned_policy(),
            decisions=done,
            frames=collects * self.cfg.batch_size * self.cfg.rollout_steps,
            seconds=time.perf_counter() - start,
            updates=updates,
            history=history,
            groups={g: list(self.env.group_players[g]) for g in groups},
            idle=idle,
        )

    #: steps per minibatch of :meth:`imitate` (supervised: many small steps per pass)
    IMITATION_MINIBATCH = 1024

    def imitate(
        self, decisions: int, teacher: Any = "predicted", epochs: int = 8, seed: int = 0
    ) -> dict[str, Any]:
        """Behaviour cloning: the actors learn to play ``teacher`` (a batched policy
        description: ``"predicted"``, a deviation name, ...) before any PPO update.

        The env is played by the teacher for every learner for at least ``decisions``
        learner decisions (sub-decisions in ``factored``); the actors then take ``epochs``
        passes of minibatches of :attr:`IMITATION_MINIBATCH` steps of the teacher's actions'
        negative log-likelihood under their masked distributions, counted where an agent acts
        and can follow the teacher (:meth:`BatchedMechanismEnv.teacher_actions`). The
        critics are not trained here. Returns the number of decisions, the share the
        encoding expresses exactly (a factored price grid may only come near the teacher's
        price) and the actors' agreement with the teacher's actions after the passes.
        """
        from mechgym.training.batched_obs import resolve_batched

        env = self.env
        pol = resolve_batched(teacher, env.mechanism_name, env.api.spec)
        rng = np.random.default_rng(seed)
        td = env.reset() if self._td is None else self._td
        frames, done, expressible = [], 0, 0
        keys = [(g, k) for g in self.groups for k in ("features", "action_mask", "mask", "action")]
        keys += [(g, "imitable") for g in self.groups]
        with torch.no_grad():
            while done < decisions:
                td = self.features(td)
                acts, ok, exact = env.teacher_actions(pol, rng)
                for g in self.groups:
                    acting = td[g, "mask"]
                    td[g, "action"] = acts[g]
                    td[g, "imitable"] = ok[g] & acting
                    done += int(acting.sum())
                    expressible += int((exact[g] & acting).sum())
                step, td = env.step_and_maybe_reset(td)
                frames.append(step.select(*keys))
        self._td = None  # PPO starts from fresh episodes
        data = torch.stack(frames, dim=1)
        N = data.numel()
        flat = data.reshape(N)
        actors = {g: self.losses[g].actor_network for g in self.groups}
        params = [p for net in self.nets.distinct_actors for p in net.parameters()]
        optim = torch.optim.Adam(params, lr=self.cfg.learning_rate * 3)
        n_mb = max(1, N // self.IMITATION_MINIBATCH)
        for _ in range(epochs):
            order = torch.randperm(N, generator=self.perm_gen)
            for chunk in order.chunk(n_mb):
                mb = flat[chunk]
                total = torch.zeros(())
                for g, actor in actors.items():
                    use = mb[g, "imitable"]
                    if not use.any():
                        continue
                    logp = actor.get_dist(mb).log_prob(mb[g, "action"])
                    total = total - _masked_mean(logp, use)
                optim.zero_grad(set_to_none=True)
                total.backward()
                torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
                optim.step()
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            agree = used = 0
            for g, actor in actors.items():
                use = flat[g, "imitable"]
                mode = actor(flat.select(*[(g, "features"), (g, "action_mask")]).clone())
                same = mode[g, "action"] == flat[g, "action"]
                if same.dim() > use.dim():
                    same = same.all(-1)
                agree += int((same & use).sum())
                used += int(use.sum())
        return {
            "decisions": done,
            "expressible": expressible / max(done, 1),
            "agreement": agree / max(used, 1),
        }

    def warm_critics(self, updates: int) -> dict[str, Any]:
        """Fit the critics to the current actors' returns, the actors untouched (e.g. after
        :meth:`imitate`, so that the first PPO update's advantages are measured against
        the cloned play's values rather than an untrained critic's).

        ``updates`` times: collect as :meth:`train` does, targets by GAE, then ``epochs`` ×
        ``minibatches`` steps of TorchRL's critic loss alone. Returns the decisions
        collected and the mean critic loss of the first and the last update (outside any
        learning budget: nothing of it reaches the actors).
        """
        if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
            raise ParameterError("critic_warmup", f"must be a count >= 0, got {updates!r}")
        cfg = self.cfg
        critics = list({id(c): c for c in self.nets.critic.values()}.values())
        params = [p for c in critics for p in c.parameters()]
        optim = torch.optim.Adam(params, lr=cfg.learning_rate)
        keep = [(g, k) for g in self.groups for k in ("features", "value_target")]
        done, losses = 0, []

        def critic_loss(mb: TensorDictBase) -> torch.Tensor:
            terms = (self.losses[g].loss_critic(mb)[0].mean() for g in self.groups)
            return sum(terms, torch.zeros(()))

        for _ in range(updates):
            data = self.collect()
            self.advantages(data)
            done += sum(int(data[g, "mask"].sum()) for g in self.groups)
            seen = self._descend(data.select(*keep), critic_loss, optim, params)
            losses.append(sum(seen) / len(seen) / len(self.groups))
        return {
            "updates": updates,
            "decisions": done,
            "critic_loss_first": losses[0] if losses else None,
            "critic_loss_last": losses[-1] if losses else None,
        }

    def learned_policy(self, constants: Mapping[str, Any] | None = None) -> BatchedLearnedPolicy:
        """The actors as a :class:`BatchedLearnedPolicy` (sharing their parameters)."""
        env, nets = self.env, self.nets
        seats = {}
        for g in self.groups:
            idx = next(i for i, a in enumerate(nets.distinct_actors) if a is nets.actor[g])
            for p in env.group_players[g]:
                seats[p] = idx
        return BatchedLearnedPolicy(
            env.mechanism_name,
            env.action_encoding,
            nets.distinct_actors,
            seats,
            env.obs_size,
            env.K,
            self.sizes,
            env.api.spec,
            constants,
            self.cfg.hidden,
            mech=env.api.mech,
            features=env.features,
            **self._plan_options(),
        )

    def _plan_options(self) -> dict[str, Any]:
        plan = getattr(self.env.factored, "plan", None)
        if plan is None:
            return {}
        return {"price_levels": plan.levels, "price_grid": plan.grid}


def ppo_loss(
    losses: Mapping[str, ClipPPOLoss],
    mb: TensorDictBase,
    critic_coef: float,
    entropy: dict[str, float] | None = None,
) -> torch.Tensor:
    """The minibatch's loss summed over groups: clipped objective and entropy bonus over
    the transitions where the group's agents act, ``critic_coef`` × the critic's squared
    error over every transition (``entropy`` receives each group's mean entropy)."""
    total = torch.zeros(())
    for g, loss in losses.items():
        acting = mb[g, "mask"]
        total = total + critic_coef * loss.loss_critic(mb)[0].mean()
        rows = acting.any(-1)
        if not rows.any():
            continue
        # the actor's terms only where one of the group's agents acts (its keys only)
        out = loss(mb.select(g)[rows])
        acting = acting[rows]
        total = (
            total
            + _masked_mean(out["loss_objective"], acting)
            + _masked_mean(out["loss_entropy"], acting)
        )
        if entropy is not None:
            entropy[g] = float(out["entropy"])
    return total


def _normalise_advantage(data: TensorDictBase, g: str) -> None:
    """Centre and scale ``g``'s advantages over the steps where its agents act."""
    adv = data[g, "advantage"]
    acting = data[g, "mask"].unsqueeze(-1).expand_as(adv)
    if int(acting.sum()) < 2:
        return
    sel = adv[acting]
    data[g, "advantage"] = (adv - sel.mean()) / (sel.std() + 1e-8)
