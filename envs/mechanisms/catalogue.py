"""One spec per mechanism: the single table every name lookup is derived from.

The PettingZoo registry (:data:`mechgym.envs.pettingzoo.registry.CATALOGUE`), the batched
rules' modules (:data:`mechgym.envs.engine.batched.BATCHED_MODULES`), the batched agents'
modules (:func:`mechgym.agents.batched.batched_agents`), the mixture's revenue mechanisms
(:func:`mechgym.envs.mechanisms.second_price_bundle.revenue_mechanism`), the convergence
study's context families (:data:`mechgym.training.converge.DEFAULT_GENERATORS`) and the
figures' labels read it. Modules are named by string so that nothing is imported here.
Adding a mechanism adds one :class:`MechanismSpec` below.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MechanismSpec:
    """What the rest of mechgym needs to know of a mechanism by name.

    Attributes
    ----------
    name : str
        Registry key (``Mechanism.name``).
    cls : str
        ``"<module>:<class>"`` of the exact rules, module under ``mechgym.envs.mechanisms``.
    agents : str
        Module under ``mechgym.agents`` of its scripted agents (both faces: exact and
        batched).
    label : str
        Short label of figures and tables (``"M1"``).
    paper : str
        Where the paper defines it (``"000 Sec. 6"``).
    summary : str
        One line for ``mechgym list``.
    env_id : str or None
        Its PettingZoo id; ``None`` for a mechanism without an env module of its own (the
        mixture, built through ``second_price_bundle``).
    generator : str or None
        The context family of the convergence study (``None``: the env module's default).
    mixable : tuple of str
        Names under which it can be the revenue mechanism of a mixture (empty: it cannot).
    """

    name: str
    cls: str
    agents: str
    label: str
    paper: str
    summary: str
    env_id: str | None = None
    generator: str | None = None
    mixable: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        """The exact rules' module."""
        return f"mechgym.envs.mechanisms.{self.cls.split(':')[0]}"

    @property
    def mechanism(self) -> str:
        """``"<full module>:<class>"`` of the exact rules."""
        return f"{self.module}:{self.cls.split(':')[1]}"

    @property
    def agents_module(self) -> str:
        return f"mechgym.agents.{self.agents}"

    @property
    def batched_agents_module(self) -> str:
        """Where its batched agents are registered: its agents module (both faces)."""
        return self.agents_module


_NOISY = "uniform:n=3,m=2,cap=10,belief=noisy"

SPECS: dict[str, MechanismSpec] = {
    s.name: s
    for s in [
        MechanismSpec(
            "best_belief",
            "best_belief:BestBelief",
            "best_belief",
            "M1",
            "000 Sec. 6",
            "M1: extensive form; E[REV] >= BB/2 - eps",
            "mechgym/BestBelief-v0",
            _NOISY,
            ("best_belief",),
        ),
        MechanismSpec(
            "normal_form",
            "normal_form:NormalForm",
            "best_belief",
            "M2",
            "000 Sec. 4",
            "M2: one simultaneous move; E[REV] >= BB/2 - eps",
            "mechgym/NormalForm-v0",
            _NOISY,
        ),
        MechanismSpec(
            "vcg",
            "vcg:VCG",
            "vcg",
            "VCG",
            "baseline",
            "VCG with Clarke payments; SW = MSW, revenue unguaranteed",
            "mechgym/VCG-v0",
            _NOISY,
        ),
        MechanismSpec(
            "knowledge_benchmark",
            "knowledge_benchmark:KnowledgeBenchmark",
            "knowledge_benchmark",
            "M3",
            "001 Sec. 6",
            "M3: E[SW] + E[REV] >= MIEW/2",
            "mechgym/KnowledgeBenchmark-v0",
            mixable=("knowledge_benchmark", "m3"),
        ),
        MechanismSpec(
            "collusion_leveraging",
            "collusion_leveraging:CollusionLeveraging",
            "collusion_leveraging",
            "M4",
            "002 Sec. 4",
            "M4: E[REV] + E[SW] >= (1-eps) MKW/6 - eps1",
            "mechgym/CollusionLeveraging-v0",
            mixable=("collusion_leveraging", "m4"),
        ),
        MechanismSpec(
            "second_price_bundle",
            "second_price_bundle:SecondPriceBundle",
            "collusion_leveraging",
            "A'",
            "002 baseline",
            "second-price bundle auction A'",
            "mechgym/SecondPriceBundle-v0",
        ),
        MechanismSpec(
            "mixture",
            "second_price_bundle:Mixture",
            "collusion_leveraging",
            "M'",
            "002 Sec. 1.2",
            "a revenue mechanism w.p. 1/(c+1), A' otherwise",
        ),
        MechanismSpec(
            "perfect_revenue",
            "perfect_revenue:PerfectRevenue",
            "perfect_revenue",
            "M5",
            "003 Sec. 3",
            "M5: unique SPE; SW = MSW, REV >= (1-3 eps n) MSW",
            "mechgym/PerfectRevenue-v0",
        ),
        MechanismSpec(
            "budget_balanced_market",
            "budget_balanced_market:BudgetBalancedMarket",
            "budget_balanced_market",
            "M6",
            "004 Sec. 5.2",
            "M6: efficient, budget balanced, private w.p. >= 1 - delta",
            "mechgym/BudgetBalancedMarket-v0",
        ),
        MechanismSpec(
            "hope_for_the_best",
            "foils:HopeForTheBest",
            "foils",
            "HOPE",
            "003 fn. 3",
            "foil of M5: truthful is an equilibrium, so is every scaled-down report",
            "mechgym/HopeForTheBest-v0",
        ),
        MechanismSpec(
            "naive_market_1",
            "foils:NaiveMarket1",
            "foils",
            "Naive-1",
            "004 Sec. 5.1",
            "foil of M6: any individually rational unanimous outcome is an equilibrium",
            "mechgym/NaiveMarket1-v0",
        ),
        MechanismSpec(
            "naive_market_2",
            "foils:NaiveMarket2",
            "foils",
            "Naive-2",
            "004 Sec. 5.1",
            "foil of M6: belief mismatch (YES expecting another's NO)",
            "mechgym/NaiveMarket2-v0",
        ),
        MechanismSpec(
            "naive_market_3",
            "foils:NaiveMarket3",
            "foils",
            "Naive-3",
            "004 Sec. 5.1",
            "foil of M6: player 1 profits from a non-truthful proposal",
            "mechgym/NaiveMarket3-v0",
        ),
        MechanismSpec(
            "naive_market_4",
            "foils:NaiveMarket4",
            "foils",
            "Naive-4",
            "004 Sec. 5.1",
            "foil of M6: price shifts relying on believed collusion lose welfare",
            "mechgym/NaiveMarket4-v0",
        ),
    ]
}
"""Every mechanism by name, in the catalogue's order."""


def mixable() -> dict[str, MechanismSpec]:
    """Revenue mechanisms of a mixture by every name they go by (``"m3"``, ...)."""
    return {alias: s for s in SPECS.values() for alias in s.mixable}
