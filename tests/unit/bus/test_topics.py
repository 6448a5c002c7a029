"""The bus's topic names: one definition, the spelling pinned (another node must agree)."""

from __future__ import annotations

import ast
import subprocess
import sys

from cti_bridge.bus import topics
from tests.support.paths import REPO

SRC = REPO / "src" / "cti_bridge"


def test_names_are_pinned() -> None:
    assert topics.operator_topic(7) == "operator.7"
    assert topics.OPERATOR_TOPIC_PREFIX == "operator."
    assert topics.SUPERVISORS_TOPIC == "supervisors"
    assert topics.POP_REPLAY_TOPIC == "pop.replay"


def test_pop_and_web_use_the_one_definition() -> None:
    from cti_bridge.pop import core, service
    from cti_bridge.queues import screens
    from cti_bridge.web import ws

    used_by_ws = vars(ws)  # ws imports these names for its own use; it does not re-export them
    assert core.operator_topic is used_by_ws["operator_topic"] is topics.operator_topic
    assert service.POP_REPLAY_TOPIC is used_by_ws["POP_REPLAY_TOPIC"] is topics.POP_REPLAY_TOPIC
    assert vars(screens)["SUPERVISORS_TOPIC"] is topics.SUPERVISORS_TOPIC


def _spelled_out(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if text in ("supervisors", "pop.replay") or text.startswith("operator."):
                found.append((node.lineno, text))
    return found


def test_no_other_module_spells_a_topic() -> None:
    """A topic written out anywhere else (``"pop.replay"``, ``f"operator.{id}"``) is a
    second definition that can drift."""
    others = {
        str(path.relative_to(SRC)): spelled
        for path in sorted(SRC.rglob("*.py"))
        if path != SRC / "bus" / "topics.py"
        and (spelled := _spelled_out(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert others == {}


def test_topics_load_without_twisted() -> None:
    """Decision code (``pop/core.py``) names topics without loading a reactor."""
    code = (
        "import sys, cti_bridge.bus.topics, cti_bridge.bus\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('twisted', 'txredisapi')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO / "src")},
    )
    assert done.stdout.strip() == "[]"
