"""Reading the Pulumi stack outputs the `ecs` backend runs on (`pulumi stack output --json`).

The outputs themselves are declared in `core.stack_outputs.StackOutputs` (the program
exports exactly those). A missing, malformed or `[secret]` value is BadInput (exit 2)
naming the file, the key and the fix (OUTPUTS_FIX).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from core.config_types import describe
from core.errors import BadInput
from core.stack_outputs import REQUIRED_OUTPUTS, StackOutputs

OUTPUTS_FIX = ("run `pulumi up` for the stack, then `pulumi stack output --json > FILE` in the project "
               "directory and pass it with --stack-outputs FILE")


def load_stack_outputs(path: str | Path | None) -> StackOutputs:
    """Read `pulumi stack output --json`; BadInput (exit 2) naming the file, the key and the fix."""
    if path is None:
        raise BadInput("--backend ecs needs --stack-outputs FILE (or LOADBEARING_STACK_OUTPUTS): "
                       f"the JSON of `pulumi stack output --json`; {OUTPUTS_FIX}")
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"--stack-outputs {p}: file not found; {OUTPUTS_FIX}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"--stack-outputs {p}: cannot read it: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"--stack-outputs {p}: not JSON ({exc}); {OUTPUTS_FIX}") from None
    if not isinstance(data, dict):
        raise BadInput(f"--stack-outputs {p}: expected a JSON object of outputs; {OUTPUTS_FIX}")
    secret = [k for k in StackOutputs.model_fields if data.get(k) == "[secret]"]
    if secret:
        raise BadInput(f"--stack-outputs {p}: {', '.join(map(repr, secret))} is '[secret]'; the loadbearing "
                       "program exports no secret output: the stack's program is not this one, or was changed")
    missing = [k for k in REQUIRED_OUTPUTS if data.get(k) in (None, "", [])]
    if missing:
        raise BadInput(f"--stack-outputs {p}: missing stack output{'s' if len(missing) > 1 else ''} "
                       f"{', '.join(repr(k) for k in missing)} (the Pulumi program in infra/ exports "
                       f"{', '.join(REQUIRED_OUTPUTS)}); {OUTPUTS_FIX}")
    data = {k: v for k, v in data.items() if v is not None}
    try:
        return StackOutputs.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(describe(exc, "stack output "))
        raise BadInput(f"--stack-outputs {p}: {problems}; {OUTPUTS_FIX}") from None
