"""The helpdesk's words: the codes the API speaks and what operators read for them.

One definition for the store (which validates against these tuples), the CLI and the web
(roles), and the console: ``vocabulary()`` is what a ``GET /api/vocabulary`` serves, and a
test ties ``web/static/js/labels.js`` to it. The labels are the console's where it has
them. A call's outcome and direction are the call model's (``calls/events.py``); they are
listed here with their labels, not defined a second time.

Some words are pinned by PRODUCT.md for the callback dialer but not written or accepted by
the code yet (an agreement that is ``dialling``, an attempt that ended ``unknown``): they
are ``planned``. They are in the vocabulary, not in the tuples the store validates with,
so nothing accepts them before the code that gives them meaning exists.

Pure: no ORM, no Twisted.
"""

from __future__ import annotations

from dataclasses import dataclass

from cti_bridge.calls.events import Direction, Outcome

__all__ = [
    "AGREEMENT_DISPOSITIONS",
    "AGREEMENT_KINDS",
    "AGREEMENT_ORIGINS",
    "AGREEMENT_STATUSES",
    "ATTEMPT_OUTCOMES",
    "CALL_DIRECTIONS",
    "CALL_OUTCOMES",
    "CONTACT_CHANNELS",
    "DISPOSITIONS",
    "GROUPS",
    "ROLES",
    "Word",
    "vocabulary",
]


@dataclass(frozen=True, slots=True)
class Word:
    value: str
    label: str
    #: Pinned by PRODUCT.md for a feature still to come; not accepted by the code yet.
    planned: bool = False


def _in_use(words: tuple[Word, ...]) -> tuple[str, ...]:
    return tuple(word.value for word in words if not word.planned)


#: Who an operator account is (PRODUCT.md: ``--role operator|supervisor|admin``).
ROLE_WORDS = (
    Word("operator", "Operator"),
    Word("supervisor", "Supervisor"),
    Word("admin", "Administrator"),
)

#: What an operator concluded about a call (``PATCH /api/calls/{id}``).
DISPOSITION_WORDS = (
    Word("solved", "Solved"),
    Word("agreement_made", "Agreement made"),
    Word("escalated", "Escalated to second line"),
    Word("technician_planned", "Technician visit planned"),
    Word("repair_planned", "Repair planned"),
    Word("replacement_planned", "Replacement planned"),
    Word("out_of_contract", "Out of contract"),
    Word("complaint", "Complaint about earlier service"),
)

#: What was promised to the customer.
AGREEMENT_KIND_WORDS = (
    Word("callback", "Call back"),
    Word("documentation", "Send documentation"),
    Word("technician", "Technician visit"),
    Word("repair", "Repair"),
    Word("replacement", "Replacement"),
    Word("second_line", "Escalate to second line"),
    Word("other", "Other"),
)

#: Where an agreement stands.
AGREEMENT_STATUS_WORDS = (
    Word("open", "Open"),
    Word("dialling", "Dialling"),  # a callback attempt is under way
    Word("done", "Done"),
    Word("failed", "Failed"),
    Word("cancelled", "Cancelled"),
)

#: How one callback attempt ended.
ATTEMPT_OUTCOME_WORDS = (
    Word("answered", "Answered"),
    Word("busy", "Busy"),
    Word("no_answer", "No answer"),
    Word("failed", "Failed (unreachable, congestion, invalid number)"),
    Word("operator_no_answer", "Operator did not answer"),
    Word("operator_unavailable", "Operator unavailable"),
    Word("cancelled", "Cancelled"),
    Word("unknown", "Outcome unknown"),
)

#: How a closed agreement ended (``PATCH /api/agreements/{id}`` with status done or
#: cancelled); closing a callback asks for one.
AGREEMENT_DISPOSITION_WORDS = (
    Word("solved", "Solved"),
    Word("information_given", "Information given"),
    Word("escalated", "Escalated to second line"),
    Word("visit_planned", "Technician visit planned"),
    Word("documentation_sent", "Documentation sent"),
    Word("customer_unreachable", "Customer could not be reached"),
    Word("no_longer_needed", "No longer needed"),
    Word("solved_on_inbound_call", "Solved when the customer called in"),
)

#: How a contact that is not a call reached the customer (``POST /api/contacts``).
CONTACT_CHANNEL_WORDS = (
    Word("mail", "E-mail"),
    Word("chat", "Chat"),
    Word("visit", "Visit"),
    Word("letter", "Letter"),
    Word("other", "Other"),
)

#: Where an agreement came from.
AGREEMENT_ORIGIN_WORDS = (
    Word("operator", "Made by an operator"),
    Word("missed_call", "Missed call"),
)

_CALL_OUTCOME_LABELS = {
    Outcome.ANSWERED: "Answered",
    Outcome.ABANDONED: "Abandoned",
    Outcome.MISSED: "Missed",
    Outcome.TRANSFERRED: "Transferred",
    Outcome.FAILED: "Failed",
}
#: How a call ended (the call model's ``Outcome``, set when the call ends).
CALL_OUTCOME_WORDS = tuple(Word(o.value, _CALL_OUTCOME_LABELS[o]) for o in Outcome)

_CALL_DIRECTION_LABELS = {
    Direction.INBOUND: "Inbound",
    Direction.OUTBOUND: "Outbound",
    Direction.INTERNAL: "Internal",
}
#: The call model's ``Direction``.
CALL_DIRECTION_WORDS = tuple(Word(d.value, _CALL_DIRECTION_LABELS[d]) for d in Direction)

ROLES = _in_use(ROLE_WORDS)
DISPOSITIONS = _in_use(DISPOSITION_WORDS)
AGREEMENT_KINDS = _in_use(AGREEMENT_KIND_WORDS)
AGREEMENT_STATUSES = _in_use(AGREEMENT_STATUS_WORDS)
ATTEMPT_OUTCOMES = _in_use(ATTEMPT_OUTCOME_WORDS)
AGREEMENT_DISPOSITIONS = _in_use(AGREEMENT_DISPOSITION_WORDS)
CONTACT_CHANNELS = _in_use(CONTACT_CHANNEL_WORDS)
AGREEMENT_ORIGINS = _in_use(AGREEMENT_ORIGIN_WORDS)
CALL_OUTCOMES = _in_use(CALL_OUTCOME_WORDS)
CALL_DIRECTIONS = _in_use(CALL_DIRECTION_WORDS)

#: Every group by the name ``vocabulary()`` gives it.
GROUPS: dict[str, tuple[Word, ...]] = {
    "roles": ROLE_WORDS,
    "dispositions": DISPOSITION_WORDS,
    "agreement_kinds": AGREEMENT_KIND_WORDS,
    "agreement_statuses": AGREEMENT_STATUS_WORDS,
    "attempt_outcomes": ATTEMPT_OUTCOME_WORDS,
    "agreement_dispositions": AGREEMENT_DISPOSITION_WORDS,
    "agreement_origins": AGREEMENT_ORIGIN_WORDS,
    "contact_channels": CONTACT_CHANNEL_WORDS,
    "call_outcomes": CALL_OUTCOME_WORDS,
    "call_directions": CALL_DIRECTION_WORDS,
}


def vocabulary() -> dict[str, list[dict[str, str | bool]]]:
    """Every group, JSON-ready: ``{"dispositions": [{"value", "label", "planned"}, ...]}``,
    in the order the console lists them."""
    return {
        name: [{"value": w.value, "label": w.label, "planned": w.planned} for w in words]
        for name, words in GROUPS.items()
    }
