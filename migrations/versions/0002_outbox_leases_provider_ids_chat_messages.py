"""outbox leases, provider ids, chat messages

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import bot.store


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Columns added to existing rows get server defaults: a reply already queued leaves at once.
    op.create_table('chat_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.BigInteger(), nullable=False),
    sa.Column('at', bot.store.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chat_messages_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_chat_messages_contact_id'), ['contact_id'], unique=False)

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reachable', sa.Boolean(), nullable=False, server_default=sa.true()))

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_at', bot.store.UTCDateTime(timezone=True), nullable=False, server_default=sa.func.now()))
        batch_op.add_column(sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('lease_until', bot.store.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('in_doubt', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('delivery', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('error_code', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.drop_index(batch_op.f('ix_outbox_pending'))
        batch_op.create_index('ix_outbox_pending', ['status', 'next_attempt_at', 'priority', 'id'], unique=False)
        batch_op.create_index('ix_outbox_contact_order', ['contact_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_provider_id'), ['provider_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_provider_id'))
        batch_op.drop_index('ix_outbox_contact_order')
        batch_op.drop_index('ix_outbox_pending')
        batch_op.create_index(batch_op.f('ix_outbox_pending'), ['status', 'priority', 'id'], unique=False)
        batch_op.drop_column('error_code')
        batch_op.drop_column('delivery')
        batch_op.drop_column('provider_id')
        batch_op.drop_column('in_doubt')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('next_attempt_at')

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('reachable')

    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chat_messages_contact_id'))
        batch_op.drop_index(batch_op.f('ix_chat_messages_at'))

    op.drop_table('chat_messages')

