"""Reading and writing contexts as JSON or YAML files.

An auction context file (``"kind": "auction"``, the default) uses 0-based players and goods,
writes a bundle as its comma-separated goods (``"0,2"``; ``"-"`` is the empty bundle) and
leaves out bundles worth 0::

    {"players": 3, "goods": 2,
     "values":  [{"0": 100}, {"1": 100}, {"0,1": 50}],
     "beliefs": {"0": {"1": {"1": 25}, "2": {"0,1": 10}},
                 "1": {"0": {"0": 80}, "2": {"1": 20}},
                 "2": {"0": {"0": 80}, "1": {"1": 70}}},
     "coalitions": [[0], [1], [2]]}

``beliefs[i][j][S]`` is the price player ``i`` is sure ``j`` would pay for ``S`` (a lower
bound; absent means 0). ``beliefs[i][i]`` may be omitted; if given it must equal
``values[i]``. Optional keys: ``"kind"``, ``"name"``, ``"beliefs"``, ``"coalitions"`` (default:
everyone independent) and ``"shared_reward"`` (default true). Any other key is an error.

Other kinds of context plug in through :data:`LOADERS` and :data:`DUMPERS`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from mechgym.envs.engine.errors import ContextError, ContextFileError
from mechgym.envs.model.bundles import format_bundle, parse_bundle
from mechgym.envs.model.context import AuctionContext
from mechgym.envs.model.limits import (
    MAX_AMOUNT,
    MAX_BELIEF_ENTRIES,
    MAX_GOODS,
    MAX_PLAYERS,
    read_small_file,
)
from mechgym.envs.model.market import market_from_dict, market_to_dict
from mechgym.envs.model.states import read_coalitions, states_from_dict, states_to_dict

__all__ = [
    "DUMPERS",
    "LOADERS",
    "MAX_AMOUNT",
    "MAX_BELIEF_ENTRIES",
    "MAX_GOODS",
    "MAX_PLAYERS",
    "context_to_dict",
    "load_context",
    "loads_context",
    "parse_context",
    "save_context",
]

# One set of limits for files, generators and env arguments (see envs/model/limits.py).

_SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
_TOP = "(top level)"

Loader = Callable[[Mapping[Any, Any]], Any]
Dumper = Callable[[Any], dict[str, Any]]


# -- small readers; each raises ContextError(field, problem) ------------------------------------


def _q(key: Any) -> str:
    """A key as it appears in a field path: ``"0,1"`` with double quotes."""
    return json.dumps(str(key), ensure_ascii=False)


def _short(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(raw: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if raw is None:
        return "null"
    return names.get(type(raw), f"{type(raw).__name__} {_short(raw)}")


def _read_int(raw: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < lo:
        raise ContextError(field, f"must be an integer >= {lo}, got {_short(raw)}")
    if raw > hi:
        raise ContextError(field, f"must be at most {hi}, got {raw}")
    return int(raw)


def _read_amount(raw: Any, field: str, noun: str) -> int:
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if raw is None:
        # YAML reads the flow mapping {0,1: 50} as {0: null, 1: 50}.
        raise ContextError(
            field, f"{noun} is missing (null); in YAML quote multi-good bundles: '0,1': 50"
        )
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ContextError(field, f"non-integer {noun} {_short(raw)}; {noun}s must be integers")
    if raw < 0:
        raise ContextError(field, f"negative {noun} {raw}; auctions need {noun}s >= 0")
    if raw > MAX_AMOUNT:
        raise ContextError(field, f"{noun} {raw} is too large (at most 2**53)")
    return raw


def _key_text(key: Any, field: str, what: str) -> str:
    # YAML turns unquoted keys such as 0 into ints; JSON keys are always strings.
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    if not isinstance(key, str):
        raise ContextError(f"{field}[{_q(key)}]", f"key {_short(key)} is not {what}")
    return key


def _read_player(key: Any, n: int, field: str) -> int:
    text = _key_text(key, field, "a player index").strip()
    here = f"{field}[{_q(key)}]"
    if not (text.isascii() and text.isdigit()):
        raise ContextError(here, f"{_short(text)} is not a player index (0..{n - 1})")
    p = int(text)
    if p >= n:
        raise ContextError(here, f"player {p} is outside 0..{n - 1}")
    return p


def _read_bundle_map(raw: Any, m: int, field: str, noun: str) -> np.ndarray:
    """Read ``{"0,1": 50, ...}`` into a dense row over the ``2**m`` bundles."""
    if not isinstance(raw, Mapping):
        raise ContextError(
            field,
            f'must be an object mapping bundles to {noun}s, e.g. {{"0,1": 50}}; '
            f"got {_type_name(raw)}",
        )
    row = np.zeros(1 << m, dtype=np.int64)
    seen: dict[int, str] = {}
    for key, amount in raw.items():
        text = _key_text(key, field, "a bundle")
        here = f"{field}[{_q(text)}]"
        try:
            mask = parse_bundle(text, m, here)
        except ContextError:
            raise
        except ValueError:  # parse_bundle trusts str.isdigit, which accepts e.g. "²"
            raise ContextError(
                here, f"bundle {text!r} must list goods as comma-separated integers"
            ) from None
        if mask in seen:
            raise ContextError(here, f"same bundle as {_q(seen[mask])}; list each bundle once")
        seen[mask] = text
        value = _read_amount(amount, here, noun)
        if mask == 0 and value != 0:
            raise ContextError(here, f"the empty bundle must be worth 0, got {value}")
        row[mask] = value
    return row


def _check_keys(
    data: Mapping[Any, Any], allowed: tuple[str, ...], required: tuple[str, ...]
) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ContextError(str(key), f"unknown key; {hint}allowed keys: {', '.join(allowed)}")
    for key in required:
        if key not in data:
            raise ContextError(key, "is required but missing")


# -- the auction kind ---------------------------------------------------------------------------

_AUCTION_KEYS = (
    "kind",
    "name",
    "players",
    "goods",
    "values",
    "beliefs",
    "coalitions",
    "shared_reward",
)


def _read_values(raw: Any, n: int, m: int) -> np.ndarray:
    if not isinstance(raw, list | tuple):
        raise ContextError(
            "values", f"must be a list with one object per player; got {_type_name(raw)}"
        )
    if len(raw) != n:
        raise ContextError(
            "values", f"has {len(raw)} entries but players is {n}; give one object per player"
        )
    return np.stack(
        [_read_bundle_map(row, m, f"values[{i}]", "value") for i, row in enumerate(raw)]
    )


def _read_beliefs(raw: Any, values: np.ndarray) -> np.ndarray:
    n, size = values.shape
    m = size.bit_length() - 1
    lower = np.zeros((n, n, size), dtype=np.int64)
    lower[np.arange(n), np.arange(n)] = values
    if raw is None:
        return lower
    if not isinstance(raw, Mapping):
        raise ContextError(
            "beliefs",
            f'must be an object keyed by player ("0", "1", ...); got {_type_name(raw)}',
        )
    seen_i: set[int] = set()
    for key_i, about in raw.items():
        i = _read_player(key_i, n, "beliefs")
        field_i = f"beliefs[{_q(key_i)}]"
        if i in seen_i:
            raise ContextError(field_i, f"player {i} is listed twice")
        seen_i.add(i)
        if not isinstance(about, Mapping):
            raise ContextError(
                field_i,
                "must be an object keyed by the other players, each mapping bundles to the "
                f"price player {i} is sure they would pay; got {_type_name(about)}",
            )
        seen_j: set[int] = set()
        for key_j, bounds in about.items():
            j = _read_player(key_j, n, field_i)
            field_j = f"{field_i}[{_q(key_j)}]"
            if j in seen_j:
                raise ContextError(field_j, f"player {j} is listed twice")
            seen_j.add(j)
            row = _read_bundle_map(bounds, m, field_j, "lower bound")
            if i == j:
                diff = np.flatnonzero(row != values[i])
                if diff.size:
                    s = int(diff[0])
                    raise ContextError(
                        field_j,
                        f"a player's belief about itself is its values: bundle "
                        f"{_q(format_bundle(s))} is {row[s]} here but {values[i, s]} in "
                        f"values[{i}]; omit this entry",
                    )
            else:
                lower[i, j] = row
    return lower


def _parse_auction(data: Mapping[Any, Any]) -> AuctionContext:
    _check_keys(data, _AUCTION_KEYS, required=("players", "goods", "values"))
    n = _read_int(data["players"], "players", 2, MAX_PLAYERS)
    m = _read_int(data["goods"], "goods", 1, MAX_GOODS)
    if n * n << m > MAX_BELIEF_ENTRIES:
        raise ContextError(
            "goods",
            f"{n} players and {m} goods need {n * n << m} belief entries; "
            f"at most {MAX_BELIEF_ENTRIES} are supported",
        )
    values = _read_values(data["values"], n, m)
    lower = _read_beliefs(data.get("beliefs"), values)
    coalitions = read_coalitions(data.get("coalitions"), n)
    shared = data.get("shared_reward", True)
    if not isinstance(shared, bool):
        raise ContextError("shared_reward", f"must be true or false, got {_short(shared)}")
    name = data.get("name", "")
    if not isinstance(name, str):
        raise ContextError("name", f"must be a string, got {_type_name(name)}")
    return AuctionContext(
        values=values, lower=lower, coalitions=coalitions, shared_reward=shared, name=name
    )


def _bundle_map(row: np.ndarray) -> dict[str, int]:
    return {format_bundle(int(s)): int(row[s]) for s in np.flatnonzero(row)}


def _dump_auction(ctx: AuctionContext) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "auction"}
    if ctx.name:
        out["name"] = ctx.name
    out["players"] = ctx.n
    out["goods"] = ctx.m
    out["values"] = [_bundle_map(ctx.values[i]) for i in range(ctx.n)]
    beliefs: dict[str, dict[str, dict[str, int]]] = {}
    for i in range(ctx.n):
        about = {str(j): _bundle_map(ctx.lower[i, j]) for j in range(ctx.n) if j != i}
        about = {j: bounds for j, bounds in about.items() if bounds}
        if about:
            beliefs[str(i)] = about
    out["beliefs"] = beliefs
    out["coalitions"] = [list(c) for c in ctx.coalitions]
    out["shared_reward"] = bool(ctx.shared_reward)
    return out


LOADERS: dict[str, Loader] = {
    "auction": _parse_auction,
    "states": states_from_dict,
    "market": market_from_dict,
}
"""Context kind -> function reading a decoded document (raising :class:`ContextError`)."""

DUMPERS: dict[str, Dumper] = {
    "auction": _dump_auction,
    "states": states_to_dict,
    "market": market_to_dict,
}
"""Context kind -> function writing a context as a plain, JSON-ready dict."""


# -- public API -----------------------------------------------------------------------------------


def parse_context(data: Mapping[str, Any], source: str = "<dict>") -> Any:
    """Build a context from a decoded JSON/YAML document.

    Parameters
    ----------
    data : mapping
        The document; ``data["kind"]`` (default ``"auction"``) selects the reader in
        :data:`LOADERS`.
    source : str
        Where the document came from, used in error messages.

    Returns
    -------
    AuctionContext
        (or the context class of another kind).

    Raises
    ------
    ContextFileError
        Naming ``source`` and the offending field.
    """
    try:
        if not isinstance(data, Mapping):
            raise ContextError(
                _TOP,
                f"must be an object with keys players, goods, values, ...; got {_type_name(data)}",
            )
        kind = data.get("kind", "auction")
        if not isinstance(kind, str) or kind not in LOADERS:
            raise ContextError(
                "kind", f"unknown kind {_short(kind)}; known kinds: {', '.join(sorted(LOADERS))}"
            )
        return LOADERS[kind](data)
    except ContextFileError:
        raise
    except ContextError as exc:
        raise ContextFileError(source, exc.field, exc.problem) from None


def context_to_dict(ctx: Any) -> dict[str, Any]:
    """Write a context as a JSON-ready dict, the inverse of :func:`parse_context`.

    Only non-zero values and lower bounds are written, and no belief of a player about itself.
    """
    kind = getattr(ctx, "kind", None)
    if kind not in DUMPERS:
        raise ContextError(
            "kind",
            f"cannot write contexts of kind {kind!r}; known kinds: {', '.join(sorted(DUMPERS))}",
        )
    return DUMPERS[kind](ctx)


def _format_of(path: Path, source: str) -> str:
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ContextFileError(
            source, "file", f"unknown suffix {path.suffix!r}; use .json, .yaml or .yml"
        )
    return fmt


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _decode_yaml(text: str, source: str) -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a dependency
        raise ContextFileError(
            source, "file", "reading YAML needs pyyaml: pip install pyyaml"
        ) from None

    class StrictLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        loader.flatten_mapping(node)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable; construct_mapping reports it properly
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return loader.construct_mapping(node, deep=True)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    try:
        # StrictLoader is a SafeLoader: no arbitrary Python objects.
        return yaml.load(text, Loader=StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "yaml"
        raise ContextFileError(source, where, f"invalid YAML: {exc.problem}") from None
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise ContextFileError(source, "yaml", f"invalid YAML: {exc}") from None


def loads_context(text: str, source: str = "<string>", fmt: str = "json") -> Any:
    """Parse a context from JSON or YAML text.

    Parameters
    ----------
    text : str
        The document.
    source : str
        Where it came from, used in error messages.
    fmt : {"json", "yaml"}
        The syntax of ``text``.
    """
    if fmt == "json":
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            raise ContextFileError(
                source, f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}"
            ) from None
        except _DuplicateKey as exc:
            raise ContextFileError(
                source, f"key {_q(exc.key)}", "appears twice in one object; give each key once"
            ) from None
        except (ValueError, RecursionError) as exc:  # e.g. a number with too many digits
            raise ContextFileError(source, "json", f"invalid JSON: {exc}") from None
    elif fmt == "yaml":
        data = _decode_yaml(text, source)
    else:
        raise ContextError("fmt", f"unknown format {fmt!r}; use 'json' or 'yaml'")
    return parse_context(data, source)


def load_context(path: str | Path) -> Any:
    """Read a context file: ``.json``, or ``.yaml``/``.yml`` (needs pyyaml).

    Raises
    ------
    ContextFileError
        If the file is missing, unreadable, not valid JSON/YAML, or malformed; the message
        names the file and the field.
    """
    source = str(path)
    p = Path(path)
    try:
        text = read_small_file(p, "context file").decode("utf-8")
    except ValueError as exc:  # not a regular file, too large (UnicodeDecodeError below)
        if isinstance(exc, UnicodeDecodeError):
            raise ContextFileError(source, "file", f"is not UTF-8 text ({exc.reason})") from None
        raise ContextFileError(source, "file", str(exc)) from None
    except FileNotFoundError:
        raise ContextFileError(source, "file", f"no such file ({p.absolute()})") from None
    except IsADirectoryError:
        raise ContextFileError(source, "file", "is a directory, not a context file") from None
    except UnicodeDecodeError as exc:
        raise ContextFileError(source, "file", f"is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ContextFileError(source, "file", f"cannot be read ({exc.strerror or exc})") from None
    return loads_context(text, source, _format_of(p, source))


def _format_json(data: Mapping[str, Any]) -> str:
    # One top-level key per line and one player per line: diffable, yet short.
    parts = []
    for key, val in data.items():
        head = f"  {json.dumps(key)}: "
        if isinstance(val, list) and any(isinstance(x, dict) for x in val):
            inner = ",\n".join(f"    {json.dumps(x)}" for x in val)
            parts.append(f"{head}[\n{inner}\n  ]")
        elif isinstance(val, dict) and val:
            inner = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in val.items())
            parts.append(f"{head}{{\n{inner}\n  }}")
        else:
            parts.append(head + json.dumps(val))
    return "{\n" + ",\n".join(parts) + "\n}\n"


def save_context(ctx: Any, path: str | Path) -> Path:
    """Write a context to ``path`` as JSON or YAML, chosen by the suffix.

    Returns
    -------
    Path
        The path written.
    """
    p = Path(path)
    source = str(path)
    fmt = _format_of(p, source)
    data = context_to_dict(ctx)
    if fmt == "json":
        text = _format_json(data)
    else:
        import yaml

        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    try:
        p.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ContextFileError(
            source, "file", f"cannot be written ({exc.strerror or exc})"
        ) from None
    return p
