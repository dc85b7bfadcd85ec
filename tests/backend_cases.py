"""Mechanisms built from their own parameter declarations, with contexts of their kind: the
scaffolding of the property test comparing the exact engine with the batched rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from mechgym.envs.engine.batched import ContextBatch
from mechgym.envs.engine.game import REQUIRED, EnvSpec, Mechanism, Parameter
from mechgym.envs.mechanisms.second_price_bundle import Mixture
from mechgym.envs.model.generators import make_generator
from mechgym.envs.model.states import StatesGenerator
from mechgym.envs.pettingzoo.registry import CATALOGUE

#: every mechanism class of the catalogue, and the mixture (built directly)
MECHANISMS: dict[str, type[Mechanism]] = {
    **{name: e.mechanism_class() for name, e in CATALOGUE.items()},
    "mixture": Mixture,
}

#: ``pick(name, choices)`` -> one of ``choices`` (hypothesis' ``draw`` of ``sampled_from``)
Pick = Callable[[str, list[Any]], Any]


def parameter_cases() -> list[tuple[str, str, int]]:
    """``(mechanism, parameter, example index)`` for every declared example, and
    ``(mechanism, "-", 0)`` for a mechanism without parameters."""
    out = []
    for name, cls in MECHANISMS.items():
        params = cls.parameters()
        if not params:
            out.append((name, "-", 0))
        for p in params:
            out.extend((name, p.name, k) for k in range(len(p.examples)))
    return out


def _value(p: Parameter, k: int, n: int, m: int, pick: Pick, path: str) -> Any:
    x = p.example_values(n, m)[k]
    if isinstance(x, type) and issubclass(x, Mechanism):
        # a mechanism class stands for an instance with its own parameters drawn in turn
        return build(x, n, m, pick, path=f"{path}{p.name}.")
    return x


def build(
    cls: type[Mechanism],
    n: int,
    m: int,
    pick: Pick,
    fixed: tuple[str, int] | None = None,
    path: str = "",
) -> Any:
    """An instance of ``cls``: parameter ``fixed = (name, k)`` at its ``k``-th example, every
    other at its default or one of its examples (as ``pick`` chooses). May raise the
    mechanism's :class:`ParameterError` for a combination it does not accept."""
    args: dict[str, Any] = {}
    for p in cls.parameters():
        if fixed is not None and p.name == fixed[0]:
            k = fixed[1]
        else:
            choices = list(range(len(p.examples)))
            if p.default is not REQUIRED:
                choices.insert(0, -1)
            k = pick(f"{path}{p.name}", choices)
        if k < 0:
            continue
        value = _value(p, k, n, m, pick, path)
        if p.splat:
            args.update(value)
        else:
            args[p.name] = value
    return cls(**args)


def contexts(
    mech: Mechanism, n: int, m: int, B: int, shared: bool, seed: int
) -> tuple[ContextBatch, EnvSpec]:
    """``B`` random contexts of the mechanism's kind (``m`` goods, or states), coalitions at
    random, and the env sizes (the mechanism's default price grid)."""
    rng = np.random.default_rng(seed)
    flag = "true" if shared else "false"
    kind = mech.context_kind
    if kind == "states":
        cap = 3
        gen: Any = StatesGenerator(n, m, cap, "random", shared)
    elif kind == "market":
        gen = make_generator(f"market:n={n},m={m},k=3,coalitions=random,shared={flag}")
        cap = int(gen.value_cap)
    else:
        gen = make_generator(
            f"uniform:n={n},m={m},cap=4,belief=wrong,coalitions=random,shared={flag}"
        )
        cap = int(gen.value_cap)
    ctx = ContextBatch.from_contexts([gen.sample(rng) for _ in range(B)])
    return ctx, EnvSpec(n, m, cap, mech.default_price_cap(n, cap))
