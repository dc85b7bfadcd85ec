"""PettingZoo env of the best-belief mechanism M_BB: ``mechgym/BestBelief-v0``."""

from mechgym.envs.mechanisms.best_belief import BestBelief
from mechgym.envs.pettingzoo.envmodule import default_auction_generator, env_module

raw_env, env, parallel_env = env_module(BestBelief, default_auction_generator)

__all__ = ["env", "parallel_env", "raw_env"]
