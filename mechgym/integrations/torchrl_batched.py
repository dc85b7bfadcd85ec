"""TorchRL: a native batched multi-agent env over mechgym's batched path.

:class:`BatchedMechanismEnv` is a TorchRL ``EnvBase`` with ``batch_size=[B]`` that runs ``B``
episodes of a mechanism at once on the batched rules (numpy), through the batched
multi-agent API :class:`~mechgym.envs.batched_api.BatchedEnv`, and converts to TensorDicts.
"""

from __future__ import annotations

__all__ = ["BatchedMechanismEnv"]
