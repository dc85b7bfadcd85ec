"""PettingZoo env of HOPE-FOR-THE-BEST, the foil of M5: ``mechgym/HopeForTheBest-v0``."""

from .envmodule import env_module
from .foils import HopeForTheBest
from .perfect_revenue_v0 import default_states_generator

raw_env, env, parallel_env = env_module(HopeForTheBest, default_states_generator)

__all__ = ["env", "parallel_env", "raw_env"]
