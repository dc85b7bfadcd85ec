"""Bundles of goods as bitmasks: bit g set means good g (0-based) is in the bundle."""

from __future__ import annotations

from collections.abc import Iterable

from mechgym.envs.engine.errors import ContextError


def bundle_of(goods: Iterable[int]) -> int:
    """Return the bitmask of a collection of 0-based goods."""
    mask = 0
    for g in goods:
        mask |= 1 << int(g)
    return mask


def goods_of(bundle: int) -> tuple[int, ...]:
    """Return the 0-based goods in a bundle, ascending."""
    out = []
    g = 0
    while bundle:
        if bundle & 1:
            out.append(g)
        bundle >>= 1
        g += 1
    return tuple(out)


def format_bundle(bundle: int) -> str:
    """Write a bundle as in context files: ``"0,2"``; the empty bundle is ``"-"``."""
    goods = goods_of(bundle)
    return ",".join(map(str, goods)) if goods else "-"


def parse_bundle(text: str, m: int, field: str = "bundle") -> int:
    """Parse ``"0,2"`` into a bitmask over ``m`` goods, raising :class:`ContextError`."""
    text = str(text).strip()
    if text in ("", "-"):
        return 0
    mask = 0
    for part in text.split(","):
        part = part.strip()
        if not (part.isascii() and part.lstrip("-").isdigit()):
            raise ContextError(
                field, f"bundle '{text}' must list goods as comma-separated integers"
            )
        g = int(part)
        if not 0 <= g < m:
            raise ContextError(field, f"good {g} in bundle '{text}' is outside 0..{m - 1}")
        if mask >> g & 1:
            raise ContextError(field, f"good {g} is listed twice in bundle '{text}'")
        mask |= 1 << g
    return mask
