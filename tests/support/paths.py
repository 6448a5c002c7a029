"""Where the repository's files are, for tests in any folder depth."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The recorded Asterisk traces (copied from the project's shared traces).
TRACES = REPO / "tests" / "fixtures" / "ami-traces"
#: The AGI caller-lookup script that the dialplan runs.
AGI_SCRIPT = REPO / "dialplans" / "agi" / "caller_lookup.py"
STATIC = REPO / "src" / "cti_bridge" / "web" / "static"
