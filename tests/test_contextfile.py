"""Context files (JSON/YAML) and the named examples."""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mechgym.envs.engine.errors import ContextError, ContextFileError
from mechgym.envs.model.context import AuctionContext
from mechgym.envs.model.contextfile import (
    LOADERS,
    context_to_dict,
    load_context,
    loads_context,
    parse_context,
    save_context,
)
from mechgym.envs.model.examples import EXAMPLES, example
from mechgym.envs.model.generators import GENERATORS

WORKED = {
    "players": 3,
    "goods": 2,
    "values": [{"0": 100}, {"1": 100}, {"0,1": 50}],
    "beliefs": {
        "0": {"1": {"1": 25}, "2": {"0,1": 10}},
        "1": {"0": {"0": 80}, "2": {"1": 20}},
        "2": {"0": {"0": 80}, "1": {"1": 70}},
    },
    "coalitions": [[0], [1], [2]],
}


def same(a: AuctionContext, b: AuctionContext) -> bool:
    return (
        np.array_equal(a.values, b.values)
        and np.array_equal(a.lower, b.lower)
        and a.coalitions == b.coalitions
        and a.shared_reward == b.shared_reward
        and a.name == b.name
    )


def worked(**changes: object) -> dict:
    data = copy.deepcopy(WORKED)
    data.update(changes)
    return data


# -- parsing the worked example ------------------------------------------------------------------


def test_worked_example_arrays() -> None:
    ctx = parse_context(WORKED)
    assert ctx.n == 3 and ctx.m == 2
    expected_values = np.array([[0, 100, 0, 0], [0, 0, 100, 0], [0, 0, 0, 50]])
    assert np.array_equal(ctx.values, expected_values)
    expected_lower = np.zeros((3, 3, 4), dtype=np.int64)
    expected_lower[[0, 1, 2], [0, 1, 2]] = expected_values
    expected_lower[0, 1, 0b10] = 25
    expected_lower[0, 2, 0b11] = 10
    expected_lower[1, 0, 0b01] = 80
    expected_lower[1, 2, 0b10] = 20
    expected_lower[2, 0, 0b01] = 80
    expected_lower[2, 1, 0b10] = 70
    assert np.array_equal(ctx.lower, expected_lower)
    assert ctx.coalitions == ((0,), (1,), (2,))
    assert ctx.shared_reward is True
    assert ctx.name == ""


def test_optional_keys_and_defaults() -> None:
    data = worked(name="x", shared_reward=False, kind="auction")
    del data["coalitions"]
    del data["beliefs"]
    ctx = parse_context(data)
    assert ctx.name == "x" and ctx.shared_reward is False
    assert ctx.coalitions == ((0,), (1,), (2,))
    assert np.all(ctx.lower[0, 1] == 0)


def test_own_belief_may_be_given_when_it_agrees() -> None:
    data = worked()
    data["beliefs"]["0"]["0"] = {"0": 100}
    assert same(parse_context(data), parse_context(WORKED))


def test_yaml_int_keys_and_integral_floats() -> None:
    data = worked(values=[{0: 100.0}, {1: 100}, {"0,1": 50}])
    assert same(parse_context(data), parse_context(WORKED))


# -- round trips ----------------------------------------------------------------------------------


def test_round_trip_dict_json_yaml(tmp_path: Path) -> None:
    ctx = parse_context(worked(name="w", coalitions=[[0, 2], [1]], shared_reward=False))
    d = context_to_dict(ctx)
    assert d["kind"] == "auction"
    assert "0" not in d["beliefs"]["0"]  # own beliefs are not written
    assert same(parse_context(d), ctx)
    assert same(parse_context(json.loads(json.dumps(d))), ctx)
    for name in ("c.json", "c.yaml", "c.yml"):
        path = save_context(ctx, tmp_path / name)
        assert same(load_context(path), ctx)


def test_only_nonzero_entries_written() -> None:
    d = context_to_dict(parse_context(WORKED))
    assert d["values"] == WORKED["values"]
    assert d["beliefs"] == WORKED["beliefs"]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    family=st.sampled_from(sorted(GENERATORS)),
    n=st.integers(2, 4),
    m=st.integers(1, 4),
    belief=st.sampled_from(["none", "exact", "noisy", "wrong"]),
    coalitions=st.sampled_from(["independent", "random", "pair", "grand"]),
)
def test_round_trip_generated(
    seed: int, family: str, n: int, m: int, belief: str, coalitions: str
) -> None:
    gen = GENERATORS[family](n, m, belief=belief, coalitions=coalitions)
    ctx = gen.sample(np.random.default_rng(seed))
    d = context_to_dict(ctx)
    assert same(parse_context(json.loads(json.dumps(d))), ctx)


def test_yaml_round_trip_generated(tmp_path: Path) -> None:
    ctx = GENERATORS["uniform"](3, 3, belief="wrong", coalitions="pair").sample(
        np.random.default_rng(7)
    )
    assert same(load_context(save_context(ctx, tmp_path / "g.yaml")), ctx)


def test_handwritten_yaml(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(
        "players: 3\n"
        "goods: 2\n"
        "values:\n"
        "  - {0: 100}\n"
        "  - {1: 100}\n"
        "  - {'0,1': 50}\n"
        "beliefs:\n"
        "  0: {1: {1: 25}, 2: {'0,1': 10}}\n"
        "  1: {0: {0: 80}, 2: {1: 20}}\n"
        "  2: {0: {0: 80}, 1: {1: 70}}\n"
        "coalitions: [[0], [1], [2]]\n"
    )
    assert same(load_context(path), parse_context(WORKED))


# -- malformed input ------------------------------------------------------------------------------


def bad(data: object, *fragments: str) -> str:
    with pytest.raises(ContextFileError) as info:
        parse_context(data, "src.json")
    msg = str(info.value)
    assert msg.startswith("src.json: ")
    for f in fragments:
        assert f in msg, msg
    return msg


def test_players_errors() -> None:
    bad(worked(players=1), "players: must be an integer >= 2")
    bad(worked(players="3"), "players: must be an integer >= 2")
    bad(worked(players=True), "players: must be an integer >= 2")
    bad(worked(players=5000), "players: must be at most")


def test_goods_errors() -> None:
    bad(worked(goods=0), "goods: must be an integer >= 1")
    bad(worked(goods=40), "goods: must be at most 12")


def test_missing_and_unknown_keys() -> None:
    data = worked()
    del data["values"]
    bad(data, "values: is required")
    bad(worked(shared_rewards=True), "shared_rewards: unknown key", "did you mean 'shared_reward'")
    bad(worked(kind="bogus"), "kind: unknown kind 'bogus'", "auction")
    bad([1, 2], "(top level): must be an object")


def test_value_errors() -> None:
    bad(worked(values=[{}, {}]), "values: has 2 entries but players is 3")
    bad(worked(values={"0": {}}), "values: must be a list")
    bad(worked(values=[{"0": 1}, {"0,3": 5}, {}]), 'values[1]["0,3"]: good 3', "outside 0..1")
    bad(worked(values=[{}, {}, {"0,1": "abc"}]), 'values[2]["0,1"]', "non-integer value 'abc'")
    bad(worked(values=[{}, {}, {"0,1": 1.5}]), 'values[2]["0,1"]', "non-integer value 1.5")
    bad(worked(values=[{}, {}, {"0,1": None}]), 'values[2]["0,1"]', "is missing (null)")
    bad(worked(values=[{}, {"1": -4}, {}]), 'values[1]["1"]', "negative value -4")
    bad(worked(values=[{}, {"1": 2**60}, {}]), 'values[1]["1"]', "too large")
    bad(worked(values=[{}, [], {}]), "values[1]: must be an object")
    bad(worked(values=[{"0,1": 1, "1,0": 2}, {}, {}]), 'values[0]["1,0"]', 'same bundle as "0,1"')
    bad(worked(values=[{"-": 3}, {}, {}]), 'values[0]["-"]', "empty bundle must be worth 0")
    bad(worked(values=[{"x": 3}, {}, {}]), 'values[0]["x"]', "comma-separated integers")
    bad(worked(values=[{"²": 3}, {}, {}]), 'values[0]["²"]', "comma-separated integers")
    bad(worked(values=[{"0,0": 3}, {}, {}]), 'values[0]["0,0"]', "listed twice")
    bad(worked(values=[{True: 3}, {}, {}]), "values[0]", "is not a bundle")


def test_belief_errors() -> None:
    b = WORKED["beliefs"]
    bad(worked(beliefs={"0": {"5": {"0": 1}}}), 'beliefs["0"]["5"]: player 5 is outside 0..2')
    bad(worked(beliefs={"7": {}}), 'beliefs["7"]: player 7 is outside 0..2')
    bad(worked(beliefs={"x": {}}), "beliefs[\"x\"]: 'x' is not a player index")
    bad(worked(beliefs={"0": {"-1": {}}}), 'beliefs["0"]["-1"]: \'-1\' is not a player index')
    bad(worked(beliefs=[b]), "beliefs: must be an object keyed by player")
    bad(worked(beliefs={"0": [1]}), 'beliefs["0"]: must be an object')
    bad(worked(beliefs={"0": {"1": 5}}), 'beliefs["0"]["1"]: must be an object mapping bundles')
    bad(
        worked(beliefs={"0": {"1": {"1": "a"}}}),
        'beliefs["0"]["1"]["1"]',
        "non-integer lower bound",
    )
    bad(worked(beliefs={"0": {"1": {"9": 1}}}), 'beliefs["0"]["1"]["9"]', "good 9")
    bad(worked(beliefs={"0": {"0": {"0": 90}}}), 'beliefs["0"]["0"]', "belief about itself")
    bad(worked(beliefs={"0": {"0": {}}}), 'beliefs["0"]["0"]', "belief about itself")
    bad(worked(beliefs={"0": {}, 0: {}}), 'beliefs["0"]', "listed twice")


def test_other_field_errors() -> None:
    bad(worked(coalitions=[[0, 1]]), "coalitions: players [2] are in no coalition")
    bad(worked(coalitions=[[0, 1], [1, 2]]), "coalitions[1]: player 1 is in two coalitions")
    bad(worked(coalitions=[[0], [1], [5]]), "coalitions[2]: player 5 is outside 0..2")
    bad(worked(coalitions=[[0], 1, [2]]), "coalitions[1]: must be a list")
    bad(worked(coalitions=[["0"], [1], [2]]), "coalitions[0]", "not a player index")
    bad(worked(coalitions="all"), "coalitions: must be a list")
    bad(worked(shared_reward="yes"), "shared_reward: must be true or false")
    bad(worked(name=3), "name: must be a string")


def test_context_error_from_construction_gets_source(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(data: object) -> AuctionContext:
        raise ContextError("values[0]", "raised inside AuctionContext")

    monkeypatch.setitem(LOADERS, "auction", boom)
    msg = bad(WORKED, "values[0]: raised inside AuctionContext")
    assert msg == "src.json: values[0]: raised inside AuctionContext"


def test_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ContextFileError, match="no such file") as info:
        load_context(missing)
    assert str(missing) in str(info.value)

    broken = tmp_path / "broken.json"
    broken.write_text('{"players": 3,\n "goods": 2\n "values": []}')
    with pytest.raises(ContextFileError, match=r"line 3, column 2: invalid JSON") as info:
        load_context(broken)
    assert str(broken) in str(info.value)

    dup = tmp_path / "dup.json"
    dup.write_text('{"players": 3, "players": 4}')
    with pytest.raises(ContextFileError, match='key "players": appears twice'):
        load_context(dup)

    odd = tmp_path / "ctx.txt"
    odd.write_text("{}")
    with pytest.raises(ContextFileError, match=r"unknown suffix '\.txt'"):
        load_context(odd)

    with pytest.raises(ContextFileError, match="is a directory"):
        load_context(tmp_path)

    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ContextFileError, match="not UTF-8"):
        load_context(binary)

    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("players: 3\ngoods: [2\nvalues: 1\n")
    with pytest.raises(ContextFileError, match=r"line \d+, column \d+: invalid YAML"):
        load_context(bad_yaml)

    dup_yaml = tmp_path / "dup.yml"
    dup_yaml.write_text("players: 3\ngoods: 2\nplayers: 4\n")
    with pytest.raises(ContextFileError, match="line 3, column 1: invalid YAML: duplicate key"):
        load_context(dup_yaml)

    empty_yaml = tmp_path / "empty.yaml"
    empty_yaml.write_text("")
    with pytest.raises(ContextFileError, match=r"\(top level\): must be an object"):
        load_context(empty_yaml)

    with pytest.raises(ContextFileError, match=r"wrong\.json: values"):
        loads_context(json.dumps(worked(values=[])), "wrong.json")


def test_errors_are_context_errors() -> None:
    # The CLI may catch ContextError (and ValueError) for every bad context.
    with pytest.raises(ContextError):
        parse_context({"players": 2})
    with pytest.raises(ValueError):
        parse_context({"players": 2})


json_leaf = st.none() | st.booleans() | st.integers(-5, 200) | st.floats() | st.text(max_size=4)
json_any = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["0", "1", "2", "0,1", "-", "x", "9"]), inner, max_size=3)
    ),
    max_leaves=8,
)
keys = st.sampled_from([*WORKED, "name", "kind", "shared_reward", "typo"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(replace=st.dictionaries(keys, json_any, max_size=3), drop=st.sets(keys, max_size=2))
def test_fuzz_only_context_file_errors(replace: dict, drop: set) -> None:
    data = worked(**replace)
    for key in drop:
        data.pop(key, None)
    try:
        ctx = parse_context(data, "fuzz")
    except ContextFileError as exc:
        assert str(exc).startswith("fuzz: ")
    else:
        assert isinstance(ctx, AuctionContext)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=40))
def test_fuzz_text(text: str) -> None:
    for fmt in ("json", "yaml"):
        with contextlib.suppress(ContextFileError):
            loads_context(text, "t", fmt)


# -- examples -------------------------------------------------------------------------------------


def test_examples_load() -> None:
    from mechgym.envs.model.examples import DEFAULT_EXAMPLE

    for name in EXAMPLES:
        ctx = example(name)
        assert ctx.kind in DEFAULT_EXAMPLE
        assert ctx.name == name
        # every example survives a round trip through the file format of its kind
        again = parse_context(context_to_dict(ctx))
        assert type(again) is type(ctx) and again.n == ctx.n and again.m == ctx.m
    assert isinstance(example("chen-micali-2016"), AuctionContext)
    with pytest.raises(ContextError, match="chen-micali-2016"):
        example("nope")


def test_chen_micali_example() -> None:
    ctx = example("chen-micali-2016")
    assert ctx.values[0, 0b01] == 100
    assert ctx.values[1, 0b10] == 100
    assert ctx.values[2, 0b11] == 50
    assert same(ctx, parse_context(worked(name="chen-micali-2016")))
    assert not ctx.beliefs_correct()  # player 1's belief about player 2 is wrong


def test_packaged_file_is_the_worked_example() -> None:
    path = (
        Path(__file__).resolve().parents[1]
        / "envs"
        / "model"
        / "example_files"
        / "chen-micali-2016.json"
    )
    assert json.loads(path.read_text()) == worked(name="chen-micali-2016")


def _vcg(values: np.ndarray) -> tuple[tuple[int, ...], list[int]]:
    """Brute-force VCG with Clarke pivot: (bundle per player, prices)."""
    n, size = values.shape
    m = size.bit_length() - 1
    allocs = []
    for owners in itertools.product(range(-1, n), repeat=m):
        alloc = [0] * n
        for g, o in enumerate(owners):
            if o >= 0:
                alloc[o] |= 1 << g
        allocs.append(tuple(alloc))

    def welfare(alloc: tuple[int, ...], skip: int = -1) -> int:
        return sum(int(values[i, alloc[i]]) for i in range(n) if i != skip)

    best = max(allocs, key=welfare)
    prices = []
    for i in range(n):
        without = max(welfare(a, i) for a in allocs if a[i] == 0)
        prices.append(without - welfare(best, i))
    return best, prices


def test_ausubel_milgrom_claims() -> None:
    ctx = example("ausubel-milgrom")
    assert ctx.coalitions == ((0,), (1, 2)) and ctx.shared_reward
    assert ctx.beliefs_correct()
    alloc, prices = _vcg(ctx.values)
    assert alloc == (0b11, 0, 0) and prices == [10, 0, 0]
    report = ctx.values.copy()
    report[1, [0b01, 0b11]] = 20
    report[2, [0b10, 0b11]] = 20
    alloc, prices = _vcg(report)
    assert alloc == (0, 0b01, 0b10) and prices == [0, 0, 0]
    true_utility = [int(ctx.values[i, alloc[i]]) - prices[i] for i in range(3)]
    assert true_utility == [0, 5, 5]
    assert ctx.lower[0, 1, 0b01] == 5 and ctx.lower[0, 2, 0b10] == 5
    assert ctx.lower[1, 0, 0b11] == 15 and ctx.lower[2, 0, 0b11] == 15
    indep = example("ausubel-milgrom-independent")
    assert indep.coalitions == ((0,), (1,), (2,))
    assert np.array_equal(indep.values, ctx.values) and np.array_equal(indep.lower, ctx.lower)
