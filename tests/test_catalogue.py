"""The one table of mechanisms: every spec names modules and classes that exist and agree."""

from __future__ import annotations

import importlib

import pytest
from mechgym.agents.base import AGENTS
from mechgym.agents.batched import batched_agents
from mechgym.envs.engine.batched import BATCHED_MODULES
from mechgym.envs.mechanisms.catalogue import SPECS, mixable
from mechgym.envs.mechanisms.second_price_bundle import revenue_mechanism
from mechgym.envs.pettingzoo.registry import CATALOGUE


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_names_what_exists(name: str) -> None:
    spec = SPECS[name]
    mod, cls = spec.mechanism.split(":")
    mech_cls = getattr(importlib.import_module(mod), cls)
    assert mech_cls.name == name
    importlib.import_module(spec.agents_module)
    assert name in AGENTS or name == "mixture"
    assert batched_agents(name) is not None
    assert BATCHED_MODULES[name] == spec.module  # rules written once, beside the exact face
    importlib.import_module(spec.module)
    if spec.env_id is None:
        assert name not in CATALOGUE
    else:
        assert CATALOGUE[name].env_id == spec.env_id
        assert CATALOGUE[name].available()


def test_mixable_names_build_their_mechanism() -> None:
    for alias, spec in mixable().items():
        assert revenue_mechanism(alias).name == spec.name
