"""The fault suite's report (``tests/support/reliability.py``): nothing written unless
asked, one line per scenario, a table that survives what the figures contain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.reliability import ENV, record, render


def test_nothing_is_written_without_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    record("a scenario", injected="x", expected="y", figure=1)
    assert list(tmp_path.iterdir()) == []


def test_each_scenario_is_one_line_and_one_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "results.jsonl"
    monkeypatch.setenv(ENV, str(out))
    record("PBX | killed", injected="SIGKILL\\nmid-burst", expected="once each", stored=7)
    record("Redis restarted", injected="stop, start", expected="kept", duplicates=0, gap_ms=5)
    lines = out.read_text().splitlines()
    assert [json.loads(line)["scenario"] for line in lines] == ["PBX | killed", "Redis restarted"]
    assert json.loads(lines[0])["test"].startswith("tests/unit/test_reliability.py::")
    page = render(lines, command="scripts/reliability-report", machine="2 cores")
    rows = [line for line in page.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 3  # the header and two scenarios
    assert "PBX \\| killed" in page and "stored: 7" in page and "duplicates: 0" in page
    assert "gap: 5 ms" in page
    assert "2 scenarios" in page and "scripts/reliability-report" in page
