"""Array encodings of structured actions: named MultiDiscrete fields with flat masks.

Each mechanism lays its actions out as named fields (``answer``, ``bundle``, ``owner_0``,
``price_2``, ...), the union over its phases. A phase reads only its own fields; the mask of
every other field allows only 0. The mask is the concatenation of per-field masks, the layout
sb3-contrib's MaskablePPO expects for MultiDiscrete actions. :meth:`ActionLayout.check`
ignores the fields a node does not read (any in-range value is taken as 0); values outside a
field's range, and masked values of read fields, are errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from mechgym.envs.engine.errors import IllegalActionError, OutOfSpaceError, ParameterError
from mechgym.envs.model.limits import MAX_MASK_SIZE

#: older names of action encodings, accepted everywhere an encoding is named
ENCODING_ALIASES = {"raw": "multidiscrete"}


def canonical_encoding(name: Any) -> Any:
    """The one name of an action encoding: ``"multidiscrete"`` for the full array layout
    (``"raw"`` is an alias); other values are returned as given, for the caller to check."""
    return ENCODING_ALIASES.get(name, name) if isinstance(name, str) else name


class MaskedMultiDiscrete(spaces.MultiDiscrete):
    """MultiDiscrete whose :meth:`sample` also takes the flat concatenated mask.

    An env may set ``mask_fn`` (a callable returning the agent's current flat mask); a
    :meth:`sample` without a mask then draws a legal action at the agent's current node, so
    that mask-unaware loops (PettingZoo's ``parallel_seed_test``) play legally.
    """

    mask_fn: Callable[[], np.ndarray] | None = None

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        if mask is None and probability is None and self.mask_fn is not None:
            mask = self.mask_fn()
        if mask is not None and not isinstance(mask, tuple):
            flat = np.asarray(mask, dtype=np.int8)
            cuts = np.cumsum(self.nvec.ravel())[:-1]
            mask = tuple(np.ascontiguousarray(part) for part in np.split(flat, cuts))
        return super().sample(mask=mask, probability=probability)


class MaskedDiscrete(spaces.Discrete):
    """Discrete whose :meth:`sample` without a mask uses ``mask_fn`` when an env set it (see
    :class:`MaskedMultiDiscrete`)."""

    mask_fn: Callable[[], np.ndarray] | None = None

    def sample(self, mask: Any = None, probability: Any = None) -> np.int64:
        if mask is None and probability is None and self.mask_fn is not None:
            mask = np.asarray(self.mask_fn(), dtype=np.int8)
        return super().sample(mask=mask, probability=probability)


class ActionLayout:
    """Named MultiDiscrete fields.

    Parameters
    ----------
    fields : sequence of (name, size)
        Field ``name`` takes values ``0..size-1``.
    """

    def __init__(self, fields: Sequence[tuple[str, int]]) -> None:
        self.names = tuple(f for f, _ in fields)
        self.sizes = np.array([s for _, s in fields], dtype=np.int64)
        if len(set(self.names)) != len(self.names):
            raise ValueError("field names must be unique")
        if np.any(self.sizes < 1):
            raise ValueError("every field needs at least one value")
        self.index = {f: k for k, f in enumerate(self.names)}
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.mask_size = int(self.offsets[-1])
        if self.mask_size > MAX_MASK_SIZE:
            # masks are dense int8 vectors (per episode on the batched path): refuse the caps
            # before anything allocates one
            raise ParameterError(
                "value_cap/price_cap",
                f"the action mask would hold {self.mask_size} entries (at most {MAX_MASK_SIZE}); "
                "pass a smaller value_cap/price_cap (structured actions may still state amounts "
                "up to 2**53)",
            )
        self.space = MaskedMultiDiscrete(self.sizes)

    def __len__(self) -> int:
        return len(self.names)

    def zeros(self) -> np.ndarray:
        """The all-zero action (the no-op of every field)."""
        return np.zeros(len(self.names), dtype=np.int64)

    def mask(self, allowed: Mapping[str, Any]) -> np.ndarray:
        """Build a flat mask: listed fields get their mask (``True`` = all values, or a bool
        array of the field's size); unlisted fields allow only 0."""
        out = np.zeros(self.mask_size, dtype=np.int8)
        out[self.offsets[:-1]] = 1
        for name, m in allowed.items():
            k = self.index[name]
            lo, hi = self.offsets[k], self.offsets[k + 1]
            if m is True:
                out[lo:hi] = 1
            else:
                out[lo:hi] = np.asarray(m, dtype=np.int8)
        return out

    def field_mask(self, mask: np.ndarray, name: str) -> np.ndarray:
        """The part of a flat mask that belongs to field ``name``."""
        k = self.index[name]
        return mask[self.offsets[k] : self.offsets[k + 1]]

    def check(self, vec: Any, mask: np.ndarray, agent: str, phase: str) -> np.ndarray:
        """Return ``vec`` as an int array if it is in the space and allowed by ``mask``.

        Raises
        ------
        OutOfSpaceError
            Wrong shape, non-integer entries, or a value outside a field's range.
        IllegalActionError
            A value the mask excludes at this node (named by field).
        """
        try:
            arr = np.asarray(vec)
        except Exception:
            raise OutOfSpaceError(agent, phase, f"cannot read {vec!r} as an action array") from None
        if arr.shape != (len(self.names),):
            raise OutOfSpaceError(
                agent,
                phase,
                f"action has shape {arr.shape}, expected ({len(self.names)},) "
                f"with fields {list(self.names)}",
            )
        if arr.dtype.kind not in "iu":
            if (
                arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
            ) or arr.dtype.kind == "b":
                arr = arr.astype(np.int64)
            else:
                raise OutOfSpaceError(
                    agent, phase, f"action entries must be integers, got dtype {arr.dtype}"
                )
        arr = arr.astype(np.int64)
        if ((arr < 0) | (arr >= self.sizes)).any():
            k = int(np.flatnonzero((arr < 0) | (arr >= self.sizes))[0])
            raise OutOfSpaceError(
                agent,
                phase,
                f"field '{self.names[k]}' = {int(arr[k])} is outside 0..{int(self.sizes[k]) - 1}",
            )
        # a field whose mask allows only 0 is not read at this node: any in-range value is
        # taken as 0, so that mask-unaware samplers need not zero it
        starts = self.offsets[:-1]
        unread = (mask[starts] != 0) & (np.add.reduceat(mask != 0, starts) == 1)
        if unread.any():
            arr = np.where(unread, 0, arr)
        pos = starts + arr
        if not mask[pos].all():
            k = int(np.flatnonzero(mask[pos] == 0)[0])
            legal = np.flatnonzero(self.field_mask(mask, self.names[k]))
            raise IllegalActionError(
                agent,
                phase,
                f"field '{self.names[k]}' = {int(arr[k])} is not allowed here; "
                f"legal values are {_ranges(legal)}",
            )
        return arr


def _ranges(idx: np.ndarray) -> str:
    parts: list[str] = []
    start = prev = None
    for v in idx.tolist():
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            parts.append(f"{start}" if start == prev else f"{start}..{prev}")
            start = prev = v
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}..{prev}")
    return ", ".join(parts) if parts else "none"


class MaskedChoiceBox(spaces.Tuple):
    """``Tuple(Discrete(D), Box(0, 1, (1,)))``: a sub-decision of the ``continuous`` encoding
    (the entry, and the number read where the node reads the box). :meth:`sample` takes the
    flat length-``D`` mask of the entry (or uses ``mask_fn``, see :class:`MaskedMultiDiscrete`).
    """

    mask_fn: Callable[[], np.ndarray] | None = None

    def __init__(self, D: int, seed: Any = None) -> None:
        super().__init__(
            (MaskedDiscrete(D), spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)), seed=seed
        )

    def sample(self, mask: Any = None, probability: Any = None) -> tuple[Any, ...]:
        if mask is None and probability is None and self.mask_fn is not None:
            mask = self.mask_fn()
        if mask is not None and not isinstance(mask, tuple):
            mask = (np.asarray(mask, dtype=np.int8), None)
        return super().sample(mask=mask, probability=probability)
