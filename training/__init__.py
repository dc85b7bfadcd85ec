"""Learners against fixed others, action encodings and distance-to-prediction metrics.

Modules (heavy dependencies — torch, stable-baselines3 — load only when models are built):

- :mod:`~mechgym.training.learner_env` — :class:`LearnerEnv`, a Gymnasium env handing one
  player or coalition its decisions in any mechanism's AEC env, everyone else played by given
  policies; ``action_masks()`` for MaskablePPO.
- :mod:`~mechgym.training.encodings` — ``menu`` (Discrete menus of the agents module) and
  ``raw`` (the mechanism's MultiDiscrete layout) encodings; the learner's observation.
- :mod:`~mechgym.training.policies` — opponent sources (predicted, random, deviations, saved
  models) and trained models as deterministic policies (:class:`LearnedPolicy`).
- :mod:`~mechgym.training.algos` — SB3 models (MaskablePPO, PPO, A2C, DQN) with defaults for
  one-auction episodes.
- :mod:`~mechgym.training.multi` — several learners: independent (alternating), iterated
  best response, self-play with parameter sharing; checkpoints and resume.
- :mod:`~mechgym.training.metrics` — exact agreement, bounds, outcome ratios, guarantees and
  exploitability of a profile.
- :mod:`~mechgym.training.train` / :mod:`~mechgym.training.converge` — the ``mechgym train``
  and ``mechgym converge`` jobs; :mod:`~mechgym.training.commands` registers them on the CLI.
- :mod:`~mechgym.training.batched_ppo` — PPO (TorchRL's ``ClipPPOLoss`` and ``GAE``) trained
  directly on the TorchRL batched env, every learning group at once;
  :mod:`~mechgym.training.batched_policy` — its learned policies (batched, exact, saved).
- :mod:`~mechgym.training.bench` — share of training time spent inside the env, and the
  batched learner's decisions per second.
"""
