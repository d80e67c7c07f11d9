"""Editing a user's config file in place: the values change, nothing else does.

- `set_env_values`: `KEY=value` lines of an env file (shell or dotenv style) get new values;
  `export`, indentation, spacing around `=`, the value's quotes, an inline comment and the
  line endings stay as they were. Keys not in the file are appended in the file's style.
- `replace_file`: atomic write that keeps the file's mode and owner (env files hold secrets),
  and writes through a symlink instead of replacing it.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from pathlib import Path

# One assignment: head (indent, `export`, key, `=` and spaces), the value (double-quoted,
# single-quoted or bare), the rest (spaces and an inline comment).
_ASSIGNMENT = re.compile(
    r"""^(?P<head>[ \t]*(?P<export>export[ \t]+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|[^ \t#'"]*)(?P<rest>.*)$""", re.DOTALL)
_BARE_OK = re.compile(r"^[A-Za-z0-9_.,:/@%+-]*$")


def _quoted(new: str, like: str) -> str:
    """`new` in the quotes `like` used (bare when it had none and needs none)."""
    if like.startswith("'") and "'" not in new:
        return f"'{new}'"
    if like.startswith('"') or not _BARE_OK.match(new):
        return '"' + new.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`") + '"'
    return new


def set_env_values(text: str, values: dict[str, str]) -> str:
    """`text` (an env file) with each key of `values` set; every other byte kept."""
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    seen: set[str] = set()
    exports = 0
    assignments = 0
    for i, raw in enumerate(lines):
        body = raw.rstrip("\r\n")
        ending = raw[len(body):]
        m = _ASSIGNMENT.match(body)
        if not m:
            continue
        assignments += 1
        exports += bool(m.group("export"))
        key = m.group("key")
        if key in values:
            lines[i] = m.group("head") + _quoted(values[key], m.group("value")) + m.group("rest") + ending
            seen.add(key)
    prefix = "export " if assignments and exports == assignments else ""
    missing = [f"{prefix}{key}={_quoted(values[key], '')}{newline}" for key in sorted(values) if key not in seen]
    if missing and lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline
    return "".join(lines + missing)


def replace_file(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (a temporary file renamed over it), keeping the
    existing file's mode and owner; through a symlink, the file it points to is written."""
    target = path.resolve() if path.is_symlink() else path
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        st: os.stat_result | None = target.stat()
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".loadbearing.tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:  # mkstemp: 0600 until the mode is copied
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if st is not None:
            with contextlib.suppress(PermissionError):  # not root: the file stays ours
                os.chown(tmp, st.st_uid, st.st_gid)
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
