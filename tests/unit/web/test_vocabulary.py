"""The domain's words (``cti_bridge.vocabulary``): one definition, what the store accepts,
what PRODUCT.md pins, and the console's labels tied to them."""

from __future__ import annotations

import json
import re

import pytest

from cti_bridge import vocabulary as v
from cti_bridge.calls.events import Direction, Outcome
from tests.support.paths import STATIC

LABELS_JS = STATIC / "js" / "labels.js"

#: labels.js table -> the vocabulary group it labels.
CONSOLE_TABLES = {
    "DISPOSITIONS": "dispositions",
    "AGREEMENT_KINDS": "agreement_kinds",
    "OUTCOMES": "call_outcomes",
    "AGREEMENT_STATUSES": "agreement_statuses",
    "ATTEMPT_OUTCOMES": "attempt_outcomes",
    "AGREEMENT_DISPOSITIONS": "agreement_dispositions",
    "AGREEMENT_ORIGINS": "agreement_origins",
    "CONTACT_CHANNELS": "contact_channels",
}
#: labels.js tables that are not vocabulary: free-text suggestions, and the pop's own
#: message words (``call_update`` states, withdrawal reasons: ``pop/core.py``), and the
#: kinds of an agreement's history events (``store/models.py``) and the dialer's reasons
#: for flagging one (``dialer/ports.py``).
NOT_VOCABULARY = {
    "CATEGORIES",
    "CALL_STATES",
    "WITHDRAWN_REASONS",
    "HISTORY_KINDS",
    "FLAG_REASONS",
}
#: Groups the console shows as codes today (no table in labels.js).
UNLABELLED_IN_CONSOLE = {"roles", "call_directions"}

_TABLE = re.compile(r"^export const (\w+) = ([\[{])(.*?)^[\]}];", re.MULTILINE | re.DOTALL)
_PAIR = re.compile(r'\[\s*"([^"]*)"\s*,\s*"([^"]*)"\s*\]')
_ENTRY = re.compile(r'^\s*(\w+)\s*:\s*"([^"]*)"\s*,?\s*$', re.MULTILINE)


def console_tables() -> dict[str, list[tuple[str, str]]]:
    """Every exported table of labels.js as (code, label) pairs, in the file's order."""
    tables = {}
    for name, opening, body in _TABLE.findall(LABELS_JS.read_text(encoding="utf-8")):
        pattern = _PAIR if opening == "[" else _ENTRY
        tables[name] = pattern.findall(body)
    return tables


def test_the_words_the_code_accepts_are_unchanged() -> None:
    assert v.ROLES == ("operator", "supervisor", "admin")
    assert v.DISPOSITIONS == (
        "solved",
        "agreement_made",
        "escalated",
        "technician_planned",
        "repair_planned",
        "replacement_planned",
        "out_of_contract",
        "complaint",
    )
    assert v.AGREEMENT_KINDS == (
        "callback",
        "documentation",
        "technician",
        "repair",
        "replacement",
        "second_line",
        "other",
    )
    assert v.AGREEMENT_STATUSES == ("open", "dialling", "done", "failed", "cancelled")
    assert v.ATTEMPT_OUTCOMES == (
        "answered",
        "busy",
        "no_answer",
        "failed",
        "operator_no_answer",
        "operator_unavailable",
        "cancelled",
        "unknown",
    )
    assert v.AGREEMENT_DISPOSITIONS == (
        "solved",
        "information_given",
        "escalated",
        "visit_planned",
        "documentation_sent",
        "customer_unreachable",
        "no_longer_needed",
        "solved_on_inbound_call",
    )
    assert v.AGREEMENT_ORIGINS == ("operator", "missed_call")
    assert v.CONTACT_CHANNELS == ("mail", "chat", "visit", "letter", "other")
    assert v.CALL_OUTCOMES == ("answered", "abandoned", "missed", "transferred", "failed")
    assert v.CALL_DIRECTIONS == ("inbound", "outbound", "internal")


def test_the_vocabulary_has_every_word_product_md_pins() -> None:
    words = {name: [w["value"] for w in group] for name, group in v.vocabulary().items()}
    assert words["roles"] == ["operator", "supervisor", "admin"]
    assert words["agreement_kinds"] == [
        "callback",
        "documentation",
        "technician",
        "repair",
        "replacement",
        "second_line",
        "other",
    ]
    assert words["agreement_statuses"] == ["open", "dialling", "done", "failed", "cancelled"]
    assert words["attempt_outcomes"] == [
        "answered",
        "busy",
        "no_answer",
        "failed",
        "operator_no_answer",
        "operator_unavailable",
        "cancelled",
        "unknown",
    ]
    assert words["call_outcomes"] == ["answered", "abandoned", "missed", "transferred", "failed"]
    assert words["call_directions"] == ["inbound", "outbound", "internal"]
    # PRODUCT.md's dispositions (solved, agreement made, escalated, out of contract,
    # complaint) and the planned-visit ones the console offers.
    assert {"solved", "agreement_made", "escalated", "out_of_contract", "complaint"} <= set(
        words["dispositions"]
    )


def test_no_word_is_planned_any_more() -> None:
    """The dialer's words (``dialling``, the new attempt outcomes) are in use now: every
    word the vocabulary serves is one the code accepts."""
    for name, group in v.vocabulary().items():
        assert [w["value"] for w in group if w["planned"]] == [], name


def test_vocabulary_is_json_ready() -> None:
    served = v.vocabulary()
    assert json.loads(json.dumps(served)) == served
    assert list(served) == list(v.GROUPS)
    for name, group in served.items():
        values = [w["value"] for w in group]
        assert len(values) == len(set(values)), name
        for word in group:
            assert set(word) == {"value", "label", "planned"}
            assert isinstance(word["label"], str) and word["label"], (name, word)


def test_call_words_are_the_call_models() -> None:
    assert tuple(o.value for o in Outcome) == v.CALL_OUTCOMES
    assert tuple(d.value for d in Direction) == v.CALL_DIRECTIONS


def test_one_definition_for_the_store_the_web_and_the_cli() -> None:
    from cti_bridge.app import cli
    from cti_bridge.store import models
    from cti_bridge.web import auth

    assert models.ROLES is vars(auth)["ROLES"] is vars(cli)["ROLES"] is v.ROLES
    assert models.DISPOSITIONS is v.DISPOSITIONS
    assert models.AGREEMENT_KINDS is v.AGREEMENT_KINDS
    assert models.AGREEMENT_STATUSES is v.AGREEMENT_STATUSES
    assert models.ATTEMPT_OUTCOMES is v.ATTEMPT_OUTCOMES
    parser = cli.build_parser()
    for role in v.ROLES:
        assert parser.parse_args(["operators", "add", "bob", "--role", role]).role == role
    with pytest.raises(SystemExit):
        parser.parse_args(["operators", "add", "bob", "--role", "root"])


def test_every_console_table_is_vocabulary_or_said_not_to_be() -> None:
    assert set(console_tables()) == set(CONSOLE_TABLES) | NOT_VOCABULARY
    assert set(CONSOLE_TABLES.values()) | UNLABELLED_IN_CONSOLE == set(v.GROUPS)
    assert not set(CONSOLE_TABLES.values()) & UNLABELLED_IN_CONSOLE


def test_the_console_labels_every_word_and_no_other() -> None:
    """labels.js says what operators read: the same words, the same labels, in order."""
    tables = console_tables()
    for table, group in CONSOLE_TABLES.items():
        expected = [(w.value, w.label) for w in v.GROUPS[group]]
        assert tables[table] == expected, table
