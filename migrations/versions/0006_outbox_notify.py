"""outbox: a notification on channel hamroh_outbox when a row may have become due (PostgreSQL)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

The dispatcher sleeps until there is something to send rather than asking the table five times a second;
this trigger is what wakes it, in whichever process it runs (bot.outbound.wakeup). It fires once per
statement, not per row, and only for statements that write a row (INSERT) or set when one leaves (UPDATE
OF next_attempt_at: held rows released, safe hours changed, a row given back): claiming a row and recording
that it was sent set neither, so the dispatcher's own work wakes nobody. NOTIFY is sent at commit, and
notifications of one transaction on one channel with one payload are merged into one: a turn that writes
three replies costs one notification and no round trip of its own.

SQLite: nothing to do (one process; the dispatcher is woken in that process).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION hamroh_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('hamroh_outbox', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT OR UPDATE OF next_attempt_at ON outbox"
        " FOR EACH STATEMENT EXECUTE FUNCTION hamroh_outbox_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS hamroh_outbox_notify()")
