"""outbox: a notification on channel hamroh_outbox when a row may have become due and the dispatcher sleeps
(PostgreSQL)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

The dispatcher sleeps until there is something to send rather than asking the table five times a second;
this trigger is what wakes it, in whichever process it runs (bot.outbound.wakeup). It fires once per
statement, not per row, and only for statements that write a row (INSERT) or set when one leaves (UPDATE
OF next_attempt_at: held rows released, safe hours changed, a row given back): claiming a row and recording
that it was sent set neither, so the dispatcher's own work wakes nobody.

It notifies only while a dispatcher sleeps: a sleeping dispatcher holds the advisory lock SLEEPING
exclusively, so the trigger's try for it, shared, fails. An awake one (sending, or about to look) holds
nothing, the try succeeds, and the lock is held shared until the writer commits: a dispatcher going to
sleep waits for it, then looks at the table once more, so nothing written meanwhile is missed. Why not
notify always: PostgreSQL serialises the commits of every transaction that notified, each through its
commit to disk; a busy helpline's turns, each notifying, would commit one at a time (measured on 2 cores:
16 writers at once committed 900 rows a second instead of 2,100).

SQLite: nothing to do (one process; the dispatcher is woken in that process).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLEEPING = 7519336890038020612  # bot.leases.lock_key("hamroh:outbox:asleep"), as bot.outbound.wakeup holds it


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION hamroh_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT pg_try_advisory_xact_lock_shared({SLEEPING}) THEN
                PERFORM pg_notify('hamroh_outbox', '');
            END IF;
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
