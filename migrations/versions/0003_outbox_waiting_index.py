"""outbox: a partial index of the rows still waiting

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = sa.text("status IN ('queued', 'sending')")


def upgrade() -> None:
    # The dispatcher asks, for each candidate, whether an earlier message of hers is still waiting;
    # without this, PostgreSQL with stale statistics scanned her whole history for every claim.
    op.create_index(
        "ix_outbox_waiting", "outbox", ["contact_id", "id"], postgresql_where=WAITING, sqlite_where=WAITING
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_waiting", table_name="outbox")
