"""The head of every observation vector, defined once for the exact and batched paths.

An agent's observation starts ``[phase one-hot | acting flag]`` and the global state (for
centralised critics) ``[phase one-hot | acting flag per player]``; the rest (own index,
private information, public history) follows. The AEC env, the exact-state observation a
trained model plays from, the batched API and the TorchRL env all build their heads here, a
single episode being a batch of one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["observation_head", "state_head"]


def observation_head(phase: np.ndarray, acting: np.ndarray, phases: int) -> np.ndarray:
    """``(B, phases + 1)`` float32: the phase one-hot and the agent's acting flag.

    ``phase`` ``(B,)`` holds each episode's phase index, negative where no decision node is
    current (chance resolved to an end: a zero head); ``acting`` ``(B,)`` is whether the
    agent still has to move there. Scalars stand for one episode (the AEC env's per-step
    call), answered without array indexing since it runs at every observation.
    """
    if np.ndim(phase) == 0:
        one = np.zeros((1, phases + 1), dtype=np.float32)
        if phase >= 0:
            one[0, phase] = 1.0
            one[0, phases] = 1.0 if acting else 0.0
        return one
    phase = np.asarray(phase, dtype=np.int64).reshape(-1)
    head = np.zeros((len(phase), phases + 1), dtype=np.float32)
    live = np.flatnonzero(phase >= 0)
    head[live, phase[live]] = 1.0
    head[live, phases] = np.asarray(acting, dtype=bool).reshape(-1)[live]
    return head


def state_head(phase: np.ndarray, acting: np.ndarray, phases: int) -> np.ndarray:
    """``(B, phases + n)`` float32: the phase one-hot and every player's acting flag
    (``acting`` ``(B, n)``; zeros where ``phase`` is negative)."""
    phase = np.asarray(phase, dtype=np.int64).reshape(-1)
    acting = np.asarray(acting, dtype=bool).reshape(len(phase), -1)
    head = np.zeros((len(phase), phases + acting.shape[1]), dtype=np.float32)
    live = np.flatnonzero(phase >= 0)
    head[live, phase[live]] = 1.0
    head[live, phases:] = acting[live]
    return head
