"""The convergence experiment: does learned play approach the theorems' predictions?

For each mechanism, every player learns (:class:`~mechgym.training.multi.MultiLearner`,
scheme ``independent``): in each round the players train one after another against the
others' latest policies, a player that has not trained yet being played by the *predicted*
strategy (so round 1 starts from the theory's profile and asks whether learning stays there
or drifts). Training and evaluation use one fixed *family* of contexts drawn from the
mechanism's generator with a fixed seed (the same family for every training seed, so the
spread over seeds is the spread of learning). After every round, and before the first, the
learned profile (every player playing its model's argmax under the mask) is evaluated
exactly on the family (:func:`~mechgym.training.metrics.evaluate_profile`): per-phase
agreement with the predicted actions, bound satisfaction, E[REV]/benchmark, E[SW]/MSW, the
guarantee and exploitability (each player's best exact gain by deviating within the menu).
The predicted profile is evaluated the same way as the reference.

Outputs in ``out``: ``checkpoints/<mech>/seed_<k>/`` (every player's model after every
round, see :meth:`MultiLearner.save`), optionally ``tb/<mech>/seed_<k>/`` (TensorBoard, one
run per player), ``metrics.csv`` (one row per mechanism, seed, round, metric and key),
``summary.json`` (per mechanism and phase: mean, population std, min and max over seeds of
the final figures, with verdicts; a mechanism that cannot run or fails is listed with its
reason) and per mechanism ``<mech>_agreement.png`` and ``<mech>_revenue.png`` (one line per
seed against training steps, the prediction dashed).

Budgets (``steps`` is per player per round): default 4 seeds × 10 rounds × 8192 steps on 32
contexts, on the vectorised env of 64 slots (the batched path; ``n_envs=1`` trains on the
exact single env, as before, at a tenth of the speed); ``--quick`` 2 seeds × 3 rounds ×
1024 steps on 8 contexts. Short rounds matter as much as steps: a learner that has only met
the predicted profile has never been offered a price above its value, and learns its NO
answers once the others' learned offers make such questions appear. Seeds run in parallel
processes (one per core).

Verdicts are fixed thresholds, not tuned: a phase *converged to the prediction* when its
final agreement has mean >= 0.95 and min >= 0.90 over seeds; a bound phase *meets the
bound* when its bound satisfaction has mean >= 0.95 and min >= 0.90. Every learned figure
in ``summary.json`` also carries its interquartile mean over seeds with a seeded 95%
stratified-bootstrap interval (``iqm``, ``ci_low``, ``ci_high``), which the printed tables
show: a rerun elsewhere should land within those intervals, a rerun on the same machine
with the same versions reproduces every figure bit for bit.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.mechanisms.catalogue import SPECS

AGREE_MEAN, AGREE_MIN = 0.95, 0.90
#: schemes that train on the batched path (BatchedPPO) rather than with SB3 or RLlib
BATCHED_SCHEMES = ("simultaneous", "alternating", "fictitious")
#: summary keys that describe the run rather than a family's figures
RUN_FACTS = (
    "reference",
    "status",
    "seeds",
    "groups",
    "steps_per_seed",
    "idle_rounds",
    "wall_seconds_per_seed",
    "cpu_seconds_per_seed",
    "eval_seconds_per_seed",
)
#: bootstrap resamples behind each learned figure's 95% interval (seeded, as in rliable)
BOOTSTRAP_REPS = 1000
#: the exact search visits every legal action at every node below: beyond this it takes hours
MAX_FULL_SPACE_LIMIT = 65_536
FULL_SPACE_LABEL = "every legal action (exact best response over the mechanism's own space)"
BACKENDS = ("sb3", "rllib")

#: context families per mechanism (others: the env module's default generator)
DEFAULT_GENERATORS = {s.name: s.generator for s in SPECS.values() if s.generator is not None}


@dataclass
class ConvergeConfig:
    """Settings of :func:`run_converge` (``steps``: per player per round)."""

    mechanisms: tuple[str, ...] = ("best_belief",)
    seeds: int = 4
    rounds: int = 10
    steps: int = 8192
    family: int = 32
    family_seed: int = 2024
    generator: str | None = None
    #: held-out evaluation family: size (default: as ``family``), seed (default: the training
    #: family's seed + 1) and generator (default: the training one)
    eval_family: int | None = None
    eval_family_seed: int | None = None
    eval_generator: str | None = None
    algo: str = "maskable_ppo"
    encoding: str = "menu"
    #: the factored and continuous encodings' amount levels: how many, and where they lie
    #: (``"linear"``, ``"geometric"`` or the labelled ``"own-lower-bounds"``, built from
    #: the acting player's private lower bounds; see :mod:`mechgym.envs.engine.factored`)
    price_levels: int = 16
    price_grid: str = "linear"
    #: what plays a player before it has trained (round-based schemes): ``None`` is
    #: ``"predicted"`` there and ``"random"`` (random initial weights) for the batched
    #: schemes (``BATCHED_SCHEMES``), whose learners start at another profile by imitating
    #: it (not ``continuous``)
    init: str | None = None
    scheme: str = "independent"
    jobs: int = 0
    out: str = "results/converge"
    exploitability: bool = True
    #: after the last round, also each player's exact best-response gain over every legal
    #: action on the held-out family, where no node has more than this many (0: off; see
    #: full_space_exploitability; costly: seconds per context and player for M1)
    full_space_limit: int = 0
    save_models: bool = True
    tensorboard: bool = False
    quick: bool = False
    hyper: dict[str, Any] = field(default_factory=dict)
    #: replace the results of an earlier run in ``out`` (otherwise refused)
    overwrite: bool = False
    #: slots of the vectorised learner env (batched path); 1 = the exact single-episode env
    n_envs: int = 64
    #: no-regret rules (``algo`` regret_matching / hedge / fictitious_play): iterations over
    #: the family per round, in place of ``steps``
    iterations: int = 5
    #: who trains: ``"sb3"`` (players in alternation) or ``"rllib"`` (every player at once,
    #: sampling on Ray env runners; see :mod:`mechgym.training.rllib_jobs`)
    backend: str = "sb3"
    #: RLlib env runners (``None``: sized to the cluster)
    num_env_runners: int | None = None
    #: address of an existing Ray cluster (``None``: ``RAY_ADDRESS`` or a local one)
    address: str | None = None
    #: torch threads of every learner process (None: ``MECHGYM_TORCH_THREADS``, else 1)
    torch_threads: int | None = None
    #: learners' observations end with the pending-question features (own value of the
    #: offered item, its price, their difference), in every scheme of the SB3 and batched
    #: learners; ``False``: the AEC vector alone
    features: bool = True

    def __post_init__(self) -> None:
        # every count in its stated range before anything runs or is written (CLI and YAML)
        from mechgym.envs.engine.factored import FACTORED_ENCODINGS, check_encoding_options
        from mechgym.envs.engine.spaces import canonical_encoding
        from mechgym.envs.model.limits import check_count, check_seed

        self.encoding = canonical_encoding(self.encoding)
        # the grid's own checks, whatever the encoding (others refuse a non-default grid)
        check_encoding_options(FACTORED_ENCODINGS[0], self.price_levels, self.price_grid)

        for name in ("seeds", "rounds", "steps", "family", "n_envs", "iterations", "jobs"):
            check_count(getattr(self, name), name)
        check_seed(self.family_seed, "family_seed")
        if self.eval_family is not None:
            check_count(self.eval_family, "eval_family")
        if self.eval_family_seed is not None:
            check_seed(self.eval_family_seed, "eval_family_seed")

    @classmethod
    def quick_config(cls, **kwargs: Any) -> ConvergeConfig:
        """The ``--quick`` settings: 2 seeds, 3 rounds of 1024 steps, 8 contexts."""
        base = {"seeds": 2, "rounds": 3, "steps": 1024, "family": 8, "quick": True}
        base.update({k: v for k, v in kwargs.items() if v is not None})
        return cls(**base)


def family_contexts(mech: str, cfg: ConvergeConfig) -> tuple[str, list[Any]]:
    """The fixed training family of a mechanism: (generator description, contexts)."""
    return draw_family(mech, cfg.generator, cfg.family, cfg.family_seed)


def eval_family_contexts(mech: str, cfg: ConvergeConfig) -> tuple[str, list[Any]]:
    """The held-out evaluation family: drawn with another seed than the training family (and
    optionally another generator), so no evaluation context was trained on (up to chance
    repeats of small contexts, counted in the summary as ``eval_family.overlap``)."""
    size = cfg.family if cfg.eval_family is None else cfg.eval_family
    return draw_family(mech, cfg.eval_generator or cfg.generator, size, _eval_seed(cfg))


def _eval_seed(cfg: ConvergeConfig) -> int:
    return cfg.family_seed + 1 if cfg.eval_family_seed is None else cfg.eval_family_seed


def draw_family(mech: str, generator: str | None, size: int, seed: int) -> tuple[str, list[Any]]:
    """``size`` contexts from ``generator`` (default: the mechanism's) with ``seed``."""
    from mechgym.envs.model.generators import make_generator

    from .learner_env import learner_setting

    spec = generator or DEFAULT_GENERATORS.get(mech)
    if spec is not None:
        gen = make_generator(spec)
        desc = spec
    else:
        gen = learner_setting(mech).generator
        desc = gen.spec() if hasattr(gen, "spec") else repr(gen)
    rng = np.random.default_rng(seed)
    return desc, [gen.sample(rng) for _ in range(size)]


def overlap(a: Sequence[Any], b: Sequence[Any]) -> int:
    """How many contexts of ``b`` also occur in ``a`` (same values, beliefs and coalitions)."""
    keys = {_context_key(c) for c in a}
    return sum(_context_key(c) in keys for c in b)


def _context_key(ctx: Any) -> bytes:
    from mechgym.envs.model.contextfile import context_to_dict

    return json.dumps(context_to_dict(ctx), sort_keys=True, default=str).encode()


def price_options(cfg: ConvergeConfig) -> dict[str, Any]:
    """The amount-grid keywords every learner env of a run takes (read by the factored and
    continuous encodings only)."""
    return {"price_levels": cfg.price_levels, "price_grid": cfg.price_grid}


def check_learning_options(cfg: ConvergeConfig) -> None:
    """Refuse an unknown scheme, encoding or initial profile before anything runs."""
    from mechgym.envs.pettingzoo.registry import CATALOGUE

    from .encodings import ENCODINGS
    from .multi import SCHEMES
    from .noregret import RULES

    schemes = (*SCHEMES, *BATCHED_SCHEMES)
    if cfg.scheme not in schemes:
        raise ParameterError(
            "--scheme", f"unknown scheme {cfg.scheme!r}; use one of {', '.join(schemes)}"
        )
    if cfg.scheme in BATCHED_SCHEMES and cfg.algo in RULES:
        raise ParameterError(
            "--scheme", f"{cfg.scheme} learning runs PPO on the batched path, not a no-regret rule"
        )
    if cfg.encoding not in ENCODINGS:
        raise ParameterError(
            "--encoding", f"unknown encoding {cfg.encoding!r}; use one of {', '.join(ENCODINGS)}"
        )
    from mechgym.envs.engine.factored import FACTORED_ENCODINGS

    if cfg.encoding not in FACTORED_ENCODINGS and (
        cfg.price_grid != ConvergeConfig.price_grid
        or cfg.price_levels != ConvergeConfig.price_levels
    ):
        raise ParameterError(
            "--price-grid",
            f"price levels belong to the factored and continuous encodings, not {cfg.encoding!r}",
        )
    if not 0 <= cfg.full_space_limit <= MAX_FULL_SPACE_LIMIT:
        raise ParameterError(
            "--full-space-limit",
            f"must be between 0 (off) and {MAX_FULL_SPACE_LIMIT:,}, got {cfg.full_space_limit}",
        )
    if cfg.scheme in BATCHED_SCHEMES and cfg.init not in (None, "random"):
        if cfg.encoding == "continuous":
            raise ParameterError(
                "--init",
                f"{cfg.scheme} learners start at a profile ({cfg.init!r}) by imitating its "
                "actions, and continuous amounts are read from a box, not chosen among "
                "entries; use the menu, multidiscrete or factored encoding, or --init random",
            )
        if cfg.init.endswith(".zip") or Path(cfg.init).exists():
            raise ParameterError(
                "--init", f"{cfg.scheme} learners imitate a named profile, not a model file"
            )
    if cfg.algo in RULES or not isinstance(cfg.init, str):
        return
    if cfg.init.endswith(".zip") or Path(cfg.init).exists():
        return
    for mech in cfg.mechanisms:
        try:
            deviations = list(CATALOGUE[mech].load_agents().deviations)
        except (ImportError, KeyError):
            continue
        known = ["predicted", "random", *deviations]
        if cfg.init not in known:
            raise ParameterError(
                "--init",
                f"unknown initial profile {cfg.init!r} for {mech}; use one of {', '.join(known)}"
                " or a model path",
            )


def skip_reason(mech: str, encoding: str) -> str | None:
    """Why a mechanism cannot be run (not available, no agents, no menu), or ``None``."""
    from mechgym.envs.pettingzoo.registry import CATALOGUE

    e = CATALOGUE.get(mech)
    if e is None:
        return f"'{mech}' is not in the catalogue"
    if not e.available():
        return f"'{mech}' has no env module yet ({e.env_module})"
    try:
        agents = e.load_agents()
    except (ImportError, KeyError) as exc:
        return f"'{mech}' registers no scripted agents yet ({exc})"
    if encoding == "menu" and (agents.menu is None or agents.menu_size is None):
        return f"'{mech}' registers no menu (needed by the menu encoding)"
    return None


def run_job(mech: str, seed: int, cfg_dict: dict[str, Any], events: Any = None) -> dict[str, Any]:
    """Train every player of ``mech`` with one seed; evaluate after every round."""
    from .algos import configure_torch
    from .multi import MultiLearner

    cfg = ConvergeConfig(**{**cfg_dict, "mechanisms": tuple(cfg_dict["mechanisms"])})
    from .noregret import RULES

    if cfg.algo in RULES:
        return _run_no_regret_job(mech, seed, cfg, events)
    if cfg.backend == "rllib":
        from .rllib_jobs import run_rllib_job

        return run_rllib_job(mech, seed, cfg, events)
    if cfg.scheme in BATCHED_SCHEMES:
        return _run_batched_job(mech, seed, cfg, events)
    threads = configure_torch(cfg.torch_threads)
    t0, c0 = time.perf_counter(), time.process_time()
    _, contexts = family_contexts(mech, cfg)
    trainer = MultiLearner(
        mech,
        scheme=cfg.scheme,
        algo=cfg.algo,
        encoding=cfg.encoding,
        init=cfg.init or "predicted",
        seed=seed,
        contexts=contexts,
        hyper=cfg.hyper,
        n_envs=cfg.n_envs,
        env_kwargs={"features": cfg.features, **price_options(cfg)},
        tensorboard_log=str(Path(cfg.out) / "tb" / mech / f"seed_{seed}")
        if cfg.tensorboard
        else None,
    )
    enc = trainer.envs[trainer.groups[0]].encoding
    _, held_out = eval_family_contexts(mech, cfg)
    rows: list[dict[str, Any]] = []
    eval_s = 0.0
    final: dict[str, dict[str, Any]] = {}
    for r in range(cfg.rounds + 1):
        if r > 0:
            trainer.train_round(
                cfg.steps, on_group=lambda g, s: _emit(events, mech, seed, "train", s)
            )
            if cfg.save_models:
                trainer.save(Path(cfg.out) / "checkpoints" / mech / f"seed_{seed}")
        te = time.perf_counter()
        rows += evaluate_round(
            (mech, seed, r, trainer.total_steps),
            (trainer.mech, trainer.agents, trainer.profile(learned_only=True), trainer.groups),
            enc,
            cfg,
            held_out,
            contexts,
            final,
        )
        eval_s += time.perf_counter() - te
        _emit(events, mech, seed, "eval", r)
    return job_result(
        (mech, seed, trainer.total_steps),
        rows,
        final,
        trainer.groups,
        (t0, c0, eval_s),
        torch_threads=threads,
        idle=dict(trainer.idle),
    )


def job_result(
    where: tuple[str, int, int],
    rows: list[dict[str, Any]],
    final: dict[str, dict[str, Any]],
    groups: Sequence[Sequence[int]],
    clocks: tuple[float, float, float],
    **extra: Any,
) -> dict[str, Any]:
    """What a converge job returns: ``where`` is (mechanism, seed, learner decisions),
    ``final`` the last evaluation per family (:func:`evaluate_round`), ``clocks`` the job's
    start (wall, CPU) and its evaluation seconds; ``extra`` adds backend-specific facts."""
    mech, seed, steps = where
    t0, c0, eval_s = clocks
    return {
        "mechanism": mech,
        "seed": seed,
        "rows": rows,
        "final": final["heldout"],
        "final_train": final["train"],
        "evaluated_on": "heldout",
        "groups": [list(g) for g in groups],
        "wall_seconds": time.perf_counter() - t0,
        # CPU seconds of this process: with one torch thread, its wall time on an idle core
        "cpu_seconds": time.process_time() - c0,
        "eval_seconds": eval_s,
        "steps": steps,
        "idle": {},
        **extra,
    }


def evaluate_round(
    where: tuple[str, int, int, int],
    play: tuple[Any, Any, Any, Any],
    encoding: Any,
    cfg: ConvergeConfig,
    held_out: list[Any],
    train: list[Any],
    final: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """Evaluate a learned profile after a round on the families :func:`eval_families` names;
    ``where`` is (mechanism, seed, round, steps), ``play`` (mechanism object, agents,
    profile, groups). Returns the metric rows and keeps each family's figures in ``final``."""
    from .metrics import evaluate_profile

    mech, seed, rnd, steps = where
    mech_obj, agents, profile, groups = play
    rows: list[dict[str, Any]] = []
    for fam, ctxs in eval_families(rnd, cfg.rounds, held_out, train):
        met = evaluate_profile(
            mech_obj, agents, ctxs, profile, groups, encoding, exploitability=cfg.exploitability
        )
        triples = list(met.flat())
        final[fam] = met.to_json()
        if rnd == cfg.rounds and fam == "heldout":  # costly: the final profile, held out
            full = full_space_figures(
                mech_obj,
                encoding.spec,
                ctxs,
                profile,
                groups,
                cfg.exploitability,
                cfg.full_space_limit,
            )
            final[fam].update(full)
            triples += [
                ("exploitability_full", k, v)
                for k, v in (full["exploitability_full"] or {}).items()
            ]
        rows += metric_rows(mech, seed, rnd, steps, triples, fam)
    return rows


def full_space_figures(
    mech_obj: Any,
    spec: Any,
    ctxs: list[Any],
    profile: Any,
    groups: Sequence[Sequence[int]],
    exploitability: bool,
    limit: int,
) -> dict[str, Any]:
    """``exploitability_full`` (per group, ``None`` where the full action space has a node with
    more than ``limit`` legal actions, or the search is off) and its maximum over groups."""
    from .equilibrium import full_space_exploitability

    full = None
    if exploitability and limit > 0:
        full = full_space_exploitability(
            mech_obj, spec, ctxs, profile, [tuple(g) for g in groups], limit
        )
    return {
        "exploitability_full": full,
        "exploitability_full_max": max(full.values()) if full else None,
    }


def eval_families(
    rnd: int, rounds: int, held_out: list[Any], train: list[Any]
) -> list[tuple[str, list[Any]]]:
    """The families evaluated after round ``rnd``: the held-out one every round (the learning
    curves), the training one before the first and after the last round (the summary's
    figures beside the held-out ones), so evaluation does not double the run's cost."""
    if rnd in (0, rounds):
        return [("heldout", held_out), ("train", train)]
    return [("heldout", held_out)]


def metric_rows(
    mech: str,
    seed: int,
    rnd: int,
    steps: int,
    triples: Iterable[tuple[str, str, Any]],
    family: str = "heldout",
) -> list[dict[str, Any]]:
    """The ``metrics.csv`` rows of one evaluation on ``family`` (``"heldout"`` or
    ``"train"``; see :func:`write_csv`) from its ``(metric, key, value)`` triples."""
    return [
        {
            "mechanism": mech,
            "seed": seed,
            "round": rnd,
            "steps": steps,
            "family": family,
            "metric": metric,
            "key": key,
            "value": value,
        }
        for metric, key, value in triples
    ]


def _run_batched_job(
    mech: str, seed: int, cfg: ConvergeConfig, events: Any = None
) -> dict[str, Any]:
    """:func:`run_job` for the batched schemes (PPO on the batched path,
    :mod:`mechgym.training.batched_ppo`), each player with ``cfg.steps`` decisions a round
    as in the other schemes, from random initial weights or, with an ``init`` profile
    (``"predicted"``, a deviation), from actors that imitated it (behaviour cloning on
    ``cfg.steps`` decisions per player, before round 0 and outside the budget).

    ``simultaneous``: every player learns at once, all sampling. ``alternating``: in each
    round the players learn one after another, each against the others' actors frozen and
    played by their mode (argmax), as SB3's ``independent`` rounds do; a player that has
    not trained yet samples from its initial actor (random weights stand for random play;
    a clone plays its mode, the profile it imitated). ``fictitious``: the same rounds, but
    the others play, in each episode, one of their past actors drawn uniformly (the
    initial one, sampling if random, and the one after each of their turns): a best
    response to their average play, as in fictitious play. Evaluation, in every scheme,
    plays each player's latest actor by its mode (not the average of a population)."""
    from dataclasses import fields as dc_fields

    import torch
    from mechgym.envs.pettingzoo.registry import entry

    from mechgym.integrations.torchrl_batched import BatchedMechanismEnv

    from .algos import configure_torch
    from .batched_ppo import BatchedPPO, BatchedPPOConfig
    from .encodings import make_encoding
    from .learner_env import group_label

    threads = configure_torch(cfg.torch_threads)
    t0, c0 = time.perf_counter(), time.process_time()
    _, contexts = family_contexts(mech, cfg)
    _, held_out = eval_family_contexts(mech, cfg)
    known = {f.name for f in dc_fields(BatchedPPOConfig)}
    ppo_cfg = BatchedPPOConfig(**{k: v for k, v in cfg.hyper.items() if k in known})
    ppo_cfg.check()
    env = BatchedMechanismEnv(
        mech,
        ppo_cfg.batch_size,
        contexts=contexts,
        action_encoding=cfg.encoding,
        seed=seed,
        features=cfg.features,
        **price_options(cfg),
    )
    agents = entry(mech).load_agents()
    n = int(contexts[0].n)
    groups = [(p,) for p in range(n)]
    # exploitability: the best deviation within the menus (the learners' own space for menu)
    options = make_encoding("menu", mech, env.api.mech, env.api.spec, agents)
    rows: list[dict[str, Any]] = []
    final: dict[str, dict[str, Any]] = {}
    eval_s, total = 0.0, 0
    imitation: dict[str, Any] | None = None
    idle: dict[str, int] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ppo = BatchedPPO(env, ppo_cfg, share_parameters=False, seed=seed)
        if cfg.init not in (None, "random"):
            # start at the profile: behaviour cloning, outside the learning budget
            imitation = ppo.imitate(
                cfg.steps * n,
                teacher=cfg.init,
                epochs=int(cfg.hyper.get("imitation_epochs", 20)),
                seed=seed,
            )
            # optionally the critics learn the clone's returns before PPO moves the actors
            warm = cfg.hyper.get("critic_warmup", 0)
            if warm:
                imitation["critic_warmup"] = ppo.warm_critics(warm)
            _emit(events, mech, seed, "train", 0)
        trained: set[str] = set()
        if cfg.scheme == "fictitious":
            for g in ppo.groups:
                ppo.snapshot(g, sample=imitation is None)
        for r in range(cfg.rounds + 1):
            if r > 0 and cfg.scheme == "simultaneous":
                res = ppo.train(cfg.steps * n)
                total += res.decisions
                _emit(events, mech, seed, "train", cfg.steps * n)
            elif r > 0:
                for g in ppo.groups:
                    others = [h for h in ppo.groups if h != g]
                    if cfg.scheme == "fictitious":
                        res = ppo.train(cfg.steps, learners=[g], mixed=others)
                        ppo.snapshot(g)
                    else:
                        # untrained random actors sample (random play); trained ones, and
                        # clones, play their mode
                        fresh = imitation is None
                        explore = [h for h in others if fresh and h not in trained]
                        res = ppo.train(cfg.steps, learners=[g], explore=explore)
                    trained.add(g)
                    total += res.decisions
                    if res.idle:
                        label = group_label(tuple(env.group_players[g]))
                        idle[label] = idle.get(label, 0) + 1
                    _emit(events, mech, seed, "train", cfg.steps)
            learned = ppo.learned_policy()
            if r > 0 and cfg.save_models:
                # the latest round's actors (BatchedLearnedPolicy.load reads them back)
                learned.save(Path(cfg.out) / "checkpoints" / mech / f"seed_{seed}" / "policy.pt")
            te = time.perf_counter()
            profile = learned.profile()
            rows += evaluate_round(
                (mech, seed, r, total),
                (env.api.mech, agents, profile, groups),
                options,
                cfg,
                held_out,
                contexts,
                final,
            )
            eval_s += time.perf_counter() - te
            _emit(events, mech, seed, "eval", r)
    out = job_result(
        (mech, seed, total),
        rows,
        final,
        groups,
        (t0, c0, eval_s),
        torch_threads=threads,
        idle=idle,
    )
    if imitation is not None:
        out["imitation"] = imitation
    return out


def _run_no_regret_job(
    mech: str, seed: int, cfg: ConvergeConfig, events: Any = None
) -> dict[str, Any]:
    """:func:`run_job` for the no-regret rules: every player learns one table per decision
    over the menus (exact counterfactual values), ``cfg.iterations`` iterations a round."""
    from mechgym.envs.pettingzoo.registry import entry

    from .encodings import make_encoding
    from .learner_env import learner_setting
    from .metrics import evaluate_profile
    from .noregret import NoRegretLearner

    t0 = time.perf_counter()
    _, contexts = family_contexts(mech, cfg)
    raw = learner_setting(mech, contexts=contexts)
    agents = entry(mech).load_agents()
    enc = make_encoding("menu", mech, raw.mechanism, raw.spec, agents)
    groups = [(p,) for p in range(raw.spec.n)]
    learner = NoRegretLearner(
        raw.mechanism,
        contexts,
        groups,
        lambda ctx: {},
        enc.options,
        rule=cfg.algo,
        rng=np.random.default_rng(seed),
    )
    pol = learner.policy()
    rows: list[dict[str, Any]] = []
    final: dict[str, Any] = {}
    eval_s = 0.0
    for r in range(cfg.rounds + 1):
        if r > 0:
            learner.run(cfg.iterations)
            _emit(events, mech, seed, "train", cfg.iterations)
        te = time.perf_counter()
        met = evaluate_profile(
            raw.mechanism,
            agents,
            contexts,
            lambda ctx: dict.fromkeys(range(raw.spec.n), pol),
            groups,
            enc,
            exploitability=cfg.exploitability,
        )
        eval_s += time.perf_counter() - te
        rows += metric_rows(mech, seed, r, learner.rounds * len(contexts), met.flat(), "train")
        final = met.to_json()
        _emit(events, mech, seed, "eval", r)
    return {
        "mechanism": mech,
        "seed": seed,
        "rows": rows,
        # tabular strategies are indexed by the contexts they learned: no held-out family
        "final": final,
        "final_train": final,
        "evaluated_on": "train",
        "groups": [list(g) for g in groups],
        "wall_seconds": time.perf_counter() - t0,
        "eval_seconds": eval_s,
        "steps": learner.rounds * len(contexts),
        "idle": {},
    }


def run_job_safe(
    mech: str, seed: int, cfg_dict: dict[str, Any], events: Any = None
) -> dict[str, Any]:
    """:func:`run_job`, with a failure returned as ``{"error": ...}`` (plain strings survive
    the trip back from a worker process; mechgym's typed errors do not unpickle)."""
    import traceback

    try:
        return run_job(mech, seed, cfg_dict, events)
    except Exception as exc:  # reported per mechanism in summary.json, not fatal to the run
        return {
            "mechanism": mech,
            "seed": seed,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }


def _emit(events: Any, mech: str, seed: int, kind: str, amount: int) -> None:
    if events is not None:
        if callable(events):
            events(mech, seed, kind, amount)
        else:
            events.put((mech, seed, kind, amount))


def stats(values: Sequence[float | None], intervals: bool = False) -> dict[str, Any]:
    """Mean, population std, min, max and count of the non-missing values; with
    ``intervals`` also their interquartile mean (``iqm``) and its 95% stratified-bootstrap
    interval (``ci_low``, ``ci_high``; rliable, seeded, as ``benchmark run``'s, with
    :data:`BOOTSTRAP_REPS` resamples)."""
    xs = [
        float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))
    ]
    if not xs:
        out: dict[str, Any] = {"mean": None, "std": None, "min": None, "max": None, "n": 0}
        if intervals:
            out.update(iqm=None, ci_low=None, ci_high=None)
        return out
    a = np.asarray(xs)
    out = {
        "mean": float(a.mean()),
        "std": float(a.std()),
        "min": float(a.min()),
        "max": float(a.max()),
        "n": len(xs),
    }
    if intervals:
        if a.min() == a.max():  # every resample is this value: no bootstrap needed
            out.update(iqm=float(a[0]), ci_low=float(a[0]), ci_high=float(a[0]))
        else:
            from mechgym.benchmark.run import interval_estimates

            out.update(interval_estimates({"x": a}, reps=BOOTSTRAP_REPS)["x"])
    return out


def learned_stats(values: Sequence[float | None]) -> dict[str, Any]:
    """:func:`stats` with the IQM and its 95% interval: how a learned figure is reported."""
    return stats(values, intervals=True)


def reference_metrics(
    mech: str,
    contexts: list[Any],
    encoding: str,
    exploitability: bool,
    full_space_limit: int = 0,
    train: bool = False,
) -> dict[str, Any]:
    """Metrics of the predicted profile on the family (every player as a group); the
    full-space exploitability too where ``full_space_limit`` > 0 on the held-out family."""
    from mechgym.envs.engine.game import EnvSpec
    from mechgym.envs.pettingzoo.registry import entry

    from .encodings import make_encoding
    from .learner_env import learner_setting
    from .metrics import evaluate_profile, predicted_profile

    raw = learner_setting(mech, contexts=contexts)
    agents = entry(mech).load_agents()
    spec: EnvSpec = raw.spec
    enc = make_encoding(encoding, mech, raw.mechanism, spec, agents)
    profile = predicted_profile(agents, spec.n)
    groups = [(i,) for i in range(spec.n)]
    met = evaluate_profile(
        raw.mechanism, agents, contexts, profile, groups, enc, exploitability=exploitability
    )
    out = met.to_json()
    if full_space_limit > 0 and not train:
        out.update(
            full_space_figures(
                raw.mechanism, spec, contexts, profile, groups, exploitability, full_space_limit
            )
        )
    return out


def summarize(
    mech: str, jobs: list[dict[str, Any]], reference: dict[str, Any], agents: Any
) -> dict[str, Any]:
    """Per-phase and outcome statistics over seeds, with verdicts."""
    finals = [j["final"] for j in jobs]
    phases: dict[str, Any] = {}
    verdicts: list[str] = []
    for phase in reference.get("agreement", {}):
        agree = learned_stats([f["agreement"].get(phase) for f in finals])
        entry: dict[str, Any] = {
            "agreement": agree,
            "agreement_reference": reference["agreement"].get(phase),
            "visit_mass": stats([f["agreement_mass"].get(phase) for f in finals]),
            "disagreement_loss": learned_stats(
                [f.get("disagreement_loss", {}).get(phase) for f in finals]
            ),
        }
        converged = agree["n"] > 0 and agree["mean"] >= AGREE_MEAN and agree["min"] >= AGREE_MIN
        entry["converged"] = bool(converged)
        text = f"{phase}: agreement with the prediction {_fmt(agree)}" + (
            " -> converged" if converged else " -> NOT converged to the point prediction"
        )
        loss = entry["disagreement_loss"]
        if loss["n"]:
            text += (
                f" (a disagreement costs the learner {_fmt(loss)} in expected reward"
                " against the predicted action)"
            )
        if phase in agents.bound_phases:
            bs = learned_stats([f["bound_satisfied"].get(phase) for f in finals])
            br = learned_stats([f["bound_ratio"].get(phase) for f in finals])
            entry["bound"] = agents.bound_phases[phase]
            entry["bound_satisfied"] = bs
            entry["bound_ratio"] = br
            entry["bound_satisfied_reference"] = reference.get("bound_satisfied", {}).get(phase)
            meets = bs["n"] > 0 and bs["mean"] >= AGREE_MEAN and bs["min"] >= AGREE_MIN
            entry["meets_bound"] = bool(meets)
            text += (
                f"; bound {agents.bound_phases[phase]} satisfied {_fmt(bs)},"
                f" achieved/required {_fmt(br)}"
                + (" -> meets the bound" if meets else " -> does NOT meet the bound")
            )
        phases[phase] = entry
        verdicts.append(text)
    expl = learned_stats([f.get("exploitability_max") for f in finals])
    out = {
        "status": "ok",
        "seeds": [j["seed"] for j in jobs],
        "groups": jobs[0]["groups"] if jobs else [],
        "steps_per_seed": jobs[0]["steps"] if jobs else 0,
        "idle_rounds": {str(j["seed"]): j.get("idle", {}) for j in jobs},
        # simultaneous learners started at a profile: their behaviour cloning per seed
        "imitation": {str(j["seed"]): j["imitation"] for j in jobs if "imitation" in j} or None,
        "phases": phases,
        "revenue_benchmark": finals[0].get("revenue_benchmark") if finals else None,
        "revenue_ratio": learned_stats([f.get("revenue_ratio") for f in finals]),
        "revenue_ratio_reference": reference.get("revenue_ratio"),
        "welfare_ratio": learned_stats([f.get("welfare_ratio") for f in finals]),
        "welfare_ratio_reference": reference.get("welfare_ratio"),
        "guarantee": reference.get("guarantee_statement"),
        "guarantee_holds": learned_stats([f.get("guarantee_holds") for f in finals]),
        "guarantee_holds_reference": reference.get("guarantee_holds"),
        "guarantee_margin": learned_stats([f.get("guarantee_margin") for f in finals]),
        "exploitability": expl,
        "exploitability_reference": reference.get("exploitability_max"),
        "exploitability_by_group": {
            k: learned_stats([f["exploitability"].get(k) for f in finals])
            for k in (finals[0]["exploitability"] if finals else {})
        },
        # over every legal action (exact), where the mechanism's action space is small enough
        "exploitability_full": learned_stats([f.get("exploitability_full_max") for f in finals]),
        "exploitability_full_reference": reference.get("exploitability_full_max"),
        "exploitability_full_space": FULL_SPACE_LABEL
        if any(f.get("exploitability_full") for f in finals)
        else None,
        "wall_seconds_per_seed": stats([j["wall_seconds"] for j in jobs]),
        "cpu_seconds_per_seed": stats([j.get("cpu_seconds") for j in jobs]),
        "eval_seconds_per_seed": stats([j["eval_seconds"] for j in jobs]),
        "reference": reference,
    }
    rr = out["revenue_ratio"]
    verdicts.append(
        f"E[REV]/{out['revenue_benchmark']}: learned {_fmt(rr)}"
        f" vs predicted {_num(reference.get('revenue_ratio'))}; "
        f"guarantee ({out['guarantee']}) holds on {_fmt(out['guarantee_holds'])} of contexts "
        f"(predicted: {_num(reference.get('guarantee_holds'))})"
    )
    verdicts.append(
        f"exploitability (best menu deviation gain, max over players): learned {_fmt(expl)}"
        " vs predicted "
        f"{_num(reference.get('exploitability_max'))}"
    )
    if out["exploitability_full_space"]:
        verdicts.append(
            "exploitability over every legal action (exact best response, max over players):"
            f" learned {_fmt(out['exploitability_full'])} vs predicted "
            f"{_num(reference.get('exploitability_full_max'))}"
        )
    idle = {seed: d for seed, d in out["idle_rounds"].items() if d}
    if idle:
        verdicts.append(
            "idle rounds (a player had no decision under the others' learned play, so it did not "
            f"train that round), by seed and player: {idle}"
        )
    out["verdict"] = verdicts
    return out


def _num(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _fmt(s: dict[str, Any]) -> str:
    if not s or s.get("n", 0) == 0:
        return "n/a"
    text = f"{s['mean']:.3f} ± {s['std']:.3f} [min {s['min']:.3f}, max {s['max']:.3f}]"
    if s.get("iqm") is not None:
        text = f"IQM {s['iqm']:.3f} (95% CI {s['ci_low']:.3f}–{s['ci_high']:.3f}), mean " + text
    return text


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    cols = ["mechanism", "seed", "round", "steps", "family", "metric", "key", "value"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({**r, "value": "" if r["value"] is None else r["value"]})


def plot_mechanism(
    out: Path, mech: str, rows: list[dict[str, Any]], reference: dict[str, Any], agents: Any
) -> list[str]:
    """Agreement (and bound satisfaction) and revenue/benchmark against training steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    mine = [r for r in rows if r["mechanism"] == mech]
    # the plots show the family the headline figures are reported on
    fam = "heldout" if any(r.get("family") == "heldout" for r in mine) else "train"
    mine = [r for r in mine if r.get("family", fam) == fam]
    seeds = sorted({r["seed"] for r in mine})
    phases = [p for p in reference.get("agreement", {})]

    def series(metric: str, key: str, seed: int) -> tuple[list[int], list[float]]:
        pts = sorted(
            (r["steps"], r["value"])
            for r in mine
            if r["metric"] == metric
            and r["key"] == key
            and r["seed"] == seed
            and r["value"] is not None
        )
        return [p[0] for p in pts], [p[1] for p in pts]

    panels = [("agreement", ph, f"{ph}: agreement with prediction") for ph in phases]
    panels += [
        ("bound_satisfied", ph, f"{ph}: bound {agents.bound_phases[ph]} satisfied")
        for ph in phases
        if ph in agents.bound_phases
    ]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
        for ax, (metric, key, title) in zip(axes[0], panels, strict=True):
            drawn = 0
            for s in seeds:
                x, y = series(metric, key, s)
                drawn += len(x)
                ax.plot(x, y, marker="o", ms=3, label=f"seed {s}")
            if not drawn:
                # an undefined figure (no decisions of this phase were visited) is not zero
                ax.text(
                    0.5,
                    0.5,
                    "no data: learned play never\nreached this phase",
                    ha="center",
                    va="center",
                    fontsize=8,
                    transform=ax.transAxes,
                )
            ax.axhline(1.0, color="k", ls="--", lw=1, label="prediction")
            ax.set_ylim(-0.03, 1.05)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("training steps (all players)")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{mech}: learned play vs the prediction", fontsize=10)
        fig.tight_layout()
        f = out / f"{mech}_agreement.png"
        fig.savefig(f, dpi=110)
        plt.close(fig)
        files.append(f.name)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for s in seeds:
        x, y = series("revenue_ratio", "", s)
        ax.plot(x, y, marker="o", ms=3, label=f"seed {s}")
    ref = reference.get("revenue_ratio")
    if ref is not None:
        ax.axhline(ref, color="k", ls="--", lw=1, label="predicted profile")
    bench = reference.get("revenue_benchmark") or "benchmark"
    ax.set_title(f"{mech}: E[REV] / {bench}", fontsize=10)
    ax.set_xlabel("training steps (all players)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    f = out / f"{mech}_revenue.png"
    fig.savefig(f, dpi=110)
    plt.close(fig)
    files.append(f.name)
    return files


def load_converge_config(path: str | Path, **overrides: Any) -> ConvergeConfig:
    """A :class:`ConvergeConfig` from a YAML file (keys are its
    fields, e.g. ``experiments/configs/converge_quick.yaml``); ``overrides`` that are not
    ``None`` replace the file's values."""
    from dataclasses import fields

    import yaml
    from mechgym.envs.engine.errors import ContextFileError
    from mechgym.envs.model.limits import read_small_file

    source = str(path)
    try:
        text = read_small_file(path, "config file").decode("utf-8")
    except FileNotFoundError:
        raise ContextFileError(source, "file", "no such file") from None
    except (OSError, ValueError) as exc:
        raise ContextFileError(source, "file", str(exc)) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ContextFileError(source, "yaml", f"invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ContextFileError(source, "(top level)", "must be a mapping of settings")
    known = {f.name for f in fields(ConvergeConfig)}
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise ContextFileError(
            source, ", ".join(unknown), f"unknown keys; allowed: {', '.join(sorted(known))}"
        )
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "mechanisms" in data:
        mechs = data["mechanisms"]
        data["mechanisms"] = (mechs,) if isinstance(mechs, str) else tuple(mechs)
    try:
        return ConvergeConfig(**data)
    except TypeError as exc:
        raise ContextFileError(source, "(settings)", str(exc)) from None


def run_converge(cfg: ConvergeConfig, console: Any = None, progress: bool = True) -> dict[str, Any]:
    """Run the experiment and write ``metrics.csv``, ``summary.json`` and plots into ``cfg.out``."""
    from mechgym.envs.pettingzoo.registry import entry

    from mechgym.progress import progress as progress_bar

    from .algos import torch_threads
    from .curves import exploitability_space, learning_curves, plot_curves, write_curves_csv
    from .outputs import check_mechanism_names, refuse_overwrite

    t0 = time.perf_counter()
    # before anything is written: a typo in a name or an earlier run in `out` stops here
    check_mechanism_names(cfg.mechanisms)
    check_learning_options(cfg)
    check_backend(cfg)
    # resolved once here, so that every worker process trains with the same count
    cfg = replace(cfg, torch_threads=torch_threads(cfg.torch_threads))
    out = refuse_overwrite(
        cfg.out, ("summary.json", "metrics.csv", "curves.csv", "checkpoints"), cfg.overwrite
    )
    out.mkdir(parents=True, exist_ok=True)
    from mechgym.machine import machine

    summary: dict[str, Any] = {"config": asdict(cfg), "machine": machine(), "mechanisms": {}}
    runnable: list[str] = []
    for mech in cfg.mechanisms:
        reason = skip_reason(mech, cfg.encoding)
        if reason:
            summary["mechanisms"][mech] = {"status": "skipped", "reason": reason}
        else:
            runnable.append(mech)
    jobs = [(m, s) for m in runnable for s in range(cfg.seeds)]
    n_jobs = cfg.jobs or min(len(jobs), os.cpu_count() or 1) or 1
    if cfg.backend == "rllib":
        n_jobs = 1  # RLlib spreads each job over its env runners; jobs take turns
    cfg = replace(cfg, jobs=n_jobs)
    summary["config"] = asdict(cfg)
    cfg_dict = asdict(cfg)
    results: list[dict[str, Any]] = []
    from .noregret import RULES

    total_units = 0
    for m in runnable:
        per_round = cfg.iterations if cfg.algo in RULES else _players(m, cfg) * cfg.steps
        total_units += cfg.seeds * cfg.rounds * per_round
    unit = "iterations" if cfg.algo in RULES else "steps"
    with progress_bar(total=total_units, desc="converge", unit=unit, disable=not progress) as bar:

        def on_event(mech: str, seed: int, kind: str, amount: int) -> None:
            if kind == "train":
                bar.update(amount)

        if n_jobs <= 1:
            for m, s in jobs:
                results.append(run_job_safe(m, s, cfg_dict, on_event))
        else:
            results = _run_parallel(jobs, cfg_dict, n_jobs, on_event)
    failed = [j for j in results if "error" in j]
    results = [j for j in results if "error" not in j]
    rows = [r for j in results for r in j["rows"]]
    summary["jobs_ok"], summary["jobs_failed"] = len(results), len(failed)
    summary["mechanisms_skipped"] = len(cfg.mechanisms) - len(runnable)
    curves = learning_curves(rows)
    if results:  # no metrics.csv when no job produced a row
        write_csv(out / "metrics.csv", rows)
        write_curves_csv(out / "curves.csv", curves)
    for mech in runnable:
        errors = [j for j in failed if j["mechanism"] == mech]
        if errors:
            summary["mechanisms"][mech] = {
                "status": "failed",
                "reason": "; ".join(f"seed {j['seed']}: {j['error']}" for j in errors),
                "traceback": errors[0]["traceback"],
            }
            continue
        agents = entry(mech).load_agents()
        desc, contexts = family_contexts(mech, cfg)
        eval_desc, held_out = eval_family_contexts(mech, cfg)
        mine = sorted((j for j in results if j["mechanism"] == mech), key=lambda j: j["seed"])
        on = mine[0].get("evaluated_on", "heldout")
        ref_train = reference_metrics(
            mech, contexts, cfg.encoding, cfg.exploitability, cfg.full_space_limit, train=True
        )
        ref = (
            reference_metrics(
                mech, held_out, cfg.encoding, cfg.exploitability, cfg.full_space_limit
            )
            if on == "heldout"
            else ref_train
        )
        # every headline figure on the held-out family; the training family's beside it
        s = summarize(mech, mine, ref, agents)
        s["evaluated_on"] = on
        train = summarize(mech, [{**j, "final": j["final_train"]} for j in mine], ref_train, agents)
        # the training family's figures only: run facts and timings are the run's, above
        s["train_family"] = {k: v for k, v in train.items() if k not in RUN_FACTS}
        s["contexts"] = {
            "generator": desc,
            "family": cfg.family,
            "family_seed": cfg.family_seed,
            "eval_generator": eval_desc if on == "heldout" else None,
            "eval_family": len(held_out) if on == "heldout" else 0,
            "eval_family_seed": _eval_seed(cfg) if on == "heldout" else None,
            "eval_overlap": overlap(contexts, held_out) if on == "heldout" else None,
        }
        s["plots"] = plot_mechanism(out, mech, rows, ref, agents)
        curve_png = plot_curves(out, mech, rows, curves, ref, agents.bound_phases, cfg.encoding, on)
        if curve_png is not None:
            s["plots"].append(curve_png)
        s["exploitability_space"] = exploitability_space(cfg.encoding)
        summary["mechanisms"][mech] = s
    summary["wall_seconds"] = time.perf_counter() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    if console is not None and results:
        print_table(summary, console)
        console.print(f"results written to {out.resolve()} (summary.json, metrics.csv, plots)")
    return summary


def check_backend(cfg: ConvergeConfig) -> None:
    """Refuse, before anything is written, a backend that is unknown, not installed, or asked
    for more env runners than its Ray cluster has."""
    from mechgym.envs.engine.errors import ParameterError

    if cfg.backend not in BACKENDS:
        raise ParameterError("backend", f"{cfg.backend!r} is not one of {', '.join(BACKENDS)}")
    if cfg.backend == "sb3":
        if cfg.num_env_runners is not None or cfg.address is not None:
            raise ParameterError("backend", "--num-env-runners and --address need --backend rllib")
        return
    from .rllib_jobs import load_rllib

    rllib = load_rllib()
    if cfg.algo != "maskable_ppo" or cfg.encoding != "menu":
        raise ParameterError(
            "backend", f"--backend rllib trains masked PPO on menus, not --algo {cfg.algo}"
        )
    rllib.connect(cfg.address)
    rllib.size_env_runners(cfg.num_env_runners)


def _players(mech: str, cfg: ConvergeConfig) -> int:
    _, contexts = family_contexts(mech, replace(cfg, family=1))
    return int(contexts[0].n)


def _run_parallel(
    jobs: list[tuple[str, int]],
    cfg_dict: dict[str, Any],
    n_jobs: int,
    on_event: Callable[..., None],
) -> list[dict[str, Any]]:
    import multiprocessing as mp
    import queue
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        events = manager.Queue()
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx) as pool:
            futures = [pool.submit(run_job_safe, m, s, cfg_dict, events) for m, s in jobs]
            pending = set(futures)
            while pending:
                try:
                    while True:
                        on_event(*events.get_nowait())
                except queue.Empty:
                    pass
                pending = {f for f in pending if not f.done()}
                time.sleep(0.2)
            try:
                while True:
                    on_event(*events.get_nowait())
            except queue.Empty:
                pass
            return [f.result() for f in futures]


def print_table(summary: dict[str, Any], console: Any) -> None:
    """The final report as rich tables, one per mechanism (phases, then outcomes), that read
    at 80 columns: learned figures as IQM [95% CI] over seeds beside the predicted profile's."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    for mech, s in summary["mechanisms"].items():
        if s.get("status") != "ok":
            why = f"{s.get('status')}: {s.get('reason')}"
            console.print(f"[bold]{escape(mech)}[/]: {escape(why)}")
            continue
        seeds = len(s.get("seeds", []))
        t = Table(
            title=escape(f"{mech}: learned play, IQM [95% CI] over {seeds} seeds"),
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        t.add_column("figure", overflow="fold")
        t.add_column("learned", no_wrap=True)
        t.add_column("predicted", no_wrap=True, justify="right")
        t.add_column("verdict", overflow="fold")
        for phase, p in s["phases"].items():
            t.add_row(
                escape(f"{phase}: agreement"),
                _short(p["agreement"]),
                _num(p.get("agreement_reference"), 2),
                "converged" if p["converged"] else "NOT converged",
            )
            if (p.get("disagreement_loss") or {}).get("n"):
                t.add_row(
                    escape(f"{phase}: disagreement cost"),
                    _short(p["disagreement_loss"]),
                    "",
                    "",
                )
            if "bound_satisfied" in p:
                t.add_row(
                    escape(f"{phase}: bound {p['bound']} met"),
                    _short(p["bound_satisfied"]),
                    _num(p.get("bound_satisfied_reference"), 2),
                    "meets bound" if p["meets_bound"] else "bound NOT met",
                )
        rows = (
            (f"E[REV]/{s['revenue_benchmark']}", "revenue_ratio"),
            ("E[SW]/MSW", "welfare_ratio"),
            ("guarantee holds (share)", "guarantee_holds"),
            ("exploitability", "exploitability"),
        )
        for label, key in rows:
            t.add_row(escape(label), _short(s[key]), _num(s.get(f"{key}_reference"), 2), "")
        console.print(t)
    console.print(f"wall time {summary['wall_seconds']:.1f} s")


def _short(s: dict[str, Any] | None) -> str:
    if not s or s.get("n", 0) == 0:
        return "n/a"
    if s.get("iqm") is None:
        return f"{s['mean']:.2f} ± {s['std']:.2f}"
    return f"{s['iqm']:.2f} [{s['ci_low']:.2f}, {s['ci_high']:.2f}]"
