"""The batched random sampler: both of its paths draw the same legal actions."""

from __future__ import annotations

import numpy as np
import pytest
from mechgym.envs.engine import batched
from mechgym.envs.engine.spaces import ActionLayout


@pytest.mark.parametrize("trial", range(12))
def test_row_walk_and_position_walk_agree(trial: int, monkeypatch) -> None:
    layout = ActionLayout([("a", 2), ("b", 5), ("c", 1), ("d", 7), ("e", 3)])
    rng = np.random.default_rng(trial)
    rows = batched._ROWS_BY_POSITION + 7
    masks = rng.random((rows, layout.mask_size)) < rng.random()
    if trial % 3 == 0:  # a field no row reads
        masks[:, layout.offsets[3] + 1 : layout.offsets[4]] = False
    u = rng.random((rows, len(layout)))
    by_position = batched._sample_rows(layout, masks, u)
    monkeypatch.setattr(batched, "_ROWS_BY_POSITION", 10**9)
    by_row = batched._sample_rows(layout, masks, u)
    assert np.array_equal(by_position, by_row)
    legal = (by_row < layout.sizes) & (layout.sizes > 1)  # one-value fields are not drawn
    pos = layout.offsets[:-1] + np.minimum(by_row, layout.sizes - 1)
    assert masks[np.arange(rows)[:, None], pos][legal].all()
