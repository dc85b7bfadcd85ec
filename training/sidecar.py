"""What a saved model was trained for, as its sidecar ``.json`` records it, and the check
that it fits where it is loaded.

A model reads observations of one layout and answers in one action space; both follow from
the mechanism, the sizes (n, m, and for the raw encoding the caps), the encoding, the
learner's members and the observation options. :func:`setting` describes them (written by
:func:`~mechgym.training.policies.save_model` through the envs' ``meta()``);
:func:`check_setting` compares a model's setting with the one it is asked to play in and
names every difference in one line.

Sidecars written before these fields existed (no ``sidecar_format``) are checked on what they
do record (mechanism, n, m, caps, encoding) and on the observation and action spaces rebuilt
from them, which :func:`check_spaces` compares with the model's own.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mechgym.envs.engine.errors import ParameterError

#: version of the setting fields in a sidecar (absent: written before they existed)
SIDECAR_FORMAT = 2


def action_description(encoding: Any) -> dict[str, Any]:
    """The encoding's name and its action space: ``Discrete`` with its size, or
    ``MultiDiscrete`` with one size per field."""
    space = encoding.action_space
    return {"encoding": encoding.name, "space": type(space).__name__, "sizes": _sizes(space)}


def _sizes(space: Any) -> list[int]:
    return [int(x) for x in space.nvec] if hasattr(space, "nvec") else [int(space.n)]


def observation_layout(builder: Any) -> dict[str, Any]:
    """The observation's size and its parts in order (see
    :class:`~mechgym.training.encodings.ObservationBuilder`), with a fingerprint: the first
    16 hex digits of the sha256 of the layout, so that two layouts of one size still differ."""
    from .encodings import QUESTION_SIZE
    from .policies import class_path

    enc = builder.encoding
    mech, spec = enc.mech, enc.spec
    parts = [
        ["phase", len(mech.phases)],
        ["acting", 1],
        ["own_index", spec.n],
        ["private", int(builder.context_class.private_size(spec.n, spec.m))],
        ["public", int(mech.public_size(spec))],
        ["member_position", builder.member_size],
        ["question", QUESTION_SIZE if builder.features else 0],
        ["menu_summaries", enc.summary_size if builder.features else 0],
    ]
    layout = {
        "size": int(builder.size),
        "parts": parts,
        "phases": list(mech.phases),
        "normalize": builder.normalize,
        "context_class": class_path(builder.context_class),
    }
    digest = hashlib.sha256(
        json.dumps({"mechanism": enc.mech_name, **layout}, sort_keys=True).encode()
    ).hexdigest()
    return {**layout, "fingerprint": digest[:16]}


def setting(builder: Any) -> dict[str, Any]:
    """The sidecar fields that say where a model of this observation builder can play."""
    enc = builder.encoding
    s = enc.spec
    return {
        "sidecar_format": SIDECAR_FORMAT,
        "mechanism": enc.mech_name,
        "spec": {"n": s.n, "m": s.m, "value_cap": s.value_cap, "price_cap": s.price_cap},
        "encoding": enc.name,
        "members": list(builder.members),
        "action": action_description(enc),
        "observation": observation_layout(builder),
    }


def differences(found: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """What differs between a model's setting ``found`` and the setting ``wanted``, as
    ``"n 3 (here 4)"`` phrases; a field only one of them has is not compared."""
    if found.get("mechanism") != wanted.get("mechanism"):
        return [f"mechanism {found.get('mechanism')} (here {wanted.get('mechanism')})"]
    out: list[str] = []
    fs, ws = found.get("spec", {}), wanted.get("spec", {})
    for k in ("n", "m"):
        if k in fs and k in ws and fs[k] != ws[k]:
            out.append(f"{k} {fs[k]} (here {ws[k]})")
    from mechgym.envs.engine.spaces import canonical_encoding

    same = canonical_encoding(found.get("encoding")) == canonical_encoding(wanted.get("encoding"))
    if "encoding" in found and "encoding" in wanted and not same:
        out.append(f"encoding {found['encoding']} (here {wanted['encoding']})")
    if out:
        return out
    fa, wa = found.get("action"), wanted.get("action")
    if fa is not None and wa is not None and fa != wa:
        out.append(f"action space {_space(fa)} (here {_space(wa)})")
    fo, wo = found.get("observation"), wanted.get("observation")
    if fo is not None and wo is not None and fo.get("fingerprint") != wo.get("fingerprint"):
        out.append(
            f"observation layout {fo.get('fingerprint')} of size {fo.get('size')} "
            f"(here {wo.get('fingerprint')} of size {wo.get('size')})"
        )
    if out:  # the caps are why the layouts differ
        for k in ("value_cap", "price_cap"):
            if k in fs and k in ws and fs[k] != ws[k]:
                out.append(f"{k} {fs[k]} (here {ws[k]})")
    return out


def check_setting(found: dict[str, Any], wanted: dict[str, Any], path: Any, use: str) -> None:
    """Refuse a model whose setting ``found`` differs from ``wanted``.

    Raises
    ------
    ParameterError
        ``"<path> was trained with <differences>: it cannot <use>; ..."``.
    """
    diff = differences(found, wanted)
    if diff:
        raise ParameterError(
            "model",
            f"{path} was trained with {', '.join(diff)}: it cannot {use}; train a model "
            f"for this setting (mechgym train {wanted.get('mechanism')} ...)",
        )


def check_spaces(model: Any, builder: Any, meta: dict[str, Any], path: Any) -> None:
    """The model's own spaces against those its sidecar's setting rebuilds, and a recorded
    observation fingerprint against the rebuilt one (another mechgym version may lay the
    observation out differently).

    Raises
    ------
    ParameterError
        Naming what differs and asking to retrain.
    """
    shape = getattr(model.observation_space, "shape", None)
    if shape is not None and tuple(shape) != (builder.size,):
        raise ParameterError(
            "model",
            f"{path} reads observations of shape {tuple(shape)}, but its sidecar's setting "
            f"gives ({builder.size},): the sidecar does not belong to this model; retrain it",
        )
    space = model.action_space
    want = builder.encoding.action_space
    if type(space) is not type(want) or _sizes(space) != _sizes(want):
        raise ParameterError(
            "model",
            f"{path} answers in {space}, but its sidecar's setting gives {want}; retrain it",
        )
    recorded = meta.get("observation", {}).get("fingerprint")
    rebuilt = observation_layout(builder)["fingerprint"]
    if recorded is not None and recorded != rebuilt:
        raise ParameterError(
            "model",
            f"{path} was trained on observation layout {recorded}; this mechgym builds "
            f"{rebuilt} for the same setting: retrain the model",
        )


def _space(a: dict[str, Any]) -> str:
    return f"{a.get('space')}({', '.join(map(str, a.get('sizes', [])))})"


def check_fits(policy: Any, path: Any, mechanism: str, spec: Any = None) -> None:
    """Refuse a loaded policy that cannot play ``mechanism`` (at the sizes of ``spec``, an
    :class:`~mechgym.envs.engine.game.EnvSpec`, when given): compared are the mechanism, n,
    m, the encoding, its action space and the observation layout the model would be fed.

    Raises
    ------
    ParameterError
        One line naming every difference.
    """
    from mechgym.envs.pettingzoo.registry import entry

    from .encodings import ObservationBuilder, make_encoding

    b = policy.builder
    found = setting(b)
    use = f"play {mechanism} here"
    if spec is None:
        check_setting(found, {"mechanism": mechanism}, path, use)
        return
    sizes = {"n": spec.n, "m": spec.m, "value_cap": spec.value_cap, "price_cap": spec.price_cap}
    check_setting(
        found, {"mechanism": mechanism, "spec": sizes, "encoding": found["encoding"]}, path, use
    )
    enc = make_encoding(
        b.encoding.name, mechanism, b.encoding.mech, spec, entry(mechanism).load_agents()
    )
    target = ObservationBuilder(enc, b.members, b.context_class, b.normalize, b.features)
    check_setting(found, setting(target), path, use)
