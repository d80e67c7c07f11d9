"""The one rich console for human progress: stderr, never stdout (stdout carries results)."""

from __future__ import annotations

import sys

from rich.console import Console

# Wide enough for the tables when stderr is a file or a CI log (rich would assume 80 columns).
console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 120)
