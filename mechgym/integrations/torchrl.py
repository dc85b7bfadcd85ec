"""TorchRL: how mechgym's array action spaces map to TorchRL specs.

TorchRL's ``PettingZooWrapper(env, use_mask=True)`` wraps mechgym's PettingZoo envs as they
are. One case needs this module imported first: for a ``MultiDiscrete`` whose fields all
have the same size (VCG, HOPE-FOR-THE-BEST), TorchRL's default conversion stacks one
categorical per field and expects a mask of shape ``(fields, size)``, while mechgym's mask
is the flat concatenation of the fields' masks (the layout sb3-contrib reads). Importing
this module registers, through TorchRL's ``register_gym_spec_conversion``, the conversion
TorchRL already uses for fields of different sizes (``MultiOneHot``, or ``MultiCategorical``
with ``categorical_action_encoding=True``), whose mask is flat, for mechgym's
:class:`~mechgym.envs.engine.spaces.MaskedMultiDiscrete`.
"""

from __future__ import annotations

from typing import Any

import torch
from torchrl.data import MultiCategorical, MultiOneHot
from torchrl.data.utils import numpy_to_torch_dtype_dict
from torchrl.envs.libs.gym import register_gym_spec_conversion

from mechgym.envs.engine.spaces import MaskedMultiDiscrete


@register_gym_spec_conversion(MaskedMultiDiscrete)
def convert_masked_multidiscrete(
    spec: MaskedMultiDiscrete,
    dtype: Any = None,
    device: Any = None,
    categorical_action_encoding: bool | None = None,
    **kwargs: Any,
) -> MultiOneHot | MultiCategorical:
    """One categorical per field with a flat mask, whatever the field sizes."""
    if categorical_action_encoding:
        return MultiCategorical(
            spec.nvec, device=device, dtype=numpy_to_torch_dtype_dict[spec.dtype]
        )
    return MultiOneHot(spec.nvec, device=device, dtype=torch.long)
