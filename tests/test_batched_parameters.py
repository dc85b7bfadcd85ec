"""A batched path refuses a constructor parameter it does not implement, with a typed error
naming the mechanism and the parameter, wherever batched rules are built (they are built in
one place, :func:`~mechgym.envs.engine.batched.batched_rules`)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
from mechgym.envs.engine.batched import batched_rules
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.game import EnvSpec, Examples
from mechgym.envs.mechanisms.best_belief import BestBelief, BestBeliefRules
from mechgym.envs.mechanisms.second_price_bundle import SecondPriceBundle
from mechgym.envs.model.examples import example

SPEC = EnvSpec(3, 2, 100, 100)


class _BestBeliefPlus(BestBelief):
    """M1 with a constant its batched rules know nothing of."""

    parameter_examples: ClassVar[Examples] = {**BestBelief.parameter_examples, "bonus": (2,)}

    def __init__(self, bonus: int = 0, **kw: Any) -> None:
        super().__init__(**kw)
        self.bonus = bonus


def test_an_unimplemented_parameter_is_refused_by_name() -> None:
    assert batched_rules(_BestBeliefPlus(), SPEC) is not None  # at its default: fine
    with pytest.raises(ParameterError, match=r"best_belief.*does not implement bonus") as err:
        batched_rules(_BestBeliefPlus(bonus=2), SPEC)
    assert err.value.name == "bonus"


def test_implemented_parameters_and_explicit_defaults_pass() -> None:
    assert BestBelief(eps="1/10", reward_budget="absolute").given_arguments() == {}
    for mech in (
        BestBelief(eps="1/3", reward_budget="fraction"),
        SecondPriceBundle(mixture="knowledge_benchmark", c="2", eps="1/5"),
    ):
        batched_rules(mech, SPEC)


def test_a_mixture_checks_its_inner_mechanism() -> None:
    mech = SecondPriceBundle(mixture=_BestBeliefPlus(bonus=2))
    with pytest.raises(ParameterError, match="bonus"):
        batched_rules(mech, SPEC)


def test_a_plain_auction_refuses_the_mixture_constants() -> None:
    with pytest.raises(ParameterError, match="mixture"):
        SecondPriceBundle(c="1/3")
    with pytest.raises(ParameterError, match="mixture"):
        SecondPriceBundle(eps="1/5")


# -- every surface refuses, when the batched rules stop implementing reward_budget ------------


@pytest.fixture
def without_fraction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BestBeliefRules, "implements", frozenset({"eps", "reserve"}))


def test_evaluate_batched_refuses(without_fraction: None) -> None:
    from mechgym.batched_eval import batched_reports

    mech = BestBelief(reward_budget="fraction")
    with pytest.raises(ParameterError, match="reward_budget"):
        batched_reports(
            mech, example("chen-micali-2016"), "predicted", 10, 1, np.random.default_rng(0)
        )


def test_cli_evaluate_batched_refuses_in_one_line(without_fraction: None) -> None:
    from typer.testing import CliRunner

    from mechgym.cli import app

    args = ["evaluate", "best_belief", "--example", "chen-micali-2016"]
    args += ["--param", "reward_budget=fraction", "--batched"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0
    assert "reward_budget" in res.output and "does not implement" in res.output
    assert "Traceback" not in res.output


def test_batched_env_and_vec_learner_env_refuse(without_fraction: None) -> None:
    from mechgym.envs.batched_api import BatchedEnv
    from mechgym.training.vec_env import VecLearnerEnv

    with pytest.raises(ParameterError, match="reward_budget"):
        BatchedEnv("best_belief", 4, context="chen-micali-2016", reward_budget="fraction")
    with pytest.raises(ParameterError, match="reward_budget"):
        VecLearnerEnv(
            "best_belief",
            0,
            n_envs=4,
            context=example("chen-micali-2016"),
            constants={"reward_budget": "fraction"},
        )


def test_torchrl_env_refuses(without_fraction: None) -> None:
    pytest.importorskip("torchrl")
    from mechgym.integrations.torchrl_batched import BatchedMechanismEnv

    with pytest.raises(ParameterError, match="reward_budget"):
        BatchedMechanismEnv(
            "best_belief",
            4,
            context="chen-micali-2016",
            constants={"reward_budget": "fraction"},
        )
