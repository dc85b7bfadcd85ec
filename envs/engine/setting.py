"""What an env plays: a mechanism, its contexts (one, or a generator) and the env's sizes.

One resolution for every front end: the PettingZoo envs, the batched envs and the learner
envs read their mechanism, contexts, caps and context class from a :class:`Setting`, so a
learner env needs no PettingZoo env to learn its options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.game import EnvSpec, Mechanism, require_kind
from mechgym.envs.model.limits import check_cap


@dataclass(frozen=True)
class Setting:
    """A mechanism with one context or a generator, and the env sizes (:class:`EnvSpec`)."""

    mechanism: Mechanism
    context: Any
    generator: Any
    spec: EnvSpec

    @property
    def context_class(self) -> type:
        return type(self.context) if self.context is not None else self.generator.context_class


def resolve_setting(
    mechanism: Mechanism,
    context: Any = None,
    generator: Any = None,
    value_cap: int | None = None,
    price_cap: int | None = None,
) -> Setting:
    """Check the pair (exactly one of ``context`` and ``generator``, of the mechanism's
    kind) and size the env: ``value_cap`` defaults to the contexts', ``price_cap`` to the
    mechanism's default for it."""
    if (context is None) == (generator is None):
        raise ParameterError("context/generator", "give exactly one of a context or a generator")
    src = context if context is not None else generator
    require_kind(mechanism, src)
    vcap = check_cap(value_cap if value_cap is not None else src.value_cap, "value_cap")
    pcap = price_cap if price_cap is not None else mechanism.default_price_cap(src.n, vcap)
    spec = EnvSpec(
        n=int(src.n), m=int(src.m), value_cap=vcap, price_cap=check_cap(pcap, "price_cap")
    )
    return Setting(mechanism, context, generator, spec)
