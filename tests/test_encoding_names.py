"""One name for the full layout encoding: ``"multidiscrete"`` everywhere an encoding is named,
``"raw"`` accepted as its older alias."""

from __future__ import annotations

import pytest
from mechgym.envs.batched_api import BatchedEnv
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.spaces import ENCODING_ALIASES, canonical_encoding
from mechgym.training.converge import ConvergeConfig
from mechgym.training.encodings import ENCODINGS
from mechgym.training.learner_env import LearnerEnv
from mechgym.training.sidecar import differences


def test_alias_maps_to_the_one_name() -> None:
    assert canonical_encoding("raw") == "multidiscrete"
    assert canonical_encoding("menu") == "menu" and canonical_encoding(3) == 3
    assert set(ENCODING_ALIASES.values()) <= set(ENCODINGS)
    assert "raw" not in ENCODINGS


def test_every_entry_point_takes_the_alias() -> None:
    old, new = LearnerEnv("vcg", 0, encoding="raw"), LearnerEnv("vcg", 0, encoding="multidiscrete")
    assert old.encoding.name == new.encoding.name == "multidiscrete"
    assert old.action_space == new.action_space
    assert BatchedEnv("vcg", 4, action_encoding="raw", seed=0).layout.sizes is not None
    assert ConvergeConfig(encoding="raw").encoding == "multidiscrete"
    # a model saved under the older name still matches the env it was trained in
    assert differences({**old.meta(), "encoding": "raw"}, new.meta()) == []
    with pytest.raises(ParameterError, match="encoding"):
        LearnerEnv("vcg", 0, encoding="layout")
