"""PettingZoo env of HOPE-FOR-THE-BEST, the foil of M5: ``mechgym/HopeForTheBest-v0``."""

from mechgym.envs.mechanisms.foils import HopeForTheBest
from mechgym.envs.perfect_revenue_v0 import default_states_generator
from mechgym.envs.pettingzoo.envmodule import env_module

raw_env, env, parallel_env = env_module(HopeForTheBest, default_states_generator)

__all__ = ["env", "parallel_env", "raw_env"]
