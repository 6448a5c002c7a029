"""Initial schema: calls, accounts, customers, agreements.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cti_bridge.store.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_ref", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("company", sa.String(length=256), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("knowledge_level", sa.String(length=32), nullable=True),
        sa.Column("tier", sa.String(length=32), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_customers_external_ref")),
    )
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    op.create_index(
        op.f("ix_login_attempts_username_source_at"), "login_attempts", ["username", "source", "at"]
    )

    op.create_table(
        "operators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "password_changed_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("username", name=op.f("uq_operators_username")),
    )
    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("code", name=op.f("uq_products_code")),
    )
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pbx", sa.String(length=64), nullable=False),
        sa.Column("linkedid", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("caller_number", sa.String(length=32), nullable=True),
        sa.Column("caller_number_raw", sa.String(length=128), nullable=True),
        sa.Column("caller_name", sa.String(length=512), nullable=True),
        sa.Column("caller_withheld", sa.Boolean(), nullable=False),
        sa.Column("dialled", sa.String(length=128), nullable=True),
        sa.Column("queue", sa.String(length=128), nullable=True),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("started_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "queue_joined_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("answered_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "wait_ended_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("ended_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("wait_seconds", sa.Float(), nullable=True),
        sa.Column("talk_seconds", sa.Float(), nullable=True),
        sa.Column("answered_by_device", sa.String(length=128), nullable=True),
        sa.Column("answered_by_operator_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("queue_result", sa.String(length=16), nullable=True),
        sa.Column("hangup_cause", sa.Integer(), nullable=True),
        sa.Column("hangup_cause_text", sa.String(length=128), nullable=True),
        sa.Column("hung_up_by", sa.String(length=16), nullable=True),
        sa.Column("agreement_ref", sa.String(length=64), nullable=True),
        sa.Column("agreement_id", sa.Integer(), nullable=True),
        sa.Column("originate_action_id", sa.String(length=128), nullable=True),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("disposition", sa.String(length=32), nullable=True),
        sa.Column("annotated_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("annotated_by_operator_id", sa.Integer(), nullable=True),
        sa.Column("created_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotated_by_operator_id"],
            ["operators.id"],
            name=op.f("fk_calls_annotated_by_operator_id_operators"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["answered_by_operator_id"],
            ["operators.id"],
            name=op.f("fk_calls_answered_by_operator_id_operators"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_calls_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("pbx", "linkedid", name=op.f("uq_calls_pbx_linkedid")),
    )
    op.create_index(op.f("ix_calls_agreement_id"), "calls", ["agreement_id"])
    op.create_index(
        op.f("ix_calls_answered_by_operator_id_started_at"),
        "calls",
        ["answered_by_operator_id", "started_at"],
    )
    op.create_index(
        op.f("ix_calls_caller_number_started_at"), "calls", ["caller_number", "started_at"]
    )
    op.create_index(op.f("ix_calls_customer_id_started_at"), "calls", ["customer_id", "started_at"])
    op.create_index(op.f("ix_calls_queue_started_at"), "calls", ["queue", "started_at"])
    op.create_index(op.f("ix_calls_started_at"), "calls", ["started_at"])

    op.create_table(
        "contracts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("covered", sa.JSON(), nullable=False),
        sa.Column("service_level_hours", sa.Integer(), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_contracts_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_contracts_product_id_products"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contracts")),
        sa.UniqueConstraint("reference", name=op.f("uq_contracts_reference")),
    )
    op.create_index(op.f("ix_contracts_customer_id"), "contracts", ["customer_id"])
    op.create_index(op.f("ix_contracts_product_id"), "contracts", ["product_id"])

    op.create_table(
        "customer_numbers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("raw", sa.String(length=64), nullable=True),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_numbers_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_numbers")),
        sa.UniqueConstraint("number", name=op.f("uq_customer_numbers_number")),
    )
    op.create_index(op.f("ix_customer_numbers_customer_id"), "customer_numbers", ["customer_id"])

    op.create_table(
        "customer_products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=128), nullable=True),
        sa.Column("since", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_products_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_customer_products_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_products")),
    )
    op.create_index(op.f("ix_customer_products_customer_id"), "customer_products", ["customer_id"])
    op.create_index(op.f("ix_customer_products_product_id"), "customer_products", ["product_id"])

    op.create_table(
        "operator_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=128), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("bound_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_operator_devices_operator_id_operators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_devices")),
        sa.UniqueConstraint("device", name=op.f("uq_operator_devices_device")),
    )
    op.create_index(op.f("ix_operator_devices_operator_id"), "operator_devices", ["operator_id"])

    op.create_table(
        "scripts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_operator_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_operator_id"],
            ["operators.id"],
            name=op.f("fk_scripts_created_by_operator_id_operators"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_scripts_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scripts")),
        sa.UniqueConstraint(
            "product_id", "name", "version", name=op.f("uq_scripts_product_id_name_version")
        ),
    )
    op.create_index(op.f("ix_scripts_product_id"), "scripts", ["product_id"])

    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_sessions_operator_id_operators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sessions_token_hash")),
    )
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"])
    op.create_index(op.f("ix_sessions_operator_id"), "sessions", ["operator_id"])

    op.create_table(
        "agreements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("owner_operator_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("deadline", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("callback_number", sa.String(length=32), nullable=True),
        sa.Column("window_start", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("window_end", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_operator_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_agreements_call_id_calls"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_operator_id"],
            ["operators.id"],
            name=op.f("fk_agreements_created_by_operator_id_operators"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_agreements_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_operator_id"],
            ["operators.id"],
            name=op.f("fk_agreements_owner_operator_id_operators"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agreements")),
    )
    op.create_index(op.f("ix_agreements_call_id"), "agreements", ["call_id"])
    op.create_index(
        op.f("ix_agreements_callback_number_status"),
        "agreements",
        ["callback_number", "status"],
    )
    op.create_index(op.f("ix_agreements_customer_id"), "agreements", ["customer_id"])
    op.create_index(
        op.f("ix_agreements_owner_operator_id_status"),
        "agreements",
        ["owner_operator_id", "status"],
    )
    op.create_index(op.f("ix_agreements_status_deadline"), "agreements", ["status", "deadline"])

    # calls and agreements refer to each other: the second reference comes afterwards.
    with op.batch_alter_table("calls") as batch_op:
        batch_op.create_foreign_key(
            op.f("fk_calls_agreement_id_agreements"),
            "agreements",
            ["agreement_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_table(
        "call_rings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=False),
        sa.Column("device", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=128), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("queue", sa.String(length=128), nullable=True),
        sa.Column("member_name", sa.String(length=128), nullable=True),
        sa.Column("started_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.Column("outside", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_call_rings_call_id_calls"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_call_rings_operator_id_operators"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_rings")),
        sa.UniqueConstraint("call_id", "uniqueid", name=op.f("uq_call_rings_call_id_uniqueid")),
    )
    op.create_index(op.f("ix_call_rings_operator_id"), "call_rings", ["operator_id"])

    op.create_table(
        "call_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=128), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("started_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_call_segments_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_call_segments_operator_id_operators"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_segments")),
        sa.UniqueConstraint(
            "call_id",
            "channel",
            "started_at",
            name=op.f("uq_call_segments_call_id_channel_started_at"),
        ),
    )
    op.create_index(op.f("ix_call_segments_operator_id"), "call_segments", ["operator_id"])

    op.create_table(
        "call_transfers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("from_device", sa.String(length=128), nullable=True),
        sa.Column("from_operator_id", sa.Integer(), nullable=True),
        sa.Column("to_target", sa.String(length=128), nullable=True),
        sa.Column("to_operator_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_call_transfers_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["from_operator_id"],
            ["operators.id"],
            name=op.f("fk_call_transfers_from_operator_id_operators"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["to_operator_id"],
            ["operators.id"],
            name=op.f("fk_call_transfers_to_operator_id_operators"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_transfers")),
        sa.UniqueConstraint(
            "call_id", "kind", "at", name=op.f("uq_call_transfers_call_id_kind_at")
        ),
    )
    op.create_table(
        "agreement_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("node", sa.String(length=64), nullable=True),
        sa.Column("started_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["agreement_id"],
            ["agreements.id"],
            name=op.f("fk_agreement_attempts_agreement_id_agreements"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_agreement_attempts_call_id_calls"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_agreement_attempts_operator_id_operators"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agreement_attempts")),
        sa.UniqueConstraint(
            "agreement_id", "number", name=op.f("uq_agreement_attempts_agreement_id_number")
        ),
    )
    op.create_index(op.f("ix_agreement_attempts_call_id"), "agreement_attempts", ["call_id"])
    op.create_index(
        "uq_agreement_attempts_open",
        "agreement_attempts",
        ["agreement_id"],
        unique=True,
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_agreement_attempts_open", table_name="agreement_attempts")
    op.drop_index(op.f("ix_agreement_attempts_call_id"), table_name="agreement_attempts")

    op.drop_table("agreement_attempts")
    op.drop_table("call_transfers")
    op.drop_index(op.f("ix_call_segments_operator_id"), table_name="call_segments")

    op.drop_table("call_segments")
    op.drop_index(op.f("ix_call_rings_operator_id"), table_name="call_rings")

    op.drop_table("call_rings")
    with op.batch_alter_table("calls") as batch_op:
        batch_op.drop_constraint(op.f("fk_calls_agreement_id_agreements"), type_="foreignkey")
    op.drop_index(op.f("ix_agreements_status_deadline"), table_name="agreements")
    op.drop_index(op.f("ix_agreements_owner_operator_id_status"), table_name="agreements")
    op.drop_index(op.f("ix_agreements_customer_id"), table_name="agreements")
    op.drop_index(op.f("ix_agreements_call_id"), table_name="agreements")
    op.drop_index(op.f("ix_agreements_callback_number_status"), table_name="agreements")

    op.drop_table("agreements")
    op.drop_index(op.f("ix_sessions_operator_id"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_expires_at"), table_name="sessions")

    op.drop_table("sessions")
    op.drop_index(op.f("ix_scripts_product_id"), table_name="scripts")

    op.drop_table("scripts")
    op.drop_index(op.f("ix_operator_devices_operator_id"), table_name="operator_devices")

    op.drop_table("operator_devices")
    op.drop_index(op.f("ix_customer_products_product_id"), table_name="customer_products")
    op.drop_index(op.f("ix_customer_products_customer_id"), table_name="customer_products")

    op.drop_table("customer_products")
    op.drop_index(op.f("ix_customer_numbers_customer_id"), table_name="customer_numbers")

    op.drop_table("customer_numbers")
    op.drop_index(op.f("ix_contracts_product_id"), table_name="contracts")
    op.drop_index(op.f("ix_contracts_customer_id"), table_name="contracts")

    op.drop_table("contracts")
    op.drop_index(op.f("ix_calls_started_at"), table_name="calls")
    op.drop_index(op.f("ix_calls_queue_started_at"), table_name="calls")
    op.drop_index(op.f("ix_calls_customer_id_started_at"), table_name="calls")
    op.drop_index(op.f("ix_calls_caller_number_started_at"), table_name="calls")
    op.drop_index(op.f("ix_calls_answered_by_operator_id_started_at"), table_name="calls")
    op.drop_index(op.f("ix_calls_agreement_id"), table_name="calls")

    op.drop_table("calls")
    op.drop_table("products")
    op.drop_table("operators")
    op.drop_index(op.f("ix_login_attempts_username_source_at"), table_name="login_attempts")

    op.drop_table("login_attempts")
    op.drop_table("customers")
