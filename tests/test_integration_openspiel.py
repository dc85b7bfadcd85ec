"""OpenSpiel: mechgym games as pyspiel games; NashConv equals mechgym's exact exploitability."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

pyspiel = pytest.importorskip("pyspiel")

from mechgym.envs.engine.errors import ParameterError  # noqa: E402
from mechgym.envs.engine.game import evaluate_exact  # noqa: E402
from mechgym.envs.model.generators import make_generator  # noqa: E402
from mechgym.envs.pettingzoo.registry import entry  # noqa: E402
from mechgym.training.metrics import best_response_value  # noqa: E402
from open_spiel.python.algorithms import exploitability  # noqa: E402

from mechgym.integrations.openspiel import (  # noqa: E402
    ProfilePolicy,
    openspiel_game,
)

# (mechanism, tiny generator spec, draws): 16 contexts over every kind of node and context
CASES = [
    ("best_belief", "uniform:n=2,m=1,cap=4,belief=noisy", 2),
    ("normal_form", "uniform:n=2,m=1,cap=3,belief=exact", 1),
    ("vcg", "uniform:n=2,m=1,cap=4,belief=none", 1),
    ("knowledge_benchmark", "uniform:n=2,m=1,cap=4,belief=noisy", 2),
    ("collusion_leveraging", "uniform:n=2,m=1,cap=3,belief=exact", 1),
    ("second_price_bundle", "uniform:n=2,m=1,cap=4,belief=wrong", 1),
    ("perfect_revenue", "states:n=2,m=2,cap=2", 2),
    ("budget_balanced_market", "market:n=2,m=1,k=2", 2),
    ("hope_for_the_best", "states:n=2,m=2,cap=2", 1),
    ("naive_market_1", "market:n=2,m=1,k=2", 1),
    ("naive_market_2", "market:n=2,m=1,k=2", 1),
    ("naive_market_3", "market:n=2,m=1,k=2", 1),
]


class MenuEntry:
    """Plays entry ``k`` of every menu (the last one where the menu is shorter)."""

    def __init__(self, menus, k: int) -> None:
        self.menus = menus
        self.k = k

    def act(self, mech, ctx, state, player):
        options = self.menus.options(ctx, state, player)
        return options[min(self.k, len(options) - 1)]


def _contexts():
    rng = np.random.default_rng(11)
    for name, spec, draws in CASES:
        gen = make_generator(spec)
        for d in range(draws):
            yield pytest.param(name, gen.sample(rng), id=f"{name}-{d}")


def mechgym_gains(game, profile) -> list[Fraction]:
    """Each player's exact best gain from deviating within its menus (training.metrics)."""
    mech, ctx = game.mech, game.ctx
    ev = evaluate_exact(mech, ctx, profile)
    gains = []
    for p in range(ctx.n):
        br = best_response_value(mech, ctx, profile, (p,), game.menus.options)
        current = sum((pr * Fraction(ctx.rewards(o)[p]) for pr, o in ev.outcomes), Fraction(0))
        gains.append(br - current)
    return gains


@pytest.mark.parametrize(("name", "ctx"), list(_contexts()))
def test_nash_conv_equals_exact_exploitability(name, ctx) -> None:
    game = openspiel_game(name, context=ctx)
    assert isinstance(game, pyspiel.Game)
    assert game.num_players() == ctx.n and game.num_distinct_actions() == game.menus.K
    turn_based = pyspiel.convert_to_turn_based(game)
    agents = entry(name).load_agents()
    profiles = {
        "predicted": dict.fromkeys(range(ctx.n), agents.predicted(ctx)),
        "entry1": dict.fromkeys(range(ctx.n), MenuEntry(game.menus, 1)),
    }
    for label, profile in profiles.items():
        policy = ProfilePolicy(game, profile, turn_based=turn_based)
        res = exploitability.nash_conv(turn_based, policy, return_only_nash_conv=False)
        exact = mechgym_gains(game, profile)
        np.testing.assert_allclose(
            res.player_improvements, [float(g) for g in exact], atol=1e-9, err_msg=label
        )


def test_game_follows_the_engine() -> None:
    game = openspiel_game("best_belief", context="chen-micali-2016", eps="1/10")
    state = game.new_initial_state()
    assert state.is_simultaneous_node() and game.num_players() == 3
    # every announcement is a menu entry; the coin is a fair chance node
    names = [state.action_to_string(0, a) for a in state.legal_actions(0)]
    assert "xi=rank0 offer*1" in names
    state.apply_actions([names.index("xi=rank0 offer*1")] * 3)
    assert state.is_chance_node()
    assert state.chance_outcomes() == [(0, 0.5), (1, 0.5)]
    info = state.information_state_string(1)
    assert info.startswith("p1 | announce p0=")
    while not state.is_terminal():
        if state.is_chance_node():
            state.apply_action(0)
        elif state.is_simultaneous_node():
            state.apply_actions([state.legal_actions(p)[-1] for p in range(3)])
        else:
            state.apply_action(state.legal_actions()[0])
    assert len(state.returns()) == 3
    with pytest.raises(ParameterError, match="context"):
        openspiel_game("best_belief", context=None)
