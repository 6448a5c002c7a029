"""The demo's promise book: a dozen agreements, some callbacks due the moment it starts.

Each callback due now goes to a number the simulated PBX treats in a fixed way
(``sim.CALLBACK_NUMBERS``, docs/simulator.md) or to an owner whose phone behaves in a
fixed way (:data:`OPERATOR_HABITS`), so within a few minutes the console shows every
outcome an attempt can have: answered, busy, no answer, failed (congestion, a number
that does not exist), operator no answer, operator unavailable. The rest is what a
helpdesk's book holds besides: callbacks later today, an overdue documentation promise,
a technician visit, an escalation, and one callback a supervisor must look at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cti_bridge.sim import Reply, SimulatedPBX
from cti_bridge.store import Store

__all__ = [
    "BOOK",
    "CALLBACK_CUSTOMERS",
    "OPERATOR_HABITS",
    "SeededAgreement",
    "seed_agreements",
    "teach_habits",
]

#: Customers whose numbers the simulated PSTN answers in a fixed way (sim.CALLBACK_NUMBERS).
CALLBACK_CUSTOMERS = (
    ("0478554433", "Garage Mertens", "busy"),
    ("025123456", "Bloemen De Smet", "never answers"),
    ("093334455", "Schrijnwerkerij Hermans", "network congested"),
    ("028880000", "Karel Vermeulen", "number no longer exists"),
)

#: How some operators' phones treat the callbacks that ring them (by device).
OPERATOR_HABITS: Mapping[str, tuple[Reply, ...]] = {
    "PJSIP/1004": (Reply.noanswer(), Reply.answer(4.0)),  # Dina lets every other one ring
    # Emma is away at first: do-not-disturb turns the callback down (486); then she is back.
    "PJSIP/1005": (Reply.busy(0.3), Reply.answer(3.0)),
}


@dataclass(frozen=True)
class SeededAgreement:
    kind: str
    number: str | None  # the customer's number (also the callback number of a callback)
    owner: str | None  # username
    due: timedelta | None = None  # from now: when a callback falls due
    deadline: timedelta = timedelta(hours=3)
    notes: str = ""
    queue: str | None = "support"
    flagged: bool = False  # flagged by the seed (deadline passed) for the supervisors


MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)

#: The book, in the order it is written.
BOOK = (
    # Due now: one per outcome.
    SeededAgreement("callback", "0470123456", "anna", -5 * MINUTE,
                    notes="Router drops the line every evening: call back with the firmware fix."),
    SeededAgreement("callback", "0478554433", "bart", -2 * MINUTE,
                    notes="Quote for a second boiler."),
    SeededAgreement("callback", "025123456", "chris", -MINUTE,
                    notes="Asked to be called back about the delivery date."),
    SeededAgreement("callback", "093334455", "filip", 0 * MINUTE,
                    notes="Invoice question."),
    SeededAgreement("callback", "028880000", None, 0 * MINUTE,
                    notes="Left a message with this number; whoever is free calls back."),
    SeededAgreement("callback", "050765432", "dina", -3 * MINUTE,
                    notes="Contract renewal: she wants the new price first."),
    SeededAgreement("callback", "+3250123456", "emma", -10 * MINUTE,
                    notes="Emma promised to call back; she was away from her desk for a while."),
    # Later today.
    SeededAgreement("callback", "+3293456789", "bart", 45 * MINUTE, deadline=4 * HOUR,
                    notes="Oven error E4: call back once the part number is known."),
    SeededAgreement("callback", "+3250987654", None, 2 * HOUR, deadline=5 * HOUR,
                    queue="sales", notes="Wants a call about the premium contract."),
    # Other promises.
    SeededAgreement("documentation", "011223344", "chris", deadline=-DAY,
                    notes="Send the HB-9 installation manual (PDF)."),
    SeededAgreement("technician", "056123456", "filip", deadline=2 * DAY,
                    notes="Boiler HB-9 loses pressure: technician Thursday morning."),
    SeededAgreement("second_line", "003293456780", None, deadline=4 * HOUR,
                    notes="VPN drops after the router update; second line looks at it."),
    # Out of time before anyone reached her: a supervisor decides.
    SeededAgreement("callback", "+32478123456", "bart", -DAY, deadline=-2 * HOUR,
                    notes="Called back twice yesterday, no luck.", flagged=True),
)  # fmt: skip


def seed_agreements(store: Store, now: datetime) -> list[int]:
    """Write :data:`BOOK` (and the customers of :data:`CALLBACK_CUSTOMERS`); the ids."""
    customers, accounts, book = store.customers, store.accounts, store.agreements
    for number, name, _ in CALLBACK_CUSTOMERS:
        if customers.customer_for_number(number) is None:
            customers.add_customer(name, numbers=[number], language="nl")
    made = []
    for entry in BOOK:
        customer = customers.customer_for_number(entry.number) if entry.number else None
        owner = accounts.get_operator(entry.owner) if entry.owner else None
        callback = entry.kind == "callback"
        agreement_id = book.add_agreement(
            entry.kind,
            customer_id=None if customer is None else customer["id"],
            owner_operator_id=None if owner is None else owner.id,
            deadline=now + entry.deadline,
            callback_number=entry.number if callback else None,
            notes=entry.notes,
            queue=entry.queue,
            due_at=now + entry.due if entry.due is not None else None,
            by_operator=None if owner is None else owner.id,
        )
        if entry.flagged:
            book.flag_agreement(agreement_id, "deadline_passed", now=now)
        made.append(agreement_id)
    return made


def teach_habits(sim: SimulatedPBX) -> None:
    """The operators of :data:`OPERATOR_HABITS` treat callbacks their way."""
    for device, replies in OPERATOR_HABITS.items():
        sim.set_callback_replies(device, *replies)
