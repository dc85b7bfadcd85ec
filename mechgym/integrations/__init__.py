"""Bridges to the libraries researchers use (the ``integrations`` extra).

* :mod:`mechgym.integrations.sb3` — SuperSuit's vector env made seedable and maskable for
  stable-baselines3 / sb3-contrib;
* :mod:`mechgym.integrations.openspiel` — a mechanism as a ``pyspiel.Game`` (NashConv, CFR,
  PSRO on mechgym games);
* :mod:`mechgym.integrations.torchrl_batched` — a native batched TorchRL multi-agent env;
* :mod:`mechgym.integrations.benchmarl` — the benchmark tasks as BenchMARL tasks on that env,
  with mechgym's exact score in BenchMARL's marl-eval JSON (imports BenchMARL).

TorchRL's ``PettingZooWrapper``, Tianshou's ``PettingZooEnv`` and RLlib
(:mod:`mechgym.integrations.rllib`) take the PettingZoo envs as they are; see the README.
"""
