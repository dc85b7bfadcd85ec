"""Policies the learners play against, and trained models wrapped as policies.

A *policy source* is a callable ``(ctx, rng) -> policy`` that builds, for one episode's
context, a policy (``act(mech, ctx, state, player)``) for any player. Sources come from
:func:`resolve_source`: ``"predicted"`` (``AGENTS[name].predicted``), ``"random"`` (uniform
legal play through the env's layout), the name of a documented deviation
(``AGENTS[name].deviations``), the path of a saved model (a frozen :class:`LearnedPolicy`), a
policy object, or a callable. A mapping ``{player: source}`` gives different players
different sources (:func:`resolve_sources`).

:class:`LearnedPolicy` turns an SB3 model into a deterministic policy over engine states: the
action is the argmax of the model's action scores (policy logits, or Q-values for DQN) under
the encoding's mask, so it can be evaluated exactly with
:func:`mechgym.envs.engine.game.evaluate_exact`.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from mechgym.agents.base import RandomPolicy
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.game import EnvSpec, Mechanism

from .encodings import Encoding, ObservationBuilder, symlog

PolicySource = Callable[[Any, np.random.Generator], Any]

ALGOS = ("maskable_ppo", "ppo", "a2c", "dqn")


class SourcePolicy:
    """A policy that already exists, offered as a source (ignores the context)."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def __call__(self, ctx: Any, rng: np.random.Generator) -> Any:
        return self.policy


def resolve_source(spec: Any, mech_name: str, env_spec: EnvSpec) -> PolicySource:
    """Turn an opponent description into a policy source (see the module docstring)."""
    from mechgym.envs.pettingzoo.registry import entry

    if hasattr(spec, "act"):
        return SourcePolicy(spec)
    if callable(spec):
        return spec
    if not isinstance(spec, str):
        raise ParameterError("opponents", f"cannot use {spec!r} as a policy")
    agents = entry(mech_name).load_agents()
    if spec == "predicted":
        return lambda ctx, rng: agents.predicted(ctx)
    if spec == "random":
        return lambda ctx, rng: RandomPolicy(rng, env_spec)
    if spec in agents.deviations:
        dev = agents.deviations[spec]
        return lambda ctx, rng: dev(ctx, rng)
    if spec.endswith(".zip") or Path(spec).exists() or Path(spec + ".zip").exists():
        return SourcePolicy(load_policy(spec, mechanism=mech_name, spec=env_spec))
    known = ["predicted", "random", *agents.deviations]
    raise ParameterError(
        "opponents", f"unknown opponent {spec!r}; use one of {', '.join(known)} or a model path"
    )


def resolve_sources(
    spec: Any, players: list[int], mech_name: str, env_spec: EnvSpec
) -> dict[int, PolicySource]:
    """One source per player: a mapping ``{player: description}`` or one description for all."""
    if isinstance(spec, Mapping):
        missing = [p for p in players if p not in spec]
        if missing:
            raise ParameterError("opponents", f"no policy given for players {missing}")
        return {p: resolve_source(spec[p], mech_name, env_spec) for p in players}
    src = resolve_source(spec, mech_name, env_spec)
    return dict.fromkeys(players, src)


# -- trained models ---------------------------------------------------------------------------


def algo_class(algo: str) -> type:
    """The SB3 / sb3-contrib class of an algorithm name."""
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    if algo == "ppo":
        from stable_baselines3 import PPO

        return PPO
    if algo == "a2c":
        from stable_baselines3 import A2C

        return A2C
    if algo == "dqn":
        from stable_baselines3 import DQN

        return DQN
    raise ParameterError("algo", f"unknown algorithm {algo!r}; use one of {', '.join(ALGOS)}")


def action_scores(model: Any, obs: np.ndarray) -> np.ndarray:
    """The model's per-value action scores for one observation (flat over MultiDiscrete
    fields): policy logits for actor-critic models, Q-values for DQN."""
    import torch as th

    policy = model.policy
    with th.no_grad():
        obs_t, _ = policy.obs_to_tensor(obs)
        if hasattr(policy, "q_net"):
            return policy.q_net(obs_t)[0].cpu().numpy()
        dist = policy.get_distribution(obs_t)
        inner = getattr(dist, "distributions", None) or dist.distribution
        if isinstance(inner, list):
            return th.cat([d.logits[0] for d in inner]).cpu().numpy()
        return inner.logits[0].cpu().numpy()


def masked_argmax(scores: np.ndarray, mask: np.ndarray, nvec: np.ndarray | None) -> Any:
    """Argmax of ``scores`` under ``mask``: one index (Discrete) or one per field."""
    masked = np.where(mask.astype(bool), scores, -np.inf)
    if nvec is None:
        return int(np.argmax(masked))
    out = np.zeros(len(nvec), dtype=np.int64)
    lo = 0
    for k, size in enumerate(nvec):
        out[k] = int(np.argmax(masked[lo : lo + size]))
        lo += int(size)
    return out


class LearnedPolicy:
    """A trained model as a deterministic policy over engine states (argmax under the mask).

    A model trained for one player can play any seat (its observation names the player it
    acts for); a coalition model plays only for its members.

    Parameters
    ----------
    model : SB3 model
    builder : ObservationBuilder
        The observation the model was trained on (encoding, members, normalisation).
    cache : bool
        Memoise actions by (observation, mask); valid while the model is not trained further.
    """

    def __init__(self, model: Any, builder: ObservationBuilder, cache: bool = True) -> None:
        self.model = model
        self.builder = builder
        self.encoding: Encoding = builder.encoding
        space = self.encoding.action_space
        self.nvec = np.asarray(space.nvec) if hasattr(space, "nvec") else None
        self._cache: dict[bytes, Any] | None = {} if cache else None

    def encoded_action(self, ctx: Any, state: Any, player: int) -> Any:
        """The encoded action (menu index or layout array) at ``state``."""
        obs = self.builder.build(ctx, state, player)
        mask = self.encoding.mask(ctx, state, player)
        if self._cache is None:
            return masked_argmax(action_scores(self.model, obs), mask, self.nvec)
        key = obs.tobytes() + mask.tobytes()
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        a = masked_argmax(action_scores(self.model, obs), mask, self.nvec)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = a
        return a

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        builder = self.builder
        if player not in builder.members:
            if len(builder.members) != 1:
                raise ParameterError(
                    "policy",
                    f"this coalition model plays for players {list(builder.members)}, not {player}",
                )
            # a single-player model can sit in any seat: its observation names the player
            self.builder = self._seat(player)
        try:
            if getattr(self.encoding, "plan", None) is not None:
                return self._compose(mech, ctx, state, player)
            return self.encoding.decode(ctx, state, player, self.encoded_action(ctx, state, player))
        finally:
            self.builder = builder

    def _compose(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        """A factored encoding's move: the model's sub-decisions, composed and decoded."""
        from .batched_obs import compose_moves

        enc, b = self.encoding, self.builder
        spec, layout = enc.spec, enc.layout
        mask = mech.action_mask(state, player, spec, layout)
        core = b.build(ctx, state, player)
        P = b.prefix_size

        def observe(prefix: np.ndarray, rows: np.ndarray) -> np.ndarray:
            out = np.repeat(core[None], len(rows), axis=0)
            tail = symlog(prefix) if b.normalize == "symlog" else prefix.astype(np.float32)
            out[:, -P:] = np.clip(tail, -b.bound, b.bound)
            return out

        lower = getattr(ctx, "lower", None)
        own = None if lower is None else np.asarray(lower, dtype=np.int64)[player][None]
        arr = compose_moves(self.model, enc.plan, mask[None], own, observe)[0]  # type: ignore[attr-defined]
        phase = mech.node(state).phase
        arr = layout.check(arr, mask, f"player_{player}", phase)
        return mech.validate(state, player, mech.decode(state, player, arr, spec, layout))

    def _seat(self, player: int) -> ObservationBuilder:
        seats = self.__dict__.setdefault("_seats", {})
        if player not in seats:
            b = self.builder
            seats[player] = ObservationBuilder(
                b.encoding, (player,), b.context_class, normalize=b.normalize, features=b.features
            )
        return seats[player]


class SharedPolicy(LearnedPolicy):
    """A parameter-shared model (self-play) that plays for the members of several groups,
    each with the observation of its own group."""

    def __init__(
        self, model: Any, builders: Mapping[tuple[int, ...], ObservationBuilder], cache: bool = True
    ) -> None:
        first = next(iter(builders.values()))
        super().__init__(model, first, cache)
        self.by_player = {p: b for g, b in builders.items() for p in g}

    def encoded_action(self, ctx: Any, state: Any, player: int) -> Any:
        self.builder = self.by_player[player]
        return super().encoded_action(ctx, state, player)

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        if player not in self.by_player:
            raise ParameterError(
                "policy",
                f"this shared model plays for players {sorted(self.by_player)}, not {player}",
            )
        if getattr(self.encoding, "plan", None) is not None:
            self.builder = self.by_player[player]
            return self._compose(mech, ctx, state, player)
        return self.encoding.decode(ctx, state, player, self.encoded_action(ctx, state, player))


# -- model files: an SB3 .zip holds pickles, so loading one can run code ---------------------

#: the context classes a sidecar may name (nothing else is imported from metadata)
CONTEXT_CLASSES = {
    "mechgym.envs.model.context:AuctionContext",
    "mechgym.envs.model.states:StateContext",
    "mechgym.envs.model.market:MarketContext",
}
_TRUST: contextvars.ContextVar[bool] = contextvars.ContextVar("mechgym_trust_model", default=False)


@contextlib.contextmanager
def trusted_models(trust: bool = True) -> Iterator[None]:
    """Within the block, load model files that mechgym did not write (``--trust-model``)."""
    token = _TRUST.set(trust)
    try:
        yield
    finally:
        _TRUST.reset(token)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_model_file(path: str | Path, trust: bool | None = None) -> Path:
    """Refuse a model ``.zip`` that mechgym did not write, before anything unpickles it.

    mechgym records the zip's sha256 in the sidecar ``.json`` when it saves a model; a file
    without a sidecar, or whose bytes no longer match it, is refused unless ``trust`` (or an
    enclosing :func:`trusted_models`). This recognises files mechgym wrote; it does not
    authenticate them: whoever can write both files can forge a sidecar.

    Raises
    ------
    ParameterError
        Naming the file and why it is refused.
    """
    p = Path(path)
    if p.suffix != ".zip":
        p = p.with_suffix(".zip")
    if not p.is_file():
        raise ParameterError("model", f"no saved model at {p}")
    if _TRUST.get() if trust is None else trust:
        return p
    hint = (
        "an SB3 .zip holds pickles and can run code when loaded; pass --trust-model "
        "(trust=True) only for files from a source you trust"
    )
    side = p.with_suffix(".json")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        recorded = meta.get("sha256") if isinstance(meta, dict) else None
    except (OSError, ValueError):
        recorded = None
    if not isinstance(recorded, str):
        raise ParameterError(
            "model", f"{p} has no mechgym sidecar with its sha256 ({side.name}); {hint}"
        )
    if file_sha256(p) != recorded:
        raise ParameterError(
            "model", f"{p} does not match the sha256 mechgym recorded when saving it; {hint}"
        )
    return p


def save_model(model: Any, path: str | Path, meta: Mapping[str, Any]) -> Path:
    """Save an SB3 model as ``path`` (``.zip``) with its sidecar ``.json`` of metadata
    (mechanism, algorithm, encoding, learner players, normalisation, features, spec) and the
    zip's sha256, by which :func:`check_model_file` knows mechgym wrote it."""
    p = Path(path)
    if p.suffix != ".zip":
        p = p.with_suffix(".zip")
    p.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(p))
    p.with_suffix(".json").write_text(
        json.dumps({**dict(meta), "sha256": file_sha256(p)}, indent=2, default=str),
        encoding="utf-8",
    )
    return p


def load_meta(path: str | Path) -> dict[str, Any]:
    """The sidecar metadata of a saved model."""
    p = Path(path)
    if p.suffix != ".zip":
        p = p.with_suffix(".zip")
    side = p.with_suffix(".json")
    if not side.exists():
        raise ParameterError(
            "model", f"{side} is missing: a model needs its metadata file to be played"
        )
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ParameterError("model", f"cannot read {side} ({exc})") from None


def load_policy(
    path: str | Path,
    trust: bool | None = None,
    mechanism: str | None = None,
    spec: EnvSpec | None = None,
) -> LearnedPolicy:
    """A saved model (with its sidecar metadata) as a frozen :class:`LearnedPolicy`.

    The file is checked by :func:`check_model_file` first; ``trust`` overrides the check. The
    model's spaces are checked against its sidecar's setting, and, with ``mechanism`` (and
    ``spec``), the setting against the one it is to play in
    (:func:`~mechgym.training.sidecar.check_fits`): a mismatch is a
    :class:`ParameterError` naming what differs.
    """
    from .sidecar import check_fits, check_spaces

    p = check_model_file(path, trust)
    meta = load_meta(p)
    if not isinstance(meta, dict):
        raise ParameterError("model", f"the metadata of {p} is not a JSON object")
    try:
        policy = _load_policy(p, meta)
        check_spaces(policy.model, policy.builder, meta, p)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ParameterError):
            raise
        raise ParameterError(
            "model", f"the metadata of {p} is incomplete or malformed ({type(exc).__name__}: {exc})"
        ) from None
    if mechanism is not None:
        check_fits(policy, p, mechanism, spec)
    return policy


def _load_policy(p: Path, meta: dict[str, Any]) -> LearnedPolicy:
    from mechgym.envs.pettingzoo.registry import entry

    if meta.get("algo") not in ALGOS:
        raise ParameterError(
            "model", f"the metadata names an unknown algorithm {meta.get('algo')!r}"
        )
    e = entry(meta["mechanism"])
    ctx_cls = _context_class(meta.get("context_class", "mechgym.envs.model.context:AuctionContext"))
    model = algo_class(meta["algo"]).load(str(p), device="cpu")
    mech = e.mechanism_class()(**meta.get("constants", {}))
    s = meta["spec"]
    spec = EnvSpec(n=s["n"], m=s["m"], value_cap=s["value_cap"], price_cap=s["price_cap"])
    from .encodings import make_encoding

    enc = make_encoding(
        meta["encoding"],
        e.name,
        mech,
        spec,
        e.load_agents(),
        price_levels=int(meta.get("price_levels", 16)),
        price_grid=str(meta.get("price_grid", "linear")),
    )
    if meta.get("shared"):
        builders = {
            tuple(g): ObservationBuilder(
                enc, tuple(g), ctx_cls, meta["normalize"], meta["features"]
            )
            for g in meta["groups"]
        }
        return SharedPolicy(model, builders)
    builder = ObservationBuilder(
        enc, tuple(meta["members"]), ctx_cls, meta["normalize"], meta["features"]
    )
    return LearnedPolicy(model, builder)


def _context_class(path: str) -> type:
    import importlib

    if path not in CONTEXT_CLASSES:
        # metadata may name only mechgym's own classes: importing is running code
        raise ParameterError(
            "model", f"the metadata names {path!r}, not one of mechgym's context classes"
        )
    mod, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError):
        raise ParameterError(
            "model", f"cannot import the context class {path!r} named in the metadata"
        ) from None


def class_path(cls: type) -> str:
    """``module:qualname`` of a class (stored in model metadata)."""
    return f"{cls.__module__}:{cls.__qualname__}"
