"""CrossGuard policy pack for the loadbearing stack.

Run it with `pulumi preview --policy-pack infra/policy_pack` (or `pulumi up ...`).
The guards live in `validators` (importable, standard library only) so the unit
tests call them directly; `__main__.py` only wraps them in a PolicyPack. Never
import `__main__` from tests: constructing a PolicyPack starts a gRPC server that
does not return.
"""
