"""PettingZoo env of Naive-2, a foil of M6 (seed 004, Sec. 5.1): ``mechgym/NaiveMarket2-v0``."""

from mechgym.envs.budget_balanced_market_v0 import default_market_generator
from mechgym.envs.mechanisms.foils import NaiveMarket2
from mechgym.envs.pettingzoo.envmodule import env_module

raw_env, env, parallel_env = env_module(NaiveMarket2, default_market_generator)

__all__ = ["env", "parallel_env", "raw_env"]
