"""The fault suite's report (``docs/reliability.md``): what each scenario injected, what
it expected, and what it measured, written by the tests themselves.

A fault test calls :func:`record` once it has asserted what survived. With
``CTI_RELIABILITY_OUT`` set (``scripts/reliability-report`` sets it) each call appends
one JSON line to that file; without it nothing is written, so ``make test`` is
unchanged. ``python -m tests.support.reliability RESULTS.jsonl`` renders the lines as
the page's table (``scripts/reliability-report`` writes it to ``docs/reliability.md``).
Only figures the test measured go in: a scenario that did not run has no row.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["record", "render"]

ENV = "CTI_RELIABILITY_OUT"


def record(scenario: str, *, injected: str, expected: str, **measured: Any) -> None:
    """One scenario's outcome (``measured``: figures, short words; numbers rounded by the
    caller to what they mean)."""
    out = os.environ.get(ENV)
    if not out:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    line = {
        "scenario": scenario,
        "test": test,
        "injected": injected,
        "expected": expected,
        "measured": measured,
        "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    with open(out, "a", encoding="utf-8") as results:
        results.write(json.dumps(line, ensure_ascii=False) + "\n")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


_UNITS = {"_ms": "ms", "_s": "s", "_kib": "KiB"}


def _figure(name: str, value: Any) -> str:
    """``detected_after_ms=21`` reads "detected after: 21 ms"."""
    for suffix, unit in _UNITS.items():
        if name.endswith(suffix):
            return f"{name[: -len(suffix)].replace('_', ' ')}: {value} {unit}"
    return f"{name.replace('_', ' ')}: {value}"


def _measured(values: dict[str, Any]) -> str:
    return "; ".join(_figure(name, value) for name, value in values.items())


def render(lines: Iterable[str], *, command: str, machine: str) -> str:
    rows = [json.loads(line) for line in lines if line.strip()]
    rows.sort(key=lambda r: (r["test"].split("::")[0], r["scenario"]))
    out = [
        "# Reliability: faults injected, what survived",
        "",
        "Generated from the fault suite's own output (`tests/faults/`, each scenario's",
        "`record(...)`, `tests/support/reliability.py`) by one command:",
        f"`{command}`. Do not edit by hand; run it again. Machine: {machine}.",
        f"{len(rows)} scenarios, run {rows[0]['at'] if rows else 'never'}.",
        "",
        "Every row's test also *asserts* what it expected; the measured column is what that",
        "run saw. Figures from this 2-core machine with the rest of the suite running beside",
        "it are upper bounds, not targets (targets live in `docs/performance.md`).",
        "",
        "| scenario | injected | expected | measured | test |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        out.append(
            "| "
            + " | ".join(
                _cell(v)
                for v in (
                    row["scenario"],
                    row["injected"],
                    row["expected"],
                    _measured(row["measured"]),
                    f"`{row['test']}`",
                )
            )
            + " |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    results = Path(argv[0])
    command = argv[1].strip() if len(argv) > 1 else "scripts/reliability-report"
    machine = f"{os.cpu_count()} cores, {platform.system()} {platform.release()}"
    sys.stdout.write(render(results.read_text().splitlines(), command=command, machine=machine))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
