"""Menus as a ``Discrete`` action encoding: the one place every env and learner reads them.

A mechanism's agents module registers ``menu(mech, ctx, state, player)`` (a list of
``(label, structured action)`` built from the player's private information, always holding
the predicted action) and ``menu_size(phase, spec)``. :class:`MenuTable` turns them into an
action encoding: ``Discrete(K)`` with ``K`` the largest menu over the phases, entry ``k`` at a
node is the ``k``-th entry of that node's menu, entries beyond the phase's menu are masked.
The PettingZoo envs (``action_encoding="menu"``), the learner env, the RLlib env and the
OpenSpiel game all use it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces
from mechgym.envs.engine.errors import IllegalActionError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.game import EnvSpec, Mechanism

Menu = list[tuple[str, Any]]


def menu_grid(price_cap: int, value_cap: int) -> int:
    """The price cap of an env whose actions are menu entries: a menu entry is an action of
    the array layout, so its prices must be on the layout's grid; twice the value cap keeps
    the scaled offers of the menus (factors up to 2) on it, unless the default is wider."""
    return max(price_cap, 2 * value_cap)


class _MenuCache:
    """A small LRU of menus keyed by (context identity, state, player)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.data: OrderedDict[tuple[int, Any, int], tuple[Any, Menu]] = OrderedDict()

    def get(self, ctx: Any, state: Any, player: int, build: Callable[[], Menu]) -> Menu:
        try:
            key = (id(ctx), state, player)
            hash(key)
        except TypeError:
            return build()
        hit = self.data.get(key)
        # the context object is kept with the entry, so a reused id() cannot alias
        if hit is not None and hit[0] is ctx:
            self.data.move_to_end(key)
            return hit[1]
        menu = build()
        self.data[key] = (ctx, menu)
        if len(self.data) > self.size:
            self.data.popitem(last=False)
        return menu


class MenuTable:
    """The menus of one mechanism over fixed env sizes.

    Parameters
    ----------
    mech_name : str
        Registry name (for messages).
    mech : Mechanism
    spec : EnvSpec
    agents : MechanismAgents
        Supplies ``menu`` and ``menu_size``.
    """

    def __init__(self, mech_name: str, mech: Mechanism, spec: EnvSpec, agents: Any) -> None:
        if agents is None or agents.menu is None or agents.menu_size is None:
            raise ParameterError(
                "action_encoding",
                f"mechanism '{mech_name}' registers no menu; use the multidiscrete/raw encoding",
            )
        self.mech_name = mech_name
        self.mech = mech
        self.spec = spec
        self.agents = agents
        self.sizes = {ph: int(agents.menu_size(ph, spec)) for ph in mech.phases}
        self.K = max(self.sizes.values())
        if self.K < 1:
            raise ParameterError("action_encoding", f"mechanism '{mech_name}' has empty menus")
        self._cache = _MenuCache()

    def __getstate__(self) -> dict[str, Any]:
        # the agents registry holds lambdas (deviations): pickle the menus by name, reload them
        state = {k: v for k, v in self.__dict__.items() if k not in ("agents", "_cache")}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from mechgym.envs.pettingzoo.registry import entry

        self.__dict__.update(state)
        self.agents = entry(self.mech_name).load_agents()
        self._cache = _MenuCache()

    def menu(self, ctx: Any, state: Any, player: int) -> Menu:
        """The node's menu (cached per context, state and player)."""
        menu = self._cache.get(
            ctx, state, player, lambda: list(self.agents.menu(self.mech, ctx, state, player))
        )
        if len(menu) > self.K:
            phase = self.mech.node(state).phase
            raise ParameterError(
                "menu",
                f"'{self.mech_name}' phase '{phase}' gave {len(menu)} entries,"
                f" above menu_size {self.K}",
            )
        return menu

    def mask(self, ctx: Any, state: Any, player: int) -> np.ndarray:
        """int8 mask of length ``K``: 1 on the node's menu entries."""
        out = np.zeros(self.K, dtype=np.int8)
        out[: len(self.menu(ctx, state, player))] = 1
        return out

    def index(self, action: Any, agent: str, phase: str) -> int:
        """Read a menu action (an integer, or a one-element array) and check its range."""
        try:
            arr = np.asarray(action)
            if arr.size != 1 or arr.dtype.kind not in "iu":
                raise TypeError
            k = int(arr.reshape(()))
        except (TypeError, ValueError):
            raise OutOfSpaceError(
                agent, phase, f"a menu action is one integer in 0..{self.K - 1}, got {action!r}"
            ) from None
        if not 0 <= k < self.K:
            raise OutOfSpaceError(agent, phase, f"menu entry {k} is outside 0..{self.K - 1}")
        return k

    def decode(self, ctx: Any, state: Any, player: int, action: Any) -> Any:
        """The structured action of menu entry ``action``; typed errors if outside the space
        or masked at this node."""
        phase = self.mech.node(state).phase
        agent = f"player_{player}"
        k = self.index(action, agent, phase)
        menu = self.menu(ctx, state, player)
        if k >= len(menu):
            raise IllegalActionError(
                agent,
                phase,
                f"menu entry {k} is masked here; phase '{phase}' offers 0..{len(menu) - 1}",
            )
        return menu[k][1]

    def encode(self, ctx: Any, state: Any, player: int, structured: Any) -> int | None:
        """The entry holding ``structured``, or ``None`` if the menu lacks it."""
        for k, (_, a) in enumerate(self.menu(ctx, state, player)):
            if a == structured:
                return k
        return None

    def label(self, ctx: Any, state: Any, player: int, k: int) -> str:
        """Human label of entry ``k``."""
        return self.menu(ctx, state, player)[k][0]

    def options(self, ctx: Any, state: Any, player: int) -> list[Any]:
        """The node's structured menu actions, in entry order."""
        return [a for _, a in self.menu(ctx, state, player)]

    def space(self) -> spaces.Discrete:
        """A fresh ``Discrete(K)`` action space."""
        return spaces.Discrete(self.K)


def menu_table(mech: Mechanism, spec: EnvSpec) -> MenuTable:
    """The :class:`MenuTable` of a catalogued mechanism (loads its agents module)."""
    from mechgym.envs.pettingzoo.registry import entry

    return MenuTable(mech.name, mech, spec, entry(mech.name).load_agents())
