"""PettingZoo env of M6, the budget-balanced market mechanism: ``mechgym/BudgetBalancedMarket-v0``.

Default contexts: :class:`~mechgym.envs.model.market.MarketGenerator` with 3 players, 2 goods and
k = 3 (values in (−4, 4)).
"""

from typing import Any

from mechgym.envs.mechanisms.budget_balanced_market import BudgetBalancedMarket
from mechgym.envs.pettingzoo.envmodule import env_module


def default_market_generator() -> Any:
    """Three players, two goods, k = 3 bits (values in (−4, 4)), everyone independent."""
    from mechgym.envs.model.market import MarketGenerator

    return MarketGenerator(n=3, m=2, k=3)


raw_env, env, parallel_env = env_module(BudgetBalancedMarket, default_market_generator)

__all__ = ["env", "parallel_env", "raw_env"]
