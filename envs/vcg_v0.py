"""PettingZoo env of VCG with Clarke payments: `mechgym/VCG-v0`."""

from mechgym.envs.mechanisms.vcg import VCG
from mechgym.envs.pettingzoo.envmodule import default_auction_generator, env_module

raw_env, env, parallel_env = env_module(VCG, default_auction_generator)

__all__ = ["env", "parallel_env", "raw_env"]
