"""Property: an action that raises changes nothing, and the episode can still be finished.

Over every registered env and both action forms (arrays in the MultiDiscrete space and the
mechanism's structured actions), hypothesis drives episodes mixing legal moves with
malformed ones: out-of-range and huge integers, wrong shapes and types, ``None``, iterators,
and structured actions whose fields are replaced by such values. Every raise must be a typed
mechgym error and leave state, observations, rewards, buffers, history and the chance stream
exactly as they were.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mechgym.envs.engine.errors import MechgymError
from mechgym.envs.pettingzoo.registry import available

NAMES = [e.name for e in available()]
#: every registered env with its defaults, and the mixture M' through its module
CASES = [(name, {}) for name in NAMES] + [
    ("second_price_bundle", {"mixture": "collusion_leveraging", "c": "1/2"})
]

WEIRD = st.one_of(
    st.sampled_from(
        [
            None,
            -1,
            10**400,
            -(10**400),
            2**53 + 1,
            2**62,
            2**64,
            1.5,
            float("nan"),
            "x",
            True,
            (),
            (0,),
            np.int64(-5),
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70),
)


def game_state(env: Any) -> Any:
    """The engine state of a raw env (``game_state``; ``state`` before it was renamed)."""
    return env.__dict__.get("game_state", env.__dict__.get("state"))


def fingerprint(env: Any) -> tuple[Any, ...]:
    """Everything observable about a raw env, compared with ``==`` after a refused step."""
    obs = tuple(
        (a, env.observe(a)["observation"].tobytes(), env.observe(a)["action_mask"].tobytes())
        for a in env.possible_agents
    )
    return (
        game_state(env),
        env.node,
        env.outcome,
        [(k, repr(d)) for k, d in env.history],
        dict(env._buffer),
        dict(env.rewards),
        dict(env._cumulative_rewards),
        dict(env.terminations),
        dict(env.truncations),
        env.agent_selection,
        repr(env._rng.bit_generator.state),
        obs,
    )


def mutate(action: Any, path: list[int], value: Any) -> Any:
    """Replace one leaf of a structured action (dataclass fields, tuples) by ``value``."""
    if not path:
        return value
    if dataclasses.is_dataclass(action) and not isinstance(action, type):
        fields = dataclasses.fields(action)
        f = fields[path[0] % len(fields)]
        inner = mutate(getattr(action, f.name), path[1:], value)
        try:
            return dataclasses.replace(action, **{f.name: inner})
        except Exception:  # a __post_init__ that refuses: build it without checks
            new = object.__new__(type(action))
            for g in fields:
                object.__setattr__(new, g.name, getattr(action, g.name))
            object.__setattr__(new, f.name, inner)
            return new
    if isinstance(action, tuple) and action:
        k = path[0] % len(action)
        if len(path) > 1 and path[1] % 4 == 0:
            return iter(action)  # an iterator where a sequence belongs
        return (*action[:k], mutate(action[k], path[1:], value), *action[k + 1 :])
    return value


def bad_array(env: Any, agent: str, draw: Any) -> Any:
    layout = env.layout
    legal = env.action_space(agent).sample(env.observe(agent)["action_mask"])
    kind = draw(st.integers(0, 4))
    if kind == 0:
        arr = legal.copy()
        arr[draw(st.integers(0, len(arr) - 1))] = draw(st.integers(-(2**40), 2**40))
        return arr
    if kind == 1:
        return np.zeros(len(layout) + draw(st.integers(1, 3)), dtype=np.int64)
    if kind == 2:
        return legal.astype(np.float64) + 0.5
    if kind == 3:
        return legal.reshape(1, -1)
    return np.array([2**62] * len(legal), dtype=np.int64)


@pytest.mark.parametrize(("name", "kwargs"), CASES)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_refused_actions_change_nothing(
    name: str, kwargs: dict[str, Any], data: Any, seed: int
) -> None:
    from mechgym.envs.pettingzoo.registry import entry

    env = entry(name).load_env_module().raw_env(seed=seed, **kwargs)
    env.reset(seed=seed)
    for k, a in enumerate(env.possible_agents):
        env.action_space(a).seed(seed + k)  # replayable draws for hypothesis
    draw = data.draw
    refused = 0
    for _ in range(200):
        if not env.agents:
            break
        agent = env.agent_selection
        if env.terminations[agent] or env.truncations[agent]:
            env.step(None)
            continue
        i = env.possible_agents.index(agent)
        mask = env.observe(agent)["action_mask"]
        legal = env.action_space(agent).sample(mask)
        choice = draw(st.integers(0, 3))
        if choice == 0:
            env.step(legal)
            continue
        if choice == 1:
            structured = env.mechanism.decode(game_state(env), i, legal, env.spec, env.layout)
            env.step(structured)
            continue
        if choice == 2:
            base = env.mechanism.decode(game_state(env), i, legal, env.spec, env.layout)
            path = draw(st.lists(st.integers(0, 7), min_size=0, max_size=4))
            action = mutate(base, path, draw(WEIRD))
        else:
            action = bad_array(env, agent, draw)
        before = fingerprint(env)
        try:
            env.step(action)
        except MechgymError:
            refused += 1
            assert fingerprint(env) == before
        except Exception as exc:  # pragma: no cover - the failure this test exists for
            raise AssertionError(f"{name}: untyped {type(exc).__name__}: {exc}") from exc
    # whatever happened, the episode can be finished with legal play
    for _ in range(500):
        if not env.agents:
            break
        agent = env.agent_selection
        if env.terminations[agent] or env.truncations[agent]:
            env.step(None)
        else:
            env.step(env.action_space(agent).sample(env.observe(agent)["action_mask"]))
    assert env.outcome is not None


@pytest.mark.parametrize("name", [n for n in NAMES if n != "perfect_revenue"])
def test_parallel_refusal_changes_nothing(name: str) -> None:
    from mechgym.envs.pettingzoo.registry import entry

    module = entry(name).load_env_module()
    if not entry(name).mechanism_class().simultaneous_only:
        pytest.skip("sequential moves: no parallel env")
    par = module.parallel_env(seed=1)
    obs, _ = par.reset(seed=1)
    aec = par.aec
    for k, a in enumerate(par.possible_agents):
        aec.action_space(a).seed(k)
    acting = [f"player_{p}" for p in aec.node.players]
    actions = {a: aec.action_space(a).sample(obs[a]["action_mask"]) for a in par.agents}
    bad = dict(actions)
    bad[acting[-1]] = np.full_like(actions[acting[-1]], 2**40)
    before = fingerprint(aec)
    for wrong in (bad, [actions[a] for a in par.agents], None):
        with pytest.raises(MechgymError):
            par.step(wrong)
        assert fingerprint(aec) == before
    par.step(actions)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_menu_encoding_refusals_change_nothing(name: str, data: Any, seed: int) -> None:
    """The third action form: indices into the per-phase menus."""
    from mechgym.envs.pettingzoo.registry import entry

    env = entry(name).load_env_module().raw_env(seed=seed, action_encoding="menu")
    env.reset(seed=seed)
    for k, a in enumerate(env.possible_agents):
        env.action_space(a).seed(seed + k)
    for _ in range(200):
        if not env.agents:
            break
        agent = env.agent_selection
        if env.terminations[agent] or env.truncations[agent]:
            env.step(None)
            continue
        legal = env.action_space(agent).sample(env.observe(agent)["action_mask"])
        action = legal if data.draw(st.booleans()) else data.draw(WEIRD)
        before = fingerprint(env)
        try:
            env.step(action)
        except MechgymError:
            assert fingerprint(env) == before
        except Exception as exc:  # pragma: no cover - the failure this test exists for
            raise AssertionError(f"{name}: untyped {type(exc).__name__}: {exc}") from exc
    while env.agents:  # the episode can still be finished
        agent = env.agent_selection
        if env.terminations[agent] or env.truncations[agent]:
            env.step(None)
        else:
            env.step(env.action_space(agent).sample(env.observe(agent)["action_mask"]))
    assert env.outcome is not None
