"""OpenSpiel: a mechanism on one context as a ``pyspiel.Game`` (the ``integrations`` extra).

:func:`openspiel_game` returns a Python OpenSpiel game over the engine's rules, so that
OpenSpiel's algorithms (NashConv / best responses, CFR, PSRO, ...) run on mechgym games:

* simultaneous decision nodes are simultaneous moves; a node with one acting player is a
  sequential move of that player; at a simultaneous node a player who does not act has the
  single legal action 0 (a no-op, not read);
* chance nodes carry the engine's probabilities (exact rationals, handed to OpenSpiel as
  floats); rewards at the end are the context's rewards (utilities, or the coalition total
  for shared-reward coalitions);
* actions are the menu actions of :class:`~mechgym.agents.menus.MenuTable` (the
  ``action_encoding="menu"`` of the PettingZoo envs): action ``k`` is the ``k``-th entry of
  the node's menu, its name the menu label;
* information states are the player's seat plus the public record: every resolved move and
  chance outcome in order (these mechanisms publish each node's moves once it resolves; a
  simultaneous node's moves are hidden until then), the context being fixed and known.

The game tree is enumerated once to size the game (chance outcomes, utility range, depth),
which suits the small contexts exact game-theoretic algorithms are for.
:class:`ProfilePolicy` plays a mechgym profile (e.g. the predicted play) as an OpenSpiel
policy.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import pyspiel
from open_spiel.python import policy as openspiel_policy

from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.game import Chance, Decision, Mechanism, Terminal, step_decision

_GAME_TYPES: dict[str, pyspiel.GameType] = {}


def _game_type(name: str, n: int) -> pyspiel.GameType:
    key = f"python_mechgym_{name}"
    if key not in _GAME_TYPES:
        _GAME_TYPES[key] = pyspiel.GameType(
            short_name=key,
            long_name=f"mechgym {name}",
            dynamics=pyspiel.GameType.Dynamics.SIMULTANEOUS,
            chance_mode=pyspiel.GameType.ChanceMode.EXPLICIT_STOCHASTIC,
            information=pyspiel.GameType.Information.IMPERFECT_INFORMATION,
            utility=pyspiel.GameType.Utility.GENERAL_SUM,
            reward_model=pyspiel.GameType.RewardModel.TERMINAL,
            max_num_players=64,
            min_num_players=2,
            provides_information_state_string=True,
            provides_information_state_tensor=False,
            provides_observation_string=True,
            provides_observation_tensor=False,
            parameter_specification={},
        )
    return _GAME_TYPES[key]


class MechanismGame(pyspiel.Game):
    """A mechanism on one fixed context as an OpenSpiel game (see the module docstring).

    Built by :func:`openspiel_game`; ``mech``, ``ctx``, ``spec`` and ``menus`` are those of
    the PettingZoo env with ``action_encoding="menu"``.
    """

    def __init__(self, mech: Mechanism, ctx: Any, menus: Any) -> None:
        self.mech = mech
        self.ctx = ctx
        self.menus = menus
        chance_max, depth, lo, hi = _size(mech, ctx, menus)
        super().__init__(
            _game_type(mech.name, ctx.n),
            pyspiel.GameInfo(
                num_distinct_actions=menus.K,
                max_chance_outcomes=chance_max,
                num_players=ctx.n,
                min_utility=lo,
                max_utility=hi,
                utility_sum=None,
                max_game_length=depth,
            ),
            {},
        )

    def new_initial_state(self) -> MechanismState:
        return MechanismState(self)

    def make_py_observer(self, iig_obs_type: Any = None, params: Any = None) -> Any:
        return _Observer(iig_obs_type, params)


class MechanismState(pyspiel.State):
    """A node of a :class:`MechanismGame`; ``engine_state`` is the engine's state."""

    def __init__(self, game: MechanismGame) -> None:
        super().__init__(game)
        self.engine_state = game.mech.start(game.ctx)
        self.record: tuple[str, ...] = ()
        self._returns: list[float] | None = None

    # helpers ---------------------------------------------------------------------------
    def _game(self) -> MechanismGame:
        return self.get_game()

    def node(self) -> Any:
        """The engine node of this state."""
        return self._game().mech.node(self.engine_state)

    def _options(self, player: int) -> list[tuple[str, Any]]:
        g = self._game()
        return g.menus.menu(g.ctx, self.engine_state, player)

    # OpenSpiel API ---------------------------------------------------------------------
    def current_player(self) -> int:
        node = self.node()
        if isinstance(node, Terminal):
            return pyspiel.PlayerId.TERMINAL
        if isinstance(node, Chance):
            return pyspiel.PlayerId.CHANCE
        if len(node.players) == 1:
            return node.players[0]
        return pyspiel.PlayerId.SIMULTANEOUS

    def _legal_actions(self, player: int) -> list[int]:
        node = self.node()
        if not isinstance(node, Decision):
            return []
        if player not in node.players:
            return [0]  # the no-op of a player who does not act at a simultaneous node
        return list(range(len(self._options(player))))

    def chance_outcomes(self) -> list[tuple[int, float]]:
        node = self.node()
        return [(k, float(p)) for k, p in enumerate(node.probs) if p > 0]

    def _apply_action(self, action: int) -> None:
        node = self.node()
        g = self._game()
        if isinstance(node, Chance):
            self.record += (f"chance {node.name}={node.labels[action]}",)
            self.engine_state = g.mech.chance(self.engine_state, action)
        else:
            self._resolve(node, {node.players[0]: action})

    def _apply_actions(self, actions: list[int]) -> None:
        node = self.node()
        self._resolve(node, {p: actions[p] for p in node.players})

    def _resolve(self, node: Decision, indices: Mapping[int, int]) -> None:
        g = self._game()
        acts = {}
        for p, k in indices.items():
            label, acts[p] = self._options(p)[k]
            self.record += (f"{node.phase} p{p}={k}:{label}",)
        self.engine_state = step_decision(g.mech, self.engine_state, node, acts)

    def _action_to_string(self, player: int, action: int) -> str:
        node = self.node()
        if isinstance(node, Chance):
            return f"{node.name}={node.labels[action]}"
        if isinstance(node, Decision) and player in node.players:
            return self._options(player)[action][0]
        return "no-op"

    def is_terminal(self) -> bool:
        return isinstance(self.node(), Terminal)

    def returns(self) -> list[float]:
        node = self.node()
        if not isinstance(node, Terminal):
            return [0.0] * self._game().ctx.n
        return [float(r) for r in self._game().ctx.rewards(node.outcome)]

    def __str__(self) -> str:
        return " | ".join(self.record) or "start"


class _Observer:
    """String observations: the player's seat and the public record (see module docstring)."""

    def __init__(self, iig_obs_type: Any, params: Any) -> None:
        if params:
            raise ValueError(f"observation parameters are not supported: {params}")
        self.iig_obs_type = iig_obs_type
        self.tensor = np.zeros(0, dtype=np.float32)
        self.dict: dict[str, np.ndarray] = {}

    def set_from(self, state: MechanismState, player: int) -> None:
        pass

    def string_from(self, state: MechanismState, player: int) -> str:
        return f"p{player} | {state}"


def _size(mech: Mechanism, ctx: Any, menus: Any) -> tuple[int, int, float, float]:
    """Largest chance node, longest play and utility range over the whole menu game."""
    memo: dict[Any, tuple[int, int, Fraction, Fraction]] = {}

    def walk(state: Any) -> tuple[int, int, Fraction, Fraction]:
        hit = memo.get(state)
        if hit is not None:
            return hit
        node = mech.node(state)
        if isinstance(node, Terminal):
            r = ctx.rewards(node.outcome)
            out = (1, 0, min(r), max(r))
        else:
            if isinstance(node, Chance):
                kids = [mech.chance(state, k) for k, p in enumerate(node.probs) if p > 0]
                width = len(node.probs)
            else:
                options = [menus.options(ctx, state, p) for p in node.players]
                kids = [
                    step_decision(mech, state, node, dict(zip(node.players, combo, strict=True)))
                    for combo in itertools.product(*options)
                ]
                width = 1
            subs = [walk(k) for k in kids]
            out = (
                max([width, *(s[0] for s in subs)]),
                1 + max(s[1] for s in subs),
                min(s[2] for s in subs),
                max(s[3] for s in subs),
            )
        memo[state] = out
        return out

    chance_max, depth, lo, hi = walk(mech.start(ctx))
    return chance_max, depth, float(lo), float(hi)


def openspiel_game(
    mechanism: str | Mechanism,
    context: Any,
    value_cap: int | None = None,
    price_cap: int | None = None,
    **params: Any,
) -> MechanismGame:
    """A mechanism on one context as a ``pyspiel.Game`` with menu actions.

    Parameters
    ----------
    mechanism : str or Mechanism
        A catalogue name (``"best_belief"``) or env id, or a mechanism instance.
    context : context or str
        The fixed context (or the name of a built-in example).
    value_cap, price_cap : int, optional
        As for the PettingZoo envs (they size the menus of some mechanisms).
    **params
        Mechanism constants (``eps=...``) when ``mechanism`` is a name.
    """
    from mechgym.envs.pettingzoo.aec import MechanismEnv
    from mechgym.envs.pettingzoo.registry import entry

    if context is None:
        raise ParameterError("context", "an OpenSpiel game needs one fixed context")
    kwargs: dict[str, Any] = {
        "context": context,
        "value_cap": value_cap,
        "price_cap": price_cap,
        "action_encoding": "menu",
    }
    if isinstance(mechanism, Mechanism):
        if params:
            raise ParameterError(", ".join(params), "give constants to the mechanism instance")
        if isinstance(context, str):
            from mechgym.envs.model.examples import example

            kwargs["context"] = example(context)
        env = MechanismEnv(mechanism, **kwargs)
    else:
        env = entry(mechanism).load_env_module().raw_env(**kwargs, **params)
    return MechanismGame(env.mechanism, env.context, env.menus)


class ProfilePolicy(openspiel_policy.Policy):
    """A deterministic mechgym profile ``{player: policy}`` as an OpenSpiel policy.

    Each player plays the menu entry equal to its policy's action (a ``ValueError`` if the
    menu lacks it: predicted play is always in the menus); a player who does not act at a
    simultaneous node plays the no-op 0.

    Works on the game's states and on those of ``pyspiel.convert_to_turn_based(game)``
    (pass that game as ``turn_based``), whose states are found again from their
    information strings. OpenSpiel's Python best response explores, at a simultaneous
    node, only the moves a policy plays there, so a best response against a deterministic
    profile needs the turn-based game.
    """

    def __init__(
        self, game: MechanismGame, profile: Mapping[int, Any], turn_based: Any = None
    ) -> None:
        super().__init__(turn_based or game, list(range(game.num_players())))
        self.mech_game = game
        self.profile = dict(profile)
        self._by_record: dict[str, MechanismState] = {}
        if turn_based is not None:
            stack = [game.new_initial_state()]
            while stack:
                st = stack.pop()
                self._by_record[str(st)] = st
                if st.is_terminal():
                    continue
                if st.is_chance_node():
                    stack += [st.child(a) for a, _ in st.chance_outcomes()]
                elif st.is_simultaneous_node():
                    legal = [st.legal_actions(p) for p in range(game.num_players())]
                    for joint in itertools.product(*legal):
                        child = st.clone()
                        child.apply_actions(list(joint))
                        stack.append(child)
                else:
                    stack += [st.child(a) for a in st.legal_actions()]

    def action_probabilities(self, state: Any, player_id: int | None = None) -> dict[int, float]:
        player = state.current_player() if player_id is None else player_id
        if not isinstance(state, MechanismState):
            # a turn-based state: its information string ends with "p<i> | <record>"
            record = state.information_state_string(player).rsplit("\n", 1)[-1]
            state = self._by_record[record.split(" | ", 1)[1]]
        node = state.node()
        if not isinstance(node, Decision) or player not in node.players:
            return {0: 1.0}
        g = self.mech_game
        act = self.profile[player].act(g.mech, g.ctx, state.engine_state, player)
        k = g.menus.encode(g.ctx, state.engine_state, player, act)
        if k is None:
            raise ValueError(f"player {player}'s action {act!r} is not in its menu at {state}")
        return {k: 1.0}
