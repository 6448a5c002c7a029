"""Agreements for the callback dialer (queue, flagged, disposition, due and next-attempt
times, origin, their history), attempts' PBX ids, and contacts that are not calls.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cti_bridge.store.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("disposition", sa.String(length=32), nullable=True),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("created_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_contacts_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_contacts_operator_id_operators"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contacts_customer_id_at"), ["customer_id", "at"], unique=False
        )

    op.create_table(
        "agreement_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agreement_id"],
            ["agreements.id"],
            name=op.f("fk_agreement_events_agreement_id_agreements"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_agreement_events_operator_id_operators"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agreement_events")),
    )
    with op.batch_alter_table("agreement_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_agreement_events_agreement_id_at"), ["agreement_id", "at"], unique=False
        )

    with op.batch_alter_table("agreement_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pbx", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("channel_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("action_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("detail", sa.String(length=256), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_agreement_attempts_channel_id"), ["channel_id"], unique=False
        )

    with op.batch_alter_table("agreements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queue", sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column("flagged", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("disposition", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("closed_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("origin", sa.String(length=16), server_default="operator", nullable=False)
        )
        batch_op.add_column(
            sa.Column("due_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "next_attempt_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.create_index(
            batch_op.f("ix_agreements_next_attempt_at"), ["next_attempt_at"], unique=False
        )
    # Agreements made before: an open callback with a number to call falls due as
    # first_due() has a new one fall due, at its window's start, else when it was made;
    # the dialer's policy (hours, deadline, attempts) decides from there. Other kinds
    # are never dialled and keep no due_at they were not given.
    op.execute(
        "UPDATE agreements SET due_at = COALESCE(window_start, created_at),"
        " next_attempt_at = COALESCE(window_start, created_at)"
        " WHERE status = 'open' AND kind = 'callback' AND callback_number IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("agreements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agreements_next_attempt_at"))
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("due_at")
        batch_op.drop_column("origin")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("disposition")
        batch_op.drop_column("flagged")
        batch_op.drop_column("queue")

    with op.batch_alter_table("agreement_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agreement_attempts_channel_id"))
        batch_op.drop_column("detail")
        batch_op.drop_column("action_id")
        batch_op.drop_column("channel_id")
        batch_op.drop_column("pbx")

    with op.batch_alter_table("agreement_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agreement_events_agreement_id_at"))

    op.drop_table("agreement_events")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_customer_id_at"))

    op.drop_table("contacts")
