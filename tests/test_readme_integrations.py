"""The README's "Integrations" snippets run as written (in this interpreter, each with fresh
globals, so that the libraries are imported once)."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# the library each snippet needs, in the order of the section
NEEDS = ["pettingzoo", "sb3_contrib", "torchrl", "benchmarl", "tianshou", "pyspiel", "ray.rllib"]


def snippets() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Integrations\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_one_snippet_per_library() -> None:
    assert len(snippets()) == len(NEEDS)


@pytest.mark.filterwarnings("ignore:PettingZoo in TorchRL is tested:UserWarning")
@pytest.mark.parametrize("k", range(len(NEEDS)), ids=NEEDS)
def test_snippet_runs(k: int) -> None:
    pytest.importorskip("supersuit" if NEEDS[k] == "sb3_contrib" else NEEDS[k])
    pytest.importorskip(NEEDS[k])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippets()[k], f"README snippet {k}", "exec"), {"__name__": "__main__"})
    assert out.getvalue().strip()  # each snippet prints its result
