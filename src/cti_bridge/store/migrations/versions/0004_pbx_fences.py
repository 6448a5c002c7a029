"""The PBXs' fencing tokens: who owns each PBX, as the writes that matter check it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cti_bridge.store.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pbx_fences",
        sa.Column("pbx", sa.String(length=64), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("granted_at", cti_bridge.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pbx", name=op.f("pk_pbx_fences")),
    )


def downgrade() -> None:
    op.drop_table("pbx_fences")
