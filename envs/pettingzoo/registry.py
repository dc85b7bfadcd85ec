"""The catalogue of mechanisms: names, env ids, modules; registration with PettingZoo.

Entries name their modules by string so that importing :mod:`mechgym` stays light and a
mechanism's code is loaded only when used.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from mechgym.envs.engine.errors import ParameterError


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


_E = MechanismEntry
CATALOGUE: dict[str, MechanismEntry] = {
    e.name: e
    for e in [
        _E(
            "best_belief",
            "mechgym/BestBelief-v0",
            "mechgym.envs.mechanisms.best_belief:BestBelief",
            "mechgym.agents.best_belief",
            "000 Sec. 6",
            "M1: extensive form; E[REV] >= BB/2 - eps",
        ),
        _E(
            "normal_form",
            "mechgym/NormalForm-v0",
            "mechgym.envs.mechanisms.normal_form:NormalForm",
            "mechgym.agents.best_belief",
            "000 Sec. 4",
            "M2: one simultaneous move; E[REV] >= BB/2 - eps",
        ),
        _E(
            "vcg",
            "mechgym/VCG-v0",
            "mechgym.envs.mechanisms.vcg:VCG",
            "mechgym.agents.vcg",
            "baseline",
            "VCG with Clarke payments; SW = MSW, revenue unguaranteed",
        ),
        _E(
            "knowledge_benchmark",
            "mechgym/KnowledgeBenchmark-v0",
            "mechgym.envs.mechanisms.knowledge_benchmark:KnowledgeBenchmark",
            "mechgym.agents.knowledge_benchmark",
            "001 Sec. 6",
            "M3: E[SW] + E[REV] >= MIEW/2",
        ),
        _E(
            "collusion_leveraging",
            "mechgym/CollusionLeveraging-v0",
            "mechgym.envs.mechanisms.collusion_leveraging:CollusionLeveraging",
            "mechgym.agents.collusion_leveraging",
            "002 Sec. 4",
            "M4: E[REV] + E[SW] >= (1-eps) MKW/6 - eps1",
        ),
        _E(
            "second_price_bundle",
            "mechgym/SecondPriceBundle-v0",
            "mechgym.envs.mechanisms.second_price_bundle:SecondPriceBundle",
            "mechgym.agents.collusion_leveraging",
            "002 baseline",
            "second-price bundle auction A'",
        ),
        _E(
            "perfect_revenue",
            "mechgym/PerfectRevenue-v0",
            "mechgym.envs.mechanisms.perfect_revenue:PerfectRevenue",
            "mechgym.agents.perfect_revenue",
            "003 Sec. 3",
            "M5: unique SPE; SW = MSW, REV >= (1-3 eps n) MSW",
        ),
        _E(
            "budget_balanced_market",
            "mechgym/BudgetBalancedMarket-v0",
            "mechgym.envs.mechanisms.budget_balanced_market:BudgetBalancedMarket",
            "mechgym.agents.budget_balanced_market",
            "004 Sec. 5.2",
            "M6: efficient, budget balanced, private w.p. >= 1 - delta",
        ),
        _E(
            "hope_for_the_best",
            "mechgym/HopeForTheBest-v0",
            "mechgym.envs.mechanisms.foils:HopeForTheBest",
            "mechgym.agents.foils",
            "003 fn. 3",
            "foil of M5: truthful is an equilibrium, so is every scaled-down report",
        ),
        _E(
            "naive_market_1",
            "mechgym/NaiveMarket1-v0",
            "mechgym.envs.mechanisms.foils:NaiveMarket1",
            "mechgym.agents.foils",
            "004 Sec. 5.1",
            "foil of M6: any individually rational unanimous outcome is an equilibrium",
        ),
        _E(
            "naive_market_2",
            "mechgym/NaiveMarket2-v0",
            "mechgym.envs.mechanisms.foils:NaiveMarket2",
            "mechgym.agents.foils",
            "004 Sec. 5.1",
            "foil of M6: belief mismatch (YES expecting another's NO)",
        ),
        _E(
            "naive_market_3",
            "mechgym/NaiveMarket3-v0",
            "mechgym.envs.mechanisms.foils:NaiveMarket3",
            "mechgym.agents.foils",
            "004 Sec. 5.1",
            "foil of M6: player 1 profits from a non-truthful proposal",
        ),
        _E(
            "naive_market_4",
            "mechgym/NaiveMarket4-v0",
            "mechgym.envs.mechanisms.foils:NaiveMarket4",
            "mechgym.agents.foils",
            "004 Sec. 5.1",
            "foil of M6: price shifts relying on believed collusion lose welfare",
        ),
    ]
}


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
