"""What the config models (stack config, `loadbearing:targets`, stack outputs) share: a
whole-number field that refuses booleans, and pydantic errors as one line per problem,
each starting with the full key path.

Stack config (`loadbearing:runnerCount`, `loadbearing:targets.api.autoscaling.metric`) and
stack outputs are validated with pydantic models; their errors must name the key the user
wrote and say what is allowed, never show a traceback or a pydantic URL. `key_path`
spells a location the way the user wrote it (`a.b[2].c`), `describe` the whole error.

A model validator that checks several fields together names the field to fix first in its
message (`raise ValueError("min_instances: 4 is more than max_instances 3")`): `describe`
moves that name into the key path, so the error points at the key, not at its parent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationError


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number, not {str(value).lower()}")
    return value


WholeNumber = Annotated[int, BeforeValidator(_no_bool)]
"""An int field that takes 8, 8.0 and "8" but not true/false, "8.5" or "--5"."""

# Secret values never appear in a message; other inputs are shown when short.
_SHOWN_INPUT_CHARS = 80
_FIELD_FIRST = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*): (.+)$", re.DOTALL)


def key_path(prefix: str, loc: Sequence[int | str]) -> str:
    """`prefix` + the error location: `loadbearing:targets` + ('api', 'metric') -> `loadbearing:targets.api.metric`."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not out or out[-1] in ": ":
            out += str(part)
        else:
            out += f".{part}"
    return out


def _reason(err: Any, show_input: bool) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown key; remove it or check its spelling"
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = err.get("input")
    if show_input and kind not in ("model_type", "dict_type", "value_error") and value is not None:
        text = repr(value)
        if len(text) <= _SHOWN_INPUT_CHARS:
            msg += f" (got {text})"
    return msg


def describe(exc: ValidationError, prefix: str, *, show_input: bool = True) -> list[str]:
    """One `key: reason` line per error of `exc`, keys prefixed with `prefix` (e.g. `loadbearing:`)."""
    lines = []
    for err in exc.errors():
        loc: list[int | str] = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        reason = _reason(err, show_input)
        named = _FIELD_FIRST.match(reason) if err["type"] == "value_error" else None
        if named:
            loc.append(named.group(1))
            reason = named.group(2)
        lines.append(f"{key_path(prefix, loc)}: {reason}")
    return lines
