"""Named example contexts: the worked examples of the papers, as fixtures for tests and demos.

Use :func:`example` with a name from :data:`EXAMPLES`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

from mechgym.envs.engine.errors import ContextError, ContextFileError
from mechgym.envs.model.context import AuctionContext
from mechgym.envs.model.contextfile import parse_context

__all__ = ["EXAMPLES", "example"]


def chen_micali_2016() -> AuctionContext:
    """The worked example of seed 000, Section 3 (2 goods, 3 players, BB = 150).

    θ_0({0}) = 100, θ_1({1}) = 100, θ_2({0,1}) = 50. Player 0 knows v_1({1}) ≥ 25 and
    v_2({0,1}) ≥ 10; player 1 knows v_0({0}) ≥ 80 and v_2({1}) ≥ 20 (a wrong belief);
    player 2 knows v_0({0}) ≥ 80 and v_1({1}) ≥ 70. BB_0 = 25, BB_1 = 100, BB_2 = 150.
    """
    source = "mechgym.envs.model/example_files/chen-micali-2016.json"
    ref = resources.files("mechgym.envs.model").joinpath("example_files/chen-micali-2016.json")
    try:
        text = ref.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContextFileError(source, "file", f"packaged example missing ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContextFileError(
            source, f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}"
        ) from None
    return parse_context(data, source)


def _ausubel_milgrom(coalitions: list[list[int]], name: str) -> AuctionContext:
    # Hand check of VCG (Clarke pivot) on these numbers; masks {0}=1, {1}=2, {0,1}=3.
    # Truthful: welfare 20 (player 0 takes the pair) beats 10 (1 takes good 0, 2 takes
    #   good 1), so player 0 wins and pays 10 (best welfare without it) - 0 (others' welfare
    #   at the chosen allocation) = 10. REV = 10; utilities (10, 0, 0).
    # Collusion: 1 and 2 report 20 for their good (and the pair). Reported welfare 40 beats
    #   20, so 1 gets good 0 and 2 gets good 1. p_1 = 20 (without 1: 0 takes the pair, or 2
    #   takes good 1, worth 20) - 20 (2's report) = 0; p_2 = 0 likewise. REV = 0; true
    #   utilities (0, 5, 5): the coalition gains 10. One overbidder alone would pay 15 > 5.
    data: dict[str, Any] = {
        "name": name,
        "players": 3,
        "goods": 2,
        "values": [{"0,1": 20}, {"0": 5, "0,1": 5}, {"1": 5, "0,1": 5}],
        "beliefs": {
            "0": {"1": {"0": 5}, "2": {"1": 5}},
            "1": {"0": {"0,1": 15}, "2": {"1": 5, "0,1": 5}},
            "2": {"0": {"0,1": 15}, "1": {"0": 5, "0,1": 5}},
        },
        "coalitions": coalitions,
        "shared_reward": True,
    }
    return parse_context(data, f"example {name!r}")


def ausubel_milgrom() -> AuctionContext:
    """VCG's collapse under loser collusion (Ausubel–Milgrom), players 1 and 2 colluding.

    Two goods, three players (free disposal for the small bidders):
    θ_0({0,1}) = 20 (and 0 for a single good); θ_1({0}) = θ_1({0,1}) = 5;
    θ_2({1}) = θ_2({0,1}) = 5. Coalitions [[0], [1, 2]] with shared reward.

    Truthful VCG sells the pair to player 0 at price 10. If the losers 1 and 2 both
    overbid 20 for their good, VCG gives each its good at price 0: revenue 0, and the
    coalition gains 5 + 5.

    Beliefs (all correct): player 0 knows v_1({0}) ≥ 5 and v_2({1}) ≥ 5, so BB_0 = 10;
    players 1 and 2 know v_0({0,1}) ≥ 15 and each other's values exactly, so
    BB_1 = BB_2 = 15. The best-belief mechanism M1 still guarantees the independent player
    0's benchmark: E[REV] ≥ BB_0 / 2 − ε = 5 − ε.
    """
    return _ausubel_milgrom([[0], [1, 2]], "ausubel-milgrom")


def ausubel_milgrom_independent() -> AuctionContext:
    """:func:`ausubel_milgrom` with every player independent (same values and beliefs)."""
    return _ausubel_milgrom([[0], [1], [2]], "ausubel-milgrom-independent")


def three_players_two_states() -> Any:
    """A perfect-information context of seed 003: 3 players, 2 states.

    Types (θ_i(ω0), θ_i(ω1)) = (2, 0), (0, 3), (1, 1): welfare 3 in ω0 and 4 in ω1, so the
    unique subgame-perfect play of M5 proposes ω1 at prices K = (0, 3, 1).
    """
    from mechgym.envs.model.states import StateContext

    return StateContext(types=[[2, 0], [0, 3], [1, 1]], name="three-players-two-states")


def market_swap() -> Any:
    """A 2-player, 2-good market of seed 004 where trade pays: each owns what the other wants.

    Player 0 owns good 1 but values good 0 at 5 (good 1 at 1, both at 6); player 1 owns good 0
    but values good 1 at 5 (good 0 at 1, both at 6); k = 4, so values lie in (−8, 8). Swapping
    raises welfare from 2 to 10; the truthful proposal prices player 1 at 5 − 1 = 4.
    """
    from mechgym.envs.model.market import MarketContext

    values = [[0, 5, 1, 6], [0, 1, 5, 6]]
    return MarketContext(values=values, endowment=(0b10, 0b01), k=4, name="market-swap")


EXAMPLES: dict[str, Callable[[], Any]] = {
    "chen-micali-2016": chen_micali_2016,
    "ausubel-milgrom": ausubel_milgrom,
    "ausubel-milgrom-independent": ausubel_milgrom_independent,
    "three-players-two-states": three_players_two_states,
    "market-swap": market_swap,
}
"""Example name -> function building a fresh context."""

DEFAULT_EXAMPLE = {
    "auction": "chen-micali-2016",
    "states": "three-players-two-states",
    "market": "market-swap",
}
"""The example used when a command names no context, by context kind."""


def example(name: str) -> Any:
    """Return the named example context.

    Raises
    ------
    ContextError
        If ``name`` is not in :data:`EXAMPLES`; the message lists the available names.
    """
    if name not in EXAMPLES:
        raise ContextError(
            "example", f"unknown example {name!r}; available: {', '.join(sorted(EXAMPLES))}"
        )
    return EXAMPLES[name]()
