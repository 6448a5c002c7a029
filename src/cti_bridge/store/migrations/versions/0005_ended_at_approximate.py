"""A call's end can be an estimate: ``calls.ended_at_approximate``.

A call that was gone from the PBX's channel list at a resync (the link was down when it
ended), or that a restarted daemon closed because the PBX no longer had it, has an
``ended_at`` the daemon estimated; the flag says so.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(
            sa.Column(
                "ended_at_approximate", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("ended_at_approximate")
