"""The two money backends agree over every constructor parameter each mechanism declares.

For every declared example value of every parameter (the mechanisms' own declarations, so
a new parameter is covered as soon as it is declared, and a test below requires it to be),
hypothesis draws the other parameters (defaults or examples, mixtures' inner mechanisms
with theirs), the sizes, contexts of the mechanism's kind, and a seed for random legal
actions and chance; the batched episodes replayed on the exact engine must give the same
acting players, masks, allocations, prices and rewards (to 1e-9)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from backend_cases import MECHANISMS, build, contexts, parameter_cases
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mechgym.envs.engine.batched import batched_rules, replay_exact, rollout
from mechgym.envs.engine.errors import ParameterError


def test_every_constructor_parameter_is_declared_with_examples() -> None:
    for name, cls in MECHANISMS.items():
        params = cls.parameters()
        for p in params:
            assert p.examples, f"{name}: parameter '{p.name}' declares no example values"
        names = {p.name for p in params}
        stale = set(cls.parameter_examples) - names
        assert not stale, f"{name}: declares {sorted(stale)}, not parameters of __init__"
        if cls.__init__ is not object.__init__:
            sig = set(inspect.signature(cls.__init__).parameters) - {"self"}
            assert names == sig, name


@pytest.mark.parametrize(("name", "param", "k"), parameter_cases())
@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(data=st.data())
def test_exact_and_batched_backends_agree(
    name: str, param: str, k: int, data: st.DataObject
) -> None:
    cls = MECHANISMS[name]
    n = data.draw(st.integers(2, 3), label="n")
    m = data.draw(st.integers(1, 2), label="m")

    def pick(label: str, choices: list[int]) -> int:
        return data.draw(st.sampled_from(choices), label=label)

    try:
        mech = build(cls, n, m, pick, None if param == "-" else (param, k))
        ctx, spec = contexts(
            mech, n, m, 16, data.draw(st.booleans(), label="shared"), data.draw(st.integers(0, 9))
        )
        rules = batched_rules(mech, spec)
    except ParameterError as exc:
        # a combination the mechanism refuses, on both paths alike (never "not implemented")
        assert "does not implement" not in exc.problem, exc
        from hypothesis import reject

        reject()
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    ro = rollout(rules, ctx, np.random.default_rng(seed))
    bad = replay_exact(rules, ro)
    assert not bad, f"{mech.title} {mech.given_arguments()}: {bad[:3]}"
