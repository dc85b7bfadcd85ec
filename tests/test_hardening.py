"""Reproducers of the fuzzing campaign: each failed before and is refused with a typed error,
before anything changes, or now works."""

from __future__ import annotations

import copy
import json
import os
import pickle
from collections import Counter
from fractions import Fraction

import numpy as np
import pettingzoo
import pytest
from mechgym.envs.engine.actions import Offer
from mechgym.envs.engine.errors import (
    ContextError,
    ContextFileError,
    MalformedAnnouncementError,
    ParameterError,
)
from mechgym.envs.engine.game import Chance, sample_chance, uniform_below
from mechgym.envs.model.contextfile import load_context
from mechgym.envs.model.generators import make_generator
from mechgym.envs.model.limits import MAX_AMOUNT, MAX_PLAYERS
from mechgym.envs.pettingzoo.registry import available, entry
from test_fuzz_actions import fingerprint
from typer.testing import CliRunner

from mechgym.cli import app


def raw(name: str, **kw):
    env = entry(name).load_env_module().raw_env(**kw)
    env.reset(seed=0)
    return env


def refused(env, action, error=MalformedAnnouncementError) -> None:
    before = fingerprint(env)
    with pytest.raises(error):
        env.step(action)
    assert fingerprint(env) == before


# -- huge integers ------------------------------------------------------------------------


def test_best_belief_huge_prices_refused_and_observable() -> None:
    from mechgym.envs.mechanisms.best_belief import BBAnnouncement

    env = raw("best_belief", context="chen-micali-2016", seed=0)
    for i in range(3):
        alloc, prices = [0, 0, 0], [0, 0, 0]
        j = (i + 1) % 3
        alloc[j], prices[j] = 1, 10**400
        refused(env, BBAnnouncement(0, Offer(tuple(alloc), tuple(prices))))
        prices[j] = MAX_AMOUNT  # the largest amount is accepted and observable
        env.step(BBAnnouncement(0, Offer(tuple(alloc), tuple(prices))))
        env.observe(env.agent_selection)


def test_vcg_reports_beyond_int64_refused_at_the_first_report() -> None:
    env = raw("vcg", context="ausubel-milgrom", seed=0)
    refused(env, (0, 0, 0, 2**62))
    # at the limit the solver still answers exactly
    for r in [(0, 0, 0, MAX_AMOUNT), (0, 5, 0, 5), (0, 0, 5, MAX_AMOUNT)]:
        env.step(r)
    assert env.outcome is not None


def test_second_price_bundle_huge_bid_refused() -> None:
    from mechgym.envs.mechanisms.second_price_bundle import BundleBid

    env = raw("second_price_bundle", seed=0)
    for _ in range(env.spec.n - 1):
        refused(env, BundleBid(10**400, 1))
        env.step(BundleBid(MAX_AMOUNT, 1))
    refused(env, BundleBid(10**400, 1))
    env.step(BundleBid(1, 1))
    assert env.outcome is not None
    assert all(np.isfinite(list(env.rewards.values())))


def test_perfect_revenue_market_and_foil_huge_values_refused() -> None:
    from mechgym.envs.mechanisms.budget_balanced_market import MarketProposal
    from mechgym.envs.mechanisms.foils import TypeReport
    from mechgym.envs.mechanisms.perfect_revenue import PRProposal

    env = raw("perfect_revenue", seed=0)
    n = env.spec.n
    refused(env, PRProposal(0, (10**400,) * n))
    env = raw("budget_balanced_market", seed=0)
    n = env.spec.n
    refused(env, MarketProposal((0,) * n, (10**400, -(10**400)) + (0,) * (n - 2)))
    refused(env, MarketProposal((0,) * n, (Fraction(1, 10**400),) + (0,) * (n - 1)))
    env = raw("hope_for_the_best", seed=0)
    ctx = env.context
    refused(env, TypeReport(tuple((10**400,) * ctx.num_states for _ in range(ctx.n))))


@pytest.mark.parametrize(
    "offer",
    [
        Offer(5, (0, 0, 0)),
        Offer(None, (0, 0, 0)),
        Offer((0, 0, 0), None),
        Offer(iter([0, 0, 0]), (0, 0, 0)),
        Offer((0, 1, 0), (0, 2.5, 0)),
        Offer((0, 1, 0), "abc"),
    ],
)
def test_malformed_offer_fields_get_typed_errors(offer: Offer) -> None:
    from mechgym.envs.mechanisms.best_belief import BBAnnouncement

    env = raw("best_belief", context="chen-micali-2016", seed=0)
    refused(env, BBAnnouncement(0, offer))


# -- chance -------------------------------------------------------------------------------


def test_uniform_below_keeps_the_int64_stream_and_handles_big_bounds() -> None:
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    assert [uniform_below(1000, a) for _ in range(20)] == [int(b.integers(1000)) for _ in range(20)]
    rng = np.random.default_rng(0)
    big = 3 * 2**100 + 7
    draws = [uniform_below(big, rng) for _ in range(4000)]
    assert all(0 <= x < big for x in draws)
    # each third of the range gets about a third of the draws
    thirds = Counter(3 * x // big for x in draws)
    assert all(abs(thirds[k] - 4000 / 3) < 200 for k in range(3))


def test_chance_with_a_tiny_probability_is_exact() -> None:
    eps = Fraction(1, 10**19)  # beyond int64
    node = Chance("c", ("rare", "common"), (eps, 1 - eps))
    rng = np.random.default_rng(0)
    assert {sample_chance(node, rng) for _ in range(200)} == {1}
    node = Chance("c", ("a", "b"), (Fraction(10**19 // 2, 10**19), Fraction(1, 2)))
    counts = Counter(sample_chance(node, rng) for _ in range(2000))
    assert abs(counts[0] - 1000) < 120


def test_tiny_eps_plays_and_eps_beyond_the_limit_is_refused() -> None:
    env = raw("budget_balanced_market", seed=0, eps="1/10000000000000000000")
    while env.agents:
        a = env.agent_selection
        if env.terminations[a]:
            env.step(None)
        else:
            env.step(env.action_space(a).sample(env.observe(a)["action_mask"]))
    with pytest.raises(ParameterError, match="10\\*\\*30"):
        raw("budget_balanced_market", eps="1/" + "1" + "0" * 31)


# -- limits of files, generators, env arguments ------------------------------------------------


@pytest.mark.parametrize("cap", [2**70, float("nan"), 1.5, 0, -3, "x", True])
def test_env_caps_are_checked(cap: object) -> None:
    for key in ("value_cap", "price_cap"):
        with pytest.raises(ParameterError, match=key):
            raw("best_belief", **{key: cap})


def test_large_caps_give_no_giant_masks() -> None:
    with pytest.raises(ParameterError, match="action mask"):
        raw("normal_form", generator="uniform:n=3,m=4,cap=100000000")
    with pytest.raises(ParameterError, match="action mask"):
        raw("best_belief", value_cap=10**8)


def test_generator_limits() -> None:
    with pytest.raises(ContextError, match=r"generator\.n|^n:"):
        make_generator("uniform:n=10000,m=1")
    with pytest.raises(ContextError, match=r"generator\.cap"):
        make_generator("uniform:n=3,m=2,cap=9223372036854775808")
    with pytest.raises(ContextError, match=r"generator\.n|^n:"):
        make_generator(f"states:n={MAX_PLAYERS + 1},m=2")
    with pytest.raises(ContextError, match=r"generator\.n|^n:"):
        make_generator(f"market:n={MAX_PLAYERS + 1},m=2")
    make_generator(f"uniform:n={MAX_PLAYERS},m=1").sample(np.random.default_rng(0))


def test_context_values_beyond_2_53_refused() -> None:
    from mechgym.envs.model.context import AuctionContext

    with pytest.raises(ContextError, match="2\\*\\*53"):
        AuctionContext(values=[[0, 2**60], [0, 1]])
    with pytest.raises(ContextError, match="2\\*\\*53"):
        AuctionContext(values=np.array([[0, 2.0**70], [0, 1]]))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_context_file_must_be_a_small_regular_file(tmp_path) -> None:
    with pytest.raises(ContextFileError, match="regular"):
        load_context("/dev/zero")
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(ContextFileError, match="regular"):
        load_context(fifo)
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(17 << 20)
    with pytest.raises(ContextFileError, match="16 MiB"):
        load_context(big)


def test_states_file_with_too_many_players_refused(tmp_path) -> None:
    path = tmp_path / "s.json"
    n = 1000
    path.write_text(
        json.dumps({"kind": "states", "players": n, "states": 2, "types": [[1, 0]] * n})
    )
    with pytest.raises(ContextFileError, match="players"):
        load_context(path)


def test_cli_tiny_eps_plays() -> None:
    res = CliRunner().invoke(
        app, ["play", "budget_balanced_market", "--param", "eps=1/10000000000000000000"]
    )
    assert res.exit_code == 0, res.output
    assert "revenue" in res.output


@pytest.mark.parametrize(
    "args",
    [
        ["play", "best_belief", "--seed", "-1"],
        ["evaluate", "best_belief", "--seed", "-1", "--exact"],
        ["evaluate", "best_belief", "--generate", "uniform:n=3,m=2,cap=9223372036854775808"],
        ["play", "best_belief", "--param", "value_cap=1.5"],
        ["play", "best_belief", "--param", "value_cap=nan"],
        ["play", "best_belief", "--param", f"price_cap={2**70}"],
        ["play", "best_belief", "--context", "/dev/zero"],
        ["evaluate", "nope"],
        ["evaluate", "best_belief", "--generate", "uniform:n=3,m=2", "--contexts", "100001"],
        ["evaluate", "best_belief", "--episodes", "10000001"],
        # the batched path builds masks per episode: huge caps are refused there too
        ["evaluate", "normal_form", "--generate", "uniform:n=3,m=4,cap=100000000", "--batched"],
    ],
)
def test_cli_bad_values_one_line(args: list[str]) -> None:
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    text = res.output.strip()
    assert text.startswith("error:") and "\n" not in text, text


# -- pickling ---------------------------------------------------------------------------


def _play_some(env, k: int) -> None:
    for _ in range(k):
        a = env.agent_selection
        if env.terminations[a] or env.truncations[a]:
            env.step(None)
        else:
            env.step(env.action_space(a).sample(env.observe(a)["action_mask"]))


def _finish(env) -> list:
    trace = []
    while env.agents:
        a = env.agent_selection
        obs = env.observe(a)
        trace.append((a, obs["observation"].tobytes()))
        if env.terminations[a] or env.truncations[a]:
            env.step(None)
        else:
            env.step(env.action_space(a).sample(obs["action_mask"]))
    return trace


@pytest.mark.parametrize("name", [e.name for e in available()])
@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_envs_pickle_and_continue_identically(name: str, how: str) -> None:
    e = entry(name)
    envs = [pettingzoo.make("aec", e.env_id, seed=0), e.load_env_module().env(seed=0)]
    for env in envs:
        env.reset(seed=0)
        for k, a in enumerate(env.possible_agents):
            env.action_space(a).seed(k)
        _play_some(env, 1)
        clone = pickle.loads(pickle.dumps(env)) if how == "pickle" else copy.deepcopy(env)
        for k, a in enumerate(env.possible_agents):
            env.action_space(a).seed(10 + k)
            clone.action_space(a).seed(10 + k)
        assert _finish(clone) == _finish(env)
        assert clone.unwrapped.transcript() == env.unwrapped.transcript()
    if e.mechanism_class().simultaneous_only:
        par = e.load_env_module().parallel_env(seed=0)
        obs, _ = par.reset(seed=0)
        for k, a in enumerate(par.possible_agents):
            par.action_space(a).seed(k)
        clone = None
        while par.agents:
            acts = {a: par.action_space(a).sample(obs[a]["action_mask"]) for a in par.agents}
            if clone is None:  # after the first step: mid-episode, or at its end
                obs, *_ = par.step(acts)
                clone = pickle.loads(pickle.dumps(par)) if how == "pickle" else copy.deepcopy(par)
                continue
            out1, out2 = par.step(acts), clone.step(acts)
            assert out1[1:] == out2[1:]
            assert all(
                np.array_equal(out1[0][a]["observation"], out2[0][a]["observation"])
                for a in out1[0]
            )
            obs = out1[0]
        assert clone.agents == par.agents


def test_bad_reset_changes_nothing() -> None:
    from mechgym.envs.model.context import AuctionContext

    env = raw("best_belief", seed=0)
    agent = env.agent_selection
    env.step(env.action_space(agent).sample(env.observe(agent)["action_mask"]))
    before = fingerprint(env)
    other = AuctionContext(values=[[0, 1], [0, 2]])  # a context of another size
    for bad in ("nope", other):
        with pytest.raises(ContextError, match=r"options\.context"):
            env.reset(seed=5, options={"context": bad})
        assert fingerprint(env) == before
    with pytest.raises(ParameterError):
        env.reset(seed=-1)
    assert fingerprint(env) == before


def test_a_failed_resolve_puts_the_env_back(monkeypatch) -> None:
    """Validation catches every known input problem; should resolving a node still fail (a
    solver's limit), the AEC env restores state, buffer, rewards, history and chance."""
    from mechgym.envs.engine.errors import SolverError

    env = raw("vcg", context="ausubel-milgrom", seed=0)
    env.step((0, 0, 0, 10))
    env.step((0, 5, 0, 5))
    before = fingerprint(env)

    def broken(state, actions):
        raise SolverError("too large")

    monkeypatch.setattr(env.mechanism, "resolve", broken)
    with pytest.raises(SolverError):
        env.step((0, 0, 5, 10))
    assert fingerprint(env) == before
    monkeypatch.undo()
    env.step((0, 0, 5, 10))
    assert env.outcome is not None
