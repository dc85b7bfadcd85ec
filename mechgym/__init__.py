"""mechgym: resilient mechanisms as multi-agent reinforcement-learning environments.

Importing :mod:`mechgym` registers every mechanism with PettingZoo, so that
``pettingzoo.make("aec", "mechgym/BestBelief-v0")`` works.
"""

from __future__ import annotations

from mechgym.envs.pettingzoo.registry import CATALOGUE, available, entry, register_envs

__version__ = "0.1.0"

register_envs()

__all__ = ["CATALOGUE", "__version__", "available", "entry", "register_envs"]
