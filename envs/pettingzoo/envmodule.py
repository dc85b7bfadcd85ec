"""Factories for the ``<name>_v0`` env modules: ``raw_env``, ``env``, ``parallel_env``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.game import Mechanism
from mechgym.envs.engine.setting import Setting, resolve_setting
from mechgym.envs.pettingzoo.aec import MechanismEnv, MechanismParallelEnv, wrap
from pettingzoo import AECEnv, ParallelEnv


def build_mechanism(mech_cls: type[Mechanism], params: dict[str, Any]) -> Mechanism:
    """Instantiate a mechanism, turning unknown constants into a :class:`ParameterError`."""
    try:
        return mech_cls(**params)
    except TypeError as exc:
        raise ParameterError(
            ", ".join(params) or "-", f"{mech_cls.__name__} does not take it ({exc})"
        ) from None


def env_module(
    mech_cls: type[Mechanism], default_generator: Callable[[], Any]
) -> tuple[type[MechanismEnv], Callable[..., AECEnv], Callable[..., ParallelEnv]]:
    """Return ``(raw_env, env, parallel_env)`` for a mechanism class.

    ``raw_env(context=None, generator=None, seed=None, value_cap=None, price_cap=None,
    render_mode=None, action_encoding="multidiscrete", price_levels=16, price_grid="linear",
    **constants)``: with neither a context
    nor a generator, contexts are drawn from ``default_generator()``; ``context`` may also be
    the name of a built-in example.
    """

    class raw_env(MechanismEnv):
        __doc__ = f"{mech_cls.title} as a PettingZoo AEC env; see :class:`MechanismEnv`."

        def __init__(
            self,
            context: Any = None,
            generator: Any = None,
            seed: int | None = None,
            value_cap: int | None = None,
            price_cap: int | None = None,
            render_mode: str | None = None,
            action_encoding: str = "multidiscrete",
            price_levels: int = 16,
            price_grid: str = "linear",
            **constants: Any,
        ) -> None:
            s = raw_env.setting(context, generator, value_cap, price_cap, **constants)
            super().__init__(
                s.mechanism,
                context=s.context,
                generator=s.generator,
                seed=seed,
                value_cap=s.spec.value_cap,
                price_cap=s.spec.price_cap,
                render_mode=render_mode,
                action_encoding=action_encoding,
                price_levels=price_levels,
                price_grid=price_grid,
            )

        @staticmethod
        def setting(
            context: Any = None,
            generator: Any = None,
            value_cap: int | None = None,
            price_cap: int | None = None,
            **constants: Any,
        ) -> Setting:
            """What ``raw_env`` with these arguments plays (no env is built): ``context`` may be
            an example name, ``generator`` a spec string; with neither, the default
            generator."""
            if isinstance(context, str):
                from mechgym.envs.model.examples import example

                context = example(context)
            if isinstance(generator, str):
                from mechgym.envs.model.generators import make_generator

                generator = make_generator(generator)
            if context is None and generator is None:
                generator = default_generator()
            mech = build_mechanism(mech_cls, constants)
            return resolve_setting(mech, context, generator, value_cap, price_cap)

    raw_env.__name__ = raw_env.__qualname__ = "raw_env"
    # pickle finds classes by module and name: point it at the <name>_v0 module that calls us
    raw_env.__module__ = sys._getframe(1).f_globals.get("__name__", __name__)

    def env(**kwargs: Any) -> AECEnv:
        """The AEC env, wrapped in PettingZoo's order enforcing wrapper."""
        return wrap(raw_env(**kwargs))

    def parallel_env(**kwargs: Any) -> ParallelEnv:
        """The parallel env (every decision node of this mechanism is simultaneous)."""
        return MechanismParallelEnv(raw_env(**kwargs))

    return raw_env, env, parallel_env


def default_auction_generator() -> Any:
    """Three players, two goods, values up to 20, noisy correct beliefs."""
    from mechgym.envs.model.generators import UniformGenerator

    return UniformGenerator(n=3, m=2, value_cap=20, belief="noisy")
