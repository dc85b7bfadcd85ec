"""One text of an offer in transcripts (``mechgym.envs.engine.actions.describe_offer``),
used by every offer mechanism's ``describe_action``."""

from __future__ import annotations

from mechgym.envs.engine.actions import Offer, describe_offer
from mechgym.envs.mechanisms.best_belief import BBAnnouncement, BestBelief
from mechgym.envs.mechanisms.collusion_leveraging import CLAnnouncement, CollusionLeveraging
from mechgym.envs.mechanisms.knowledge_benchmark import KBAnnouncement, KnowledgeBenchmark

OFFER = Offer((0, 1, 3), (0, 25, 10))
TEXT = "offer: p1 gets {0} at 25, p2 gets {0,1} at 10 (REV 35)"


def test_offer_text() -> None:
    assert describe_offer(OFFER) == TEXT
    assert describe_offer(Offer.empty(3)) == "offer: nothing (REV 0)"


def test_players_priced_for_nothing_are_listed_only_when_asked() -> None:
    fined = Offer((0, 1, 0), (4, 25, 0))
    assert describe_offer(fined) == "offer: p1 gets {0} at 25 (REV 29)"
    assert describe_offer(fined, priced_empty=True) == (
        "offer: p0 gets {-} at 4, p1 gets {0} at 25 (REV 29)"
    )


def test_mechanisms_describe_their_offers_with_it() -> None:
    bb = BestBelief().describe_action(None, 0, BBAnnouncement(1, OFFER))
    kb = KnowledgeBenchmark().describe_action(None, 0, KBAnnouncement(1, OFFER))
    assert bb == "xi={0} " + TEXT
    assert kb == "S={0} " + TEXT
    cl = CollusionLeveraging().describe_action(
        None, 0, CLAnnouncement((0, 1), (0, 1, 0), Offer((2, 0, 0), (3, 0, 0)))
    )
    assert cl == "C=[0, 1] S=[p1:{0}] offer: p0 gets {1} at 3 (REV 3)"
