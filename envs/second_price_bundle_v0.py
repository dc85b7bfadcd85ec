"""PettingZoo env of the second-price bundle auction A': ``mechgym/SecondPriceBundle-v0``.

``env()`` runs A' alone; ``env(mixture="collusion_leveraging", c="1/2", eps=...)`` (or
``mixture="knowledge_benchmark"``) runs seed 002's mixture M': the revenue mechanism with
probability 1/(c+1), A' otherwise. Every decision node is simultaneous in both cases.
"""

from mechgym.envs.mechanisms.second_price_bundle import SecondPriceBundle
from mechgym.envs.pettingzoo.envmodule import default_auction_generator, env_module

raw_env, env, parallel_env = env_module(SecondPriceBundle, default_auction_generator)

__all__ = ["env", "parallel_env", "raw_env"]
