"""The catalogue of mechanisms (built from :mod:`mechgym.envs.mechanisms.catalogue`): names,
env ids, modules; registration with PettingZoo.

Entries name their modules by string so that importing :mod:`mechgym` stays light and a
mechanism's code is loaded only when used.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.mechanisms.catalogue import SPECS, MechanismSpec


@dataclass(frozen=True)
class MechanismEntry:
    """One mechanism of the catalogue."""

    name: str
    env_id: str
    mechanism: str
    agents: str
    seed: str
    summary: str

    @property
    def env_module(self) -> str:
        return f"mechgym.envs.{self.name}_v0"

    def available(self) -> bool:
        """Whether the mechanism's env module is installed."""
        return importlib.util.find_spec(self.env_module) is not None

    def mechanism_class(self) -> type:
        mod, cls = self.mechanism.split(":")
        return getattr(importlib.import_module(mod), cls)

    def load_env_module(self) -> Any:
        return importlib.import_module(self.env_module)

    def load_agents(self) -> Any:
        """Import the agents module (which registers the mechanism's scripted agents)."""
        importlib.import_module(self.agents)
        from mechgym.agents.base import AGENTS

        return AGENTS[self.name]


def _entry_of(spec: MechanismSpec) -> MechanismEntry:
    assert spec.env_id is not None
    return MechanismEntry(
        spec.name, spec.env_id, spec.mechanism, spec.agents_module, spec.paper, spec.summary
    )


CATALOGUE: dict[str, MechanismEntry] = {
    s.name: _entry_of(s) for s in SPECS.values() if s.env_id is not None
}
"""Every mechanism with a PettingZoo env, from :data:`~mechgym.envs.mechanisms.catalogue.SPECS`."""


def register_mechanism(entry: MechanismEntry) -> None:
    """Add a mechanism (e.g. a foil) to the catalogue and to PettingZoo's registry."""
    CATALOGUE[entry.name] = entry
    _register_one(entry)


def entry(name: str) -> MechanismEntry:
    """Look a mechanism up by name (``best_belief``) or env id (``mechgym/BestBelief-v0``)."""
    for e in CATALOGUE.values():
        if name in (e.name, e.env_id) and e.available():
            return e
    names = ", ".join(e.name for e in available())
    raise ParameterError("mechanism", f"unknown mechanism '{name}'; available: {names}")


def available() -> list[MechanismEntry]:
    """Mechanisms whose env modules are installed."""
    return [e for e in CATALOGUE.values() if e.available()]


def _register_one(e: MechanismEntry) -> None:
    import pettingzoo

    if e.env_id not in pettingzoo.aec_registry:
        pettingzoo.register("aec", e.env_id, entry_point=f"{e.env_module}:env")
    if e.env_id not in pettingzoo.parallel_registry:
        pettingzoo.register("parallel", e.env_id, entry_point=f"{e.env_module}:parallel_env")


def register_envs() -> None:
    """Register every available mechanism with PettingZoo (``pettingzoo.make``)."""
    for e in available():
        _register_one(e)
