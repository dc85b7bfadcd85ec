"""PettingZoo env of VCG with Clarke payments: `mechgym/VCG-v0`."""

from .envmodule import default_auction_generator, env_module
from .vcg import VCG

raw_env, env, parallel_env = env_module(VCG, default_auction_generator)

__all__ = ["env", "parallel_env", "raw_env"]
