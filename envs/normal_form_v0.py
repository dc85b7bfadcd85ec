"""PettingZoo env of the normal-form mechanism M_Normal: `mechgym/NormalForm-v0`."""

from mechgym.envs.mechanisms.normal_form import NormalForm
from mechgym.envs.pettingzoo.envmodule import default_auction_generator, env_module

raw_env, env, parallel_env = env_module(NormalForm, default_auction_generator)

__all__ = ["env", "parallel_env", "raw_env"]
