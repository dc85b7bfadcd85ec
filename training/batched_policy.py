"""Policies learned on the batched path, as batched and exact policies.

:class:`BatchedLearnedPolicy` holds the actor networks a batched learner trained
(:mod:`mechgym.training.batched_ppo`) and plays them deterministically, the argmax of the
logits under the mask, in every form mechgym evaluates:

* a **batched policy** (:class:`~mechgym.agents.batched.BatchedPolicy`:
  ``act(rules, ctx, state, players, rng) -> (B, n, L)``), so it can be a background player of
  the TorchRL env or of the vectorised learner env;
* an **exact policy** (:meth:`BatchedLearnedPolicy.exact`: ``act(mech, ctx, state, player)``)
  for :func:`~mechgym.training.metrics.evaluate_profile`, which computes agreement, bounds,
  guarantees and exploitability with chance enumerated;
* **TorchRL actions** (:meth:`BatchedLearnedPolicy.env_actions`): the argmax for the
  groups of a :class:`~mechgym.integrations.torchrl_batched.BatchedMechanismEnv`
  tensordict, whatever the env's encoding.

Observations are the TorchRL env's (the AEC observation vector: phase, acting flag, own
index, private information, public history), so the same network reads a batched state, an
engine state (:func:`~mechgym.training.encodings.aec_observation`) or an env tensordict.
Files hold only tensors and plain metadata (``torch.save``), loaded with
``weights_only=True``: loading one runs no code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mechgym.envs.engine.errors import ContextError, ParameterError
from mechgym.envs.engine.factored import FACTORED_ENCODINGS
from mechgym.envs.engine.game import EnvSpec
from torch import nn

__all__ = [
    "BatchedLearnedPolicy",
    "ExactLearnedPolicy",
    "PolicyNet",
    "beta_concentrations",
    "symlog",
]

FORMAT = "mechgym-batched-policy/1"


def symlog(x: torch.Tensor) -> torch.Tensor:
    """``sign(x) * log1p(|x|)``: money on a log scale, 0/1 flags kept apart."""
    return torch.log1p(x.abs()).copysign(x)


def beta_concentrations(raw: torch.Tensor) -> torch.Tensor:
    """The ``continuous`` head's two Beta concentrations ``(..., 2)`` from its two raw
    outputs: ``1 + softplus`` (both > 1: a unimodal Beta, as in Beta-policy PPO)."""
    return 1.0 + nn.functional.softplus(raw)


class PolicyNet(nn.Module):
    """``symlog`` then an MLP with ReLU activations: logits (actor) or a value (critic).

    Parameters
    ----------
    inputs, outputs : int
    hidden : sequence of int
    """

    def __init__(self, inputs: int, outputs: int, hidden: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = inputs
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU(inplace=True)]
            width = int(h)
        layers.append(nn.Linear(width, outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(symlog(obs))


def field_index(sizes: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(F, S)`` positions of every field's values in the flat layout mask (``S`` the
    largest field) and which of them are real (the rest pad a short field)."""
    sizes = [int(s) for s in sizes]
    S = max(sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    index = np.zeros((len(sizes), S), dtype=np.int64)
    valid = np.zeros((len(sizes), S), dtype=bool)
    for k, s in enumerate(sizes):
        index[k, :s] = offsets[k] + np.arange(s)
        valid[k, :s] = True
    return torch.from_numpy(index), torch.from_numpy(valid)


def per_field(
    flat: torch.Tensor, mask: torch.Tensor, index: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat logits and mask ``(..., mask_size)`` as ``(..., F, S)``; a field that allows
    nothing (unread in this phase) allows its value 0, so every field's distribution is
    defined."""
    logits = flat[..., index]
    m = mask[..., index] & valid
    m[..., 0] |= ~m.any(-1)
    return logits, m


class BatchedLearnedPolicy:
    """Actor networks of a batched learner, played deterministically (module docstring).

    Parameters
    ----------
    mechanism : str
        Catalogue name.
    encoding : str
        The TorchRL env's ``action_encoding`` the networks were trained in.
    actors : sequence of PolicyNet
        The distinct actor networks.
    seats : mapping of int to int
        Which network plays each learned player.
    obs_size, K : int
        Observation length and action-mask length (menu size or flat layout mask).
    sizes : sequence of int, optional
        Field sizes of the ``"multidiscrete"`` layout.
    spec : EnvSpec, optional
        The env sizes (players, goods, value and price caps) of training.
    constants : mapping, optional
        The mechanism's constants (``{"eps": "1/10"}``), to rebuild it from a file.
    hidden : sequence of int
        Hidden widths (for saving and loading).
    mech : Mechanism, optional
        The exact mechanism (rebuilt from ``mechanism`` and ``constants`` when not given).
    price_levels, price_grid : int, str
        The ``"factored"`` encoding's amount grid (see :mod:`mechgym.envs.engine.factored`).
    features : bool
        Whether the observations end with the pending-question features (the env's
        ``features``), before a factored move so far.
    """

    def __init__(
        self,
        mechanism: str,
        encoding: str,
        actors: Sequence[PolicyNet],
        seats: Mapping[int, int],
        obs_size: int,
        K: int,
        sizes: Sequence[int] | None = None,
        spec: Any = None,
        constants: Mapping[str, Any] | None = None,
        hidden: Sequence[int] = (64, 64),
        mech: Any = None,
        price_levels: int = 16,
        price_grid: str = "linear",
        features: bool = False,
    ) -> None:
        self.mechanism = mechanism
        self.encoding = encoding
        self.actors = nn.ModuleList(actors)
        self.seats = {int(p): int(i) for p, i in seats.items()}
        self.obs_size = int(obs_size)
        self.K = int(K)
        self.sizes = None if sizes is None else [int(s) for s in sizes]
        self.spec = spec
        self.constants = {str(k): str(v) for k, v in (constants or {}).items()}
        self.mech = mech
        self.price_levels, self.price_grid = int(price_levels), str(price_grid)
        self.hidden = [int(h) for h in hidden]
        if self.sizes is not None:
            self._index, self._valid = field_index(self.sizes)
        self.continuous = encoding == "continuous"
        self.features = bool(features)
        self._menu_fn: Any = None
        self._exact: ExactLearnedPolicy | None = None

    @property
    def players(self) -> list[int]:
        """The players this policy plays for."""
        return sorted(self.seats)

    # -- choosing --------------------------------------------------------------------------
    def _actor(self, player: int) -> PolicyNet:
        if player not in self.seats:
            raise ParameterError(
                "policy", f"this policy plays for players {self.players}, not {player}"
            )
        return self.actors[self.seats[player]]

    @torch.no_grad()
    def choose(self, player: int, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Argmax under ``mask`` of ``player``'s logits on ``obs`` ``(..., obs_size)``:
        ``(...)`` menu entries, or ``(..., F)`` field values for the layout."""
        if obs.shape[-1] != self.obs_size:
            raise ContextError(
                "observation",
                f"the policy reads observations of length {self.obs_size}, got {obs.shape[-1]}"
                " (other sizes, caps or encoding than in training?)",
            )
        logits = self._actor(player)(obs)
        if self.continuous:
            logits = logits[..., : self.K]
        if self.sizes is None:
            return logits.masked_fill(~mask, -torch.inf).argmax(-1)
        lg, m = per_field(logits, mask, self._index, self._valid)
        return lg.masked_fill(~m, -torch.inf).argmax(-1)

    @torch.no_grad()
    def amount(self, player: int, obs: torch.Tensor) -> torch.Tensor:
        """The box value ``(...)`` in ``(0, 1)`` of a ``"continuous"`` policy: the mean of
        its Beta (the deterministic play, as the argmax is of the entries)."""
        conc = beta_concentrations(self._actor(player)(obs)[..., self.K : self.K + 2])
        return conc[..., 0] / conc.sum(-1)

    def env_actions(self, td: Any, env: Any) -> Any:
        """Write the argmax actions of ``env``'s learning groups into ``td`` (in place)."""
        for g in env.learners:
            players = env.group_players[g]
            obs, mask = td[g, "observation"], td[g, "action_mask"]
            acts = [self.choose(p, obs[:, j], mask[:, j]) for j, p in enumerate(players)]
            td[g, "action"] = torch.stack(acts, 1)
            if self.continuous:
                box = [self.amount(p, obs[:, j]) for j, p in enumerate(players)]
                td[g, "box"] = torch.stack(box, 1).unsqueeze(-1)
        return td

    # -- a batched policy ------------------------------------------------------------------
    def act(
        self,
        rules: Any,
        ctx: Any,
        state: Any,
        players: list[int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        """``(B, n, L)`` layout actions of ``players`` where they act (batched policy)."""
        from mechgym.training.batched_obs import learner_observations

        B, n, L = ctx.B, rules.spec.n, len(rules.layout)
        acts = np.zeros((B, n, L), dtype=np.int64)
        masks = None
        for p in players:
            rows = np.flatnonzero(state.acting[:, p])
            if not len(rows):
                continue
            obs = learner_observations(rules, ctx, state, p, self.features)
            obs = torch.from_numpy(obs[rows])
            if self.encoding == "menu":
                from mechgym.training.batched_obs import padded_menu

                if self._menu_fn is None:
                    from mechgym.agents.batched import batched_agents

                    self._menu_fn = batched_agents(self.mechanism).menu
                menu, valid = padded_menu(self._menu_fn, rules, ctx, state, p, self.K)
                k = self.choose(p, obs, torch.from_numpy(valid[rows])).numpy()
                acts[rows, p] = menu[rows, k]
            elif self.encoding == "multidiscrete":
                masks = rules.masks(state) if masks is None else masks
                mask = torch.from_numpy(masks[rows, p] != 0)
                acts[rows, p] = self.choose(p, obs, mask).numpy()
            elif self.encoding in FACTORED_ENCODINGS:
                masks = rules.masks(state) if masks is None else masks
                lower = None if ctx.lower is None else ctx.lower[rows, p]
                acts[rows, p] = self.compose(p, obs.numpy(), masks[rows, p], lower, rules)
            else:
                raise ParameterError(
                    "encoding",
                    f"a '{self.encoding}' policy plays through the TorchRL env (env_actions)",
                )
        return acts

    def plan(self, mech: Any, layout: Any, spec: Any) -> Any:
        """The sub-decision plan of the layout (cached per layout)."""
        from mechgym.envs.engine.factored import make_plan

        key = id(layout)
        cache = self.__dict__.setdefault("_plans", {})
        if key not in cache:
            m = spec.m if mech.context_kind != "states" else 0
            cache[key] = (
                layout,
                make_plan(
                    mech, layout, spec.n, m, self.encoding, self.price_levels, self.price_grid
                ),
            )
        return cache[key][1]

    def compose(
        self, player: int, obs: np.ndarray, masks: np.ndarray, lower: Any, rules: Any
    ) -> np.ndarray:
        """``(R, L)`` layout moves composed sub-decision by sub-decision (``"factored"``,
        ``"continuous"``): ``obs`` ``(R, base)`` the observations at the node's start,
        ``masks`` the node's layout masks, ``lower`` the player's own lower bounds (or
        ``None``); each sub-decision's observation ends with the move so far, as in the env;
        a sub-decision that reads the box gets :meth:`amount`."""
        from mechgym.envs.engine.factored import Composer

        plan = self.plan(rules.mech, rules.layout, rules.spec)
        R = len(obs)
        comp = Composer(plan, R)
        comp.begin(np.arange(R), masks, lower)
        while comp.composing.any():
            r = np.flatnonzero(comp.composing)
            x = torch.from_numpy(np.concatenate([obs[r], comp.features(r)], axis=1))
            valid = torch.from_numpy(comp.action_masks()[r] != 0)
            entry = self.choose(player, x, valid).numpy().astype(np.int64)
            box = self.amount(player, x).numpy() if self.continuous else None
            comp.choose(r, entry, box)
        return comp.act

    # -- an exact policy -------------------------------------------------------------------
    def exact(self) -> ExactLearnedPolicy:
        """The exact-path policy (``act(mech, ctx, state, player)``) of this policy, for
        :func:`~mechgym.training.metrics.evaluate_profile`."""
        if self._exact is None:
            self._exact = ExactLearnedPolicy(self)
        return self._exact

    def profile(self, background: Any = "predicted", seed: int = 0) -> Any:
        """``ctx -> {player: policy}`` for :func:`~mechgym.training.metrics.evaluate_profile`:
        the learned players play :meth:`exact`, the others ``background`` (``"predicted"``,
        ``"random"``, a deviation name, a policy, or ``{player: ...}``)."""
        from mechgym.training.policies import resolve_sources

        if self.spec is None:
            raise ParameterError("policy", "the policy does not know its env sizes (spec)")
        others = [p for p in range(self.spec.n) if p not in self.seats]
        sources = resolve_sources(background, others, self.mechanism, self.spec) if others else {}
        mine = self.exact()
        rng = np.random.default_rng(seed)

        def prof(ctx: Any) -> dict[int, Any]:
            out = {p: src(ctx, rng) for p, src in sources.items()}
            out.update(dict.fromkeys(self.seats, mine))
            return out

        return prof

    def exact_mechanism(self) -> Any:
        """The exact mechanism the policy was trained on (rebuilt from its constants)."""
        if self.mech is None:
            from mechgym.envs.pettingzoo.registry import entry

            self.mech = entry(self.mechanism).load_env_module().raw_env(**self.constants).mechanism
        return self.mech

    # -- files -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the networks and metadata to ``path`` (``torch.save``, tensors only)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "mechanism": self.mechanism,
            "encoding": self.encoding,
            "seats": {str(k): v for k, v in self.seats.items()},
            "obs_size": self.obs_size,
            "K": self.K,
            "sizes": self.sizes,
            "hidden": self.hidden,
            "price_levels": self.price_levels,
            "price_grid": self.price_grid,
            "features": self.features,
            "spec": None if self.spec is None else dataclasses.asdict(self.spec),
            "constants": self.constants,
        }
        torch.save({"meta": meta, "actors": [a.state_dict() for a in self.actors]}, p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> BatchedLearnedPolicy:
        """Read a file written by :meth:`save` (``weights_only``: no code runs)."""
        p = Path(path)
        if not p.is_file():
            raise ContextError("policy", f"no policy file at {p}")
        try:
            blob = torch.load(p, weights_only=True, map_location="cpu")
            meta = blob["meta"]
            ok = meta.get("format") == FORMAT
        except Exception as exc:  # any unreadable file: one clear message
            raise ContextError("policy", f"{p} is not a batched policy file: {exc}") from None
        if not ok:
            raise ContextError("policy", f"{p} is not a batched policy file ({FORMAT})")
        out_size = int(meta["K"]) + (2 if meta["encoding"] == "continuous" else 0)
        actors = []
        for sd in blob["actors"]:
            net = PolicyNet(int(meta["obs_size"]), out_size, meta["hidden"])
            net.load_state_dict(sd)
            actors.append(net)
        return cls(
            meta["mechanism"],
            meta["encoding"],
            actors,
            {int(k): int(v) for k, v in meta["seats"].items()},
            meta["obs_size"],
            meta["K"],
            meta["sizes"],
            None if meta["spec"] is None else EnvSpec(**meta["spec"]),
            meta["constants"],
            meta["hidden"],
            price_levels=meta.get("price_levels", 16),
            price_grid=meta.get("price_grid", "linear"),
            features=bool(meta.get("features", False)),
        )


class ExactLearnedPolicy:
    """A :class:`BatchedLearnedPolicy` on engine states: the AEC observation of the state,
    the encoding's exact mask (the menu entries, or the layout), the same argmax."""

    def __init__(self, policy: BatchedLearnedPolicy) -> None:
        from mechgym.envs.pettingzoo.registry import entry
        from mechgym.training.encodings import MenuEncoding, RawEncoding

        self.policy = policy
        self._ctx: Any = None
        self._memo: dict[Any, Any] = {}
        if policy.spec is None:
            raise ParameterError("policy", "the policy does not know its env sizes (spec)")
        mech, spec = policy.exact_mechanism(), policy.spec
        self.mech, self.spec = mech, spec
        agents = entry(policy.mechanism).load_agents()
        self.layout = mech.layout(spec)
        if policy.encoding in FACTORED_ENCODINGS:
            self.encoding: Any = None
        elif policy.encoding == "menu":
            self.encoding = MenuEncoding(policy.mechanism, mech, spec, agents)
        elif policy.encoding == "multidiscrete":
            self.encoding = RawEncoding(policy.mechanism, mech, spec, agents)
        else:
            raise ParameterError(
                "encoding", f"no exact form of the '{policy.encoding}' encoding yet"
            )

    def act(self, mech: Any, ctx: Any, state: Any, player: int) -> Any:
        """The policy's (deterministic) action at an engine state; remembered per state and
        player while the context stays the same object, since exact evaluation asks for the
        same states once per group it searches."""
        if ctx is not self._ctx:
            self._ctx, self._memo = ctx, {}  # the reference keeps ctx's id from being reused
        try:
            hit = self._memo.get((state, player))
        except TypeError:  # an unhashable state: no memo
            return self._act(mech, ctx, state, player)
        if hit is None:
            hit = self._memo[(state, player)] = self._act(mech, ctx, state, player)
        return hit

    def _act(self, mech: Any, ctx: Any, state: Any, player: int) -> Any:
        from mechgym.training.encodings import aec_observation, pending_question, question_vector

        obs = aec_observation(mech, ctx, state, player, self.spec)
        if self.policy.features:
            q = question_vector(ctx, player, pending_question(mech, ctx, state, player))
            obs = np.concatenate([obs, q])
        obs = torch.from_numpy(obs)
        if self.encoding is None:  # factored, continuous: compose the move, then decode it
            lay = self.layout
            node_mask = mech.action_mask(state, player, self.spec, lay)
            lower = getattr(ctx, "lower", None)
            own = None if lower is None else np.asarray(lower, dtype=np.int64)[player][None]
            rules = _ExactLayout(mech, lay, self.spec)
            arr = self.policy.compose(player, obs.numpy()[None], node_mask[None], own, rules)[0]
            phase = mech.node(state).phase
            arr = lay.check(arr, node_mask, f"player_{player}", phase)
            return mech.validate(state, player, mech.decode(state, player, arr, self.spec, lay))
        mask = torch.from_numpy(np.asarray(self.encoding.mask(ctx, state, player), dtype=bool))
        choice = self.policy.choose(player, obs, mask)
        action = int(choice) if choice.ndim == 0 else choice.numpy().astype(np.int64)
        return self.encoding.decode(ctx, state, player, action)


class _ExactLayout:
    """What :meth:`BatchedLearnedPolicy.compose` reads of batched rules, on the exact path."""

    def __init__(self, mech: Any, layout: Any, spec: Any) -> None:
        self.mech, self.layout, self.spec = mech, layout, spec
