"""PettingZoo env of M5, the perfect-information revenue mechanism: ``mechgym/PerfectRevenue-v0``.

Default contexts: :class:`~mechgym.envs.model.states.StatesGenerator` with 3 players, 2 states and
values up to 3. Pass ``price_cap`` to widen the price/raise grid (0..price_cap).
"""

from typing import Any

from mechgym.envs.mechanisms.perfect_revenue import PerfectRevenue
from mechgym.envs.pettingzoo.envmodule import env_module


def default_states_generator() -> Any:
    """Three players, two abstract states, integer values 0..3, everyone independent."""
    from mechgym.envs.model.states import StatesGenerator

    return StatesGenerator(n=3, m=2, value_cap=3)


raw_env, env, parallel_env = env_module(PerfectRevenue, default_states_generator)

__all__ = ["env", "parallel_env", "raw_env"]
