"""What `pulumi up` runs (Pulumi.yaml: `main: infra/`): load config, build, export.

Pulumi executes this directory as a script, so the repository root is put on
sys.path first and the program is imported as the `infra` package.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_HERE = str(Path(__file__).resolve().parent)
# The directory Pulumi ran would shadow top-level modules with ours (config, network, ...).
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]
sys.path.insert(0, str(_ROOT))

_config = importlib.import_module("infra.config")
_program = importlib.import_module("infra.program")

_program.export_all(_program.build(_config.load_config()))
