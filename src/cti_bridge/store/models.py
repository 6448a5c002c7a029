"""The schema, for the whole product: calls, accounts, customers, agreements.

It is built now for work that comes later (screen-pop, agreements and callbacks,
supervision), so those add lookups rather than migrations. The Alembic revisions under
``migrations/`` are the truth for existing databases; a test checks that these models
and the migrations agree.

Call children (rings, segments, transfers) each have a natural key, so replaying the
call model's events can never add a second row for the same thing. Operators are
resolved when a record is written and stored as ids next to the device, so the API
answers "who rang" without joining per ring, and a device later given to somebody else
does not rewrite history.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from cti_bridge.vocabulary import (
    AGREEMENT_KINDS,
    AGREEMENT_STATUSES,
    ATTEMPT_OUTCOMES,
    DISPOSITIONS,
    ROLES,
)

from .types import UTCDateTime

__all__ = [
    "AGREEMENT_KINDS",
    "AGREEMENT_STATUSES",
    "ATTEMPT_OUTCOMES",
    "DISPOSITIONS",
    "ROLES",
    "Agreement",
    "AgreementAttempt",
    "AgreementEvent",
    "Base",
    "CallNoteChange",
    "CallRecord",
    "CallRing",
    "CallSegment",
    "CallTransfer",
    "Contact",
    "Contract",
    "Customer",
    "CustomerNumber",
    "CustomerProduct",
    "LoginAttempt",
    "Operator",
    "OperatorDevice",
    "OperatorSession",
    "PbxFence",
    "Product",
    "Script",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}


def _fk(target: str, ondelete: str = "SET NULL", **kwargs: Any) -> ForeignKey:
    return ForeignKey(target, ondelete=ondelete, **kwargs)


# --- operators and their access -------------------------------------------------------


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]

    devices: Mapped[list[OperatorDevice]] = relationship(
        back_populates="operator", order_by="OperatorDevice.device"
    )


class OperatorDevice(Base):
    """A phone (channel prefix such as ``PJSIP/1001``) and the operator it belongs to."""

    __tablename__ = "operator_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    device: Mapped[str] = mapped_column(String(128), unique=True)
    operator_id: Mapped[int] = mapped_column(_fk("operators.id", "CASCADE"), index=True)
    bound_at: Mapped[datetime]

    operator: Mapped[Operator] = relationship(back_populates="devices")


class OperatorSession(Base):
    """A login token. Only its SHA-256 is stored: a leaked table grants nobody access."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[int] = mapped_column(_fk("operators.id", "CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]


class LoginAttempt(Base):
    """Failed logins per username and source, for rate limiting (pruned as they age)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index(None, "username", "source", "at"), Index(None, "source", "at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


# --- customers, what they own and what they are entitled to ----------------------------


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The customer's key in the system we import from; makes re-imports idempotent.
    external_ref: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    company: Mapped[str | None] = mapped_column(String(256))
    language: Mapped[str | None] = mapped_column(String(16))
    knowledge_level: Mapped[str | None] = mapped_column(String(32))
    tier: Mapped[str | None] = mapped_column(String(32))
    timezone: Mapped[str | None] = mapped_column(String(64))  # IANA; callback windows
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    numbers: Mapped[list[CustomerNumber]] = relationship(
        back_populates="customer", order_by="CustomerNumber.id"
    )


class CustomerNumber(Base):
    __tablename__ = "customer_numbers"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(_fk("customers.id", "CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)  # E.164: the lookup key
    raw: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(64))

    customer: Mapped[Customer] = relationship(back_populates="numbers")


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(256))


class CustomerProduct(Base):
    __tablename__ = "customer_products"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(_fk("customers.id", "CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(_fk("products.id", "CASCADE"), index=True)
    serial: Mapped[str | None] = mapped_column(String(128))
    since: Mapped[date | None] = mapped_column(Date)


class Contract(Base):
    """What a customer is entitled to: which interventions, how fast, from when to when."""

    __tablename__ = "contracts"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str | None] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(_fk("customers.id", "CASCADE"), index=True)
    #: None: the contract covers all of the customer's products.
    product_id: Mapped[int | None] = mapped_column(_fk("products.id"), index=True)
    #: Interventions covered, e.g. ["phone", "technician", "repair", "replacement"].
    covered: Mapped[list[str]] = mapped_column(JSON)
    service_level_hours: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)  # None: open-ended
    notes: Mapped[str | None] = mapped_column(Text)


class Script(Base):
    """One version of a diagnosis script. A change adds a version; old ones stay readable
    because call notes and agreements may refer to what the operator saw then."""

    __tablename__ = "scripts"
    __table_args__ = (UniqueConstraint("product_id", "name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(_fk("products.id", "CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(256))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by_operator_id: Mapped[int | None] = mapped_column(_fk("operators.id"))


# --- agreements and their attempts -----------------------------------------------------


class Agreement(Base):
    __tablename__ = "agreements"
    __table_args__ = (
        Index(None, "status", "deadline"),
        Index(None, "owner_operator_id", "status"),
        # An unknown caller's pop lists the open agreements to call that number back.
        Index(None, "callback_number", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(_fk("customers.id"), index=True)
    #: The call during which the agreement was made.
    call_id: Mapped[int | None] = mapped_column(_fk("calls.id"), index=True)
    owner_operator_id: Mapped[int | None] = mapped_column(_fk("operators.id"))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")
    deadline: Mapped[datetime | None]
    callback_number: Mapped[str | None] = mapped_column(String(32))  # E.164
    window_start: Mapped[datetime | None]
    window_end: Mapped[datetime | None]
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    created_by_operator_id: Mapped[int | None] = mapped_column(_fk("operators.id"))
    #: The queue whose operators may take a callback after the owner's grace period.
    queue: Mapped[str | None] = mapped_column(String(128))
    #: True once a supervisor must look at it (attempts or deadline ran out).
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: How it was closed (``AGREEMENT_DISPOSITIONS``), set with status done/cancelled.
    disposition: Mapped[str | None] = mapped_column(String(32))
    closed_at: Mapped[datetime | None]
    #: ``operator`` (made in the console or the API) or ``missed_call`` (an abandoned
    #: queue call made it by itself).
    origin: Mapped[str] = mapped_column(String(16), default="operator", server_default="operator")
    #: When a callback first falls due (the owner's grace counts from it).
    due_at: Mapped[datetime | None]
    #: When the dialer looks at this callback next; null: nothing to dial (not a
    #: callback, closed, or an attempt under way). The scheduling pass reads this index.
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)

    attempts: Mapped[list[AgreementAttempt]] = relationship(
        back_populates="agreement", order_by="AgreementAttempt.number"
    )
    events: Mapped[list[AgreementEvent]] = relationship(
        back_populates="agreement", order_by="(AgreementEvent.at, AgreementEvent.id)"
    )


class AgreementEvent(Base):
    """The history of an agreement: made, changed, closed, each attempt, flagged."""

    __tablename__ = "agreement_events"
    __table_args__ = (Index(None, "agreement_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agreement_id: Mapped[int] = mapped_column(_fk("agreements.id", "CASCADE"))
    at: Mapped[datetime]
    #: ``created``, ``changed``, ``closed``, ``attempt_started``, ``attempt_ended``,
    #: ``flagged``, ``missed_call`` (another abandoned call joined it), ``reopened``.
    kind: Mapped[str] = mapped_column(String(32))
    #: Who did it; null for the dialer and the PBX.
    operator_id: Mapped[int | None] = mapped_column(_fk("operators.id"))
    #: What changed: ``{"field": [old, new], ...}``, or the facts of the event.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    agreement: Mapped[Agreement] = relationship(back_populates="events")


class AgreementAttempt(Base):
    """One try at a callback. At most one attempt per agreement is open (``ended_at`` null)
    at a time, enforced by the database, so two nodes can never dial one agreement twice."""

    __tablename__ = "agreement_attempts"
    __table_args__ = (
        UniqueConstraint("agreement_id", "number"),
        Index(
            "uq_agreement_attempts_open",
            "agreement_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    agreement_id: Mapped[int] = mapped_column(_fk("agreements.id", "CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, 3... per agreement
    operator_id: Mapped[int | None] = mapped_column(_fk("operators.id"))
    call_id: Mapped[int | None] = mapped_column(_fk("calls.id"), index=True)
    node: Mapped[str | None] = mapped_column(String(64))  # the cti-bridge node that dialled
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(32))
    #: The PBX it was dialled on, and the Originate's ids: ``channel_id`` is the
    #: operator leg's Uniqueid and the callback call's Linkedid, how the attempt is
    #: found on the PBX after a crash.
    pbx: Mapped[str | None] = mapped_column(String(64))
    channel_id: Mapped[str | None] = mapped_column(String(64), index=True)
    action_id: Mapped[str | None] = mapped_column(String(128))
    #: Why it ended so, in words (``OriginateResponse`` reason, the customer's DialStatus).
    detail: Mapped[str | None] = mapped_column(String(256))

    agreement: Mapped[Agreement] = relationship(back_populates="attempts")


# --- contacts that are not calls -------------------------------------------------------


class Contact(Base):
    """A mail, chat or visit with a customer, logged by an operator; in the customer's
    history beside calls."""

    __tablename__ = "contacts"
    __table_args__ = (Index(None, "customer_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(_fk("customers.id", "CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))  # CONTACT_CHANNELS
    at: Mapped[datetime]
    subject: Mapped[str | None] = mapped_column(String(256))
    notes: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))
    disposition: Mapped[str | None] = mapped_column(String(32))
    operator_id: Mapped[int | None] = mapped_column(_fk("operators.id"))
    created_at: Mapped[datetime]


# --- call records ----------------------------------------------------------------------


class CallRecord(Base):
    """One call: every channel sharing one Linkedid on one PBX.

    Model-owned columns are written by ``CallStore``; ``notes``, ``category`` and
    ``disposition`` belong to operators and the model's updates never touch them.
    """

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("pbx", "linkedid"),
        Index(None, "caller_number", "started_at"),
        Index(None, "answered_by_operator_id", "started_at"),
        Index(None, "customer_id", "started_at"),
        Index(None, "queue", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pbx: Mapped[str] = mapped_column(String(64))
    linkedid: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16))
    caller_number: Mapped[str | None] = mapped_column(String(32))  # E.164 or null
    caller_number_raw: Mapped[str | None] = mapped_column(String(128))
    caller_name: Mapped[str | None] = mapped_column(String(512))
    caller_withheld: Mapped[bool] = mapped_column(Boolean, default=False)
    dialled: Mapped[str | None] = mapped_column(String(128))
    queue: Mapped[str | None] = mapped_column(String(128))  # the first queue entered
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    started_at: Mapped[datetime] = mapped_column(index=True)
    queue_joined_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    wait_ended_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    #: The end was not seen (gone at a resync, or closed after a restart): ``ended_at``
    #: is an estimate.
    ended_at_approximate: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    wait_seconds: Mapped[float | None] = mapped_column(Float)
    talk_seconds: Mapped[float | None] = mapped_column(Float)
    answered_by_device: Mapped[str | None] = mapped_column(String(128))
    answered_by_operator_id: Mapped[int | None] = mapped_column(_fk("operators.id"))
    outcome: Mapped[str | None] = mapped_column(String(16))
    #: How the queue stay ended (answered, abandoned, timeout, exited): both of the
    #: latter are "abandoned" calls, supervision tells them apart.
    queue_result: Mapped[str | None] = mapped_column(String(16))
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    hangup_cause_text: Mapped[str | None] = mapped_column(String(128))
    hung_up_by: Mapped[str | None] = mapped_column(String(16))
    #: CTI_AGREEMENT_ID as the PBX reported it, and the agreement it names if it exists.
    agreement_ref: Mapped[str | None] = mapped_column(String(64))
    agreement_id: Mapped[int | None] = mapped_column(
        _fk("agreements.id", use_alter=True), index=True
    )
    originate_action_id: Mapped[str | None] = mapped_column(String(128))
    complete: Mapped[bool] = mapped_column(Boolean, default=True)
    customer_id: Mapped[int | None] = mapped_column(_fk("customers.id"))
    notes: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))
    disposition: Mapped[str | None] = mapped_column(String(32))
    annotated_at: Mapped[datetime | None]
    annotated_by_operator_id: Mapped[int | None] = mapped_column(_fk("operators.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    rings: Mapped[list[CallRing]] = relationship(
        back_populates="call", order_by="(CallRing.started_at, CallRing.id)"
    )
    segments: Mapped[list[CallSegment]] = relationship(
        back_populates="call", order_by="(CallSegment.started_at, CallSegment.id)"
    )
    transfers: Mapped[list[CallTransfer]] = relationship(
        back_populates="call", order_by="(CallTransfer.at, CallTransfer.id)"
    )


class CallRing(Base):
    """One attempt to ring one device; keyed by the rung channel's Uniqueid."""

    __tablename__ = "call_rings"
    __table_args__ = (UniqueConstraint("call_id", "uniqueid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(_fk("calls.id", "CASCADE"))
    uniqueid: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(128))
    operator_id: Mapped[int | None] = mapped_column(_fk("operators.id"), index=True)
    queue: Mapped[str | None] = mapped_column(String(128))
    member_name: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(String(16))
    #: The customer's phone on a callback, not an operator's: not listed in ``rang``.
    outside: Mapped[bool] = mapped_column(default=False, server_default=false())

    call: Mapped[CallRecord] = relationship(back_populates="rings")


class CallSegment(Base):
    """One device talking on the call; keyed by channel and start."""

    __tablename__ = "call_segments"
    __table_args__ = (UniqueConstraint("call_id", "channel", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(_fk("calls.id", "CASCADE"))
    device: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(128))
    operator_id: Mapped[int | None] = mapped_column(_fk("operators.id"), index=True)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]

    call: Mapped[CallRecord] = relationship(back_populates="segments")


class CallTransfer(Base):
    """A transfer; keyed by kind and instant (the target may become known later)."""

    __tablename__ = "call_transfers"
    __table_args__ = (UniqueConstraint("call_id", "kind", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(_fk("calls.id", "CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    from_device: Mapped[str | None] = mapped_column(String(128))
    from_operator_id: Mapped[int | None] = mapped_column(_fk("operators.id"))
    to_target: Mapped[str | None] = mapped_column(String(128))  # device or extension
    to_operator_id: Mapped[int | None] = mapped_column(_fk("operators.id"))

    call: Mapped[CallRecord] = relationship(back_populates="transfers")


class CallNoteChange(Base):
    """One change an operator made to a call's notes, category or disposition: who, when,
    the old and the new value. Appended by ``CallQueries.patch_call``, never rewritten."""

    __tablename__ = "call_note_changes"
    __table_args__ = (Index(None, "call_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(_fk("calls.id", "CASCADE"))
    at: Mapped[datetime]
    operator_id: Mapped[int | None] = mapped_column(_fk("operators.id"))
    #: ``notes``, ``category`` or ``disposition``.
    field: Mapped[str] = mapped_column(String(16))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)


class PbxFence(Base):
    """Who owns a PBX, as the database knows it: the fencing token of the last grant of
    the PBX's lease (``lease.py``). Raised by each new owner before it acts, never
    lowered; every write that matters (call records, callback attempts) checks in its
    own transaction that its token is still this one (``store/fences.py``)."""

    __tablename__ = "pbx_fences"

    pbx: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[int] = mapped_column(BigInteger)
    owner: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime]
