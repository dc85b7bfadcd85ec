"""PettingZoo env of the knowledge-benchmark mechanism M3: ``mechgym/KnowledgeBenchmark-v0``.

Contexts default to noisy but correct beliefs (seed 001 assumes correct knowledge). Every
decision node is simultaneous, so a parallel env is offered.
"""

from mechgym.envs.mechanisms.knowledge_benchmark import KnowledgeBenchmark
from mechgym.envs.pettingzoo.envmodule import default_auction_generator, env_module

raw_env, env, parallel_env = env_module(KnowledgeBenchmark, default_auction_generator)

__all__ = ["env", "parallel_env", "raw_env"]
