"""PettingZoo env of the collusion-leveraging mechanism M4: ``mechgym/CollusionLeveraging-v0``.

Contexts default to noisy but correct beliefs (seed 002 assumes correct lower bounds). Every
decision node is simultaneous, so a parallel env is offered. Constants: ``eps``, ``eps1``,
``eps2`` (2·n·eps2 < eps1 is checked at the first ``reset``, or at once with ``n=``).
"""

from mechgym.envs.mechanisms.collusion_leveraging import CollusionLeveraging
from mechgym.envs.pettingzoo.envmodule import default_auction_generator, env_module

raw_env, env, parallel_env = env_module(CollusionLeveraging, default_auction_generator)

__all__ = ["env", "parallel_env", "raw_env"]
