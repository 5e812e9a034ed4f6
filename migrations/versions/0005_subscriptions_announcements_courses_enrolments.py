"""subscriptions, announcements, courses and enrolments

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import bot.store


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('announcements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('text_tg', sa.Text(), nullable=False),
    sa.Column('text_ru', sa.Text(), nullable=False),
    sa.Column('audience', sa.Text(), nullable=False),
    sa.Column('audience_size', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('approved_by', sa.Integer(), nullable=True),
    sa.Column('send_at', bot.store.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('override_reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('created_at', bot.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('enqueued_at', bot.store.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', bot.store.tables.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['approved_by'], ['staff.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['created_by'], ['staff.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('announcements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_announcements_send_at'), ['send_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_announcements_status'), ['status'], unique=False)

    op.create_table('enrolments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('details', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', bot.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', bot.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reminded_at', bot.store.tables.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['course_id'], ['courses.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('course_id', 'contact_id', name='uq_enrolments_course_contact')
    )
    with op.batch_alter_table('enrolments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrolments_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('ix_enrolments_course_status', ['course_id', 'status', 'id'], unique=False)

    op.create_table('request_counts',
    sa.Column('month', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('topic', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('lang', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('district', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('month', 'topic', 'channel', 'lang', 'district')
    )
    op.create_table('request_marginals',
    sa.Column('month', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('month', 'key', 'value')
    )
    op.create_table('request_months',
    sa.Column('month', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('women', sa.Integer(), nullable=False),
    sa.Column('rolled_at', bot.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('month')
    )
    op.create_table('subscriptions',
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('topic', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', bot.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('contact_id', 'topic')
    )
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscriptions_topic'), ['topic'], unique=False)
    # Before topics, "subscribed" meant news of everything: those women keep every topic.
    for topic in ('training', 'legal_aid', 'health', 'events'):
        op.execute(
            sa.text(
                'INSERT INTO subscriptions (contact_id, topic, created_at) '
                'SELECT id, :topic, created_at FROM contacts WHERE subscribed'
            ).bindparams(topic=topic)
        )

    op.create_table('announcement_recipients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('announcement_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('lang', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('updated_at', bot.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['announcement_id'], ['announcements.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('announcement_id', 'contact_id', name='uq_announcement_recipient')
    )
    with op.batch_alter_table('announcement_recipients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_announcement_recipients_outbox_id'), ['outbox_id'], unique=False)
        batch_op.create_index('ix_announcement_recipients_outcome', ['announcement_id', 'outcome'], unique=False)

    op.create_table('announcement_texts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('announcement_id', sa.Integer(), nullable=False),
    sa.Column('lang', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('script', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['announcement_id'], ['announcements.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('announcement_id', 'lang', 'script', name='uq_announcement_texts')
    )
    with op.batch_alter_table('announcement_texts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_announcement_texts_announcement_id'), ['announcement_id'], unique=False)

    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('description_tg', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('description_ru', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('place', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('ends_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('capacity', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('partner', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('partner_fields', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default='phone'))
        batch_op.add_column(sa.Column('updated_at', bot.store.tables.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('announcement_text_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_outbox_announcement_text', 'announcement_texts', ['announcement_text_id'], ['id'], ondelete='SET NULL')
    op.create_index(
        'ix_outbox_queued', 'outbox', ['priority', 'id'],
        postgresql_where=sa.text("status = 'queued'"), sqlite_where=sa.text("status = 'queued'"),
    )



def downgrade() -> None:
    op.drop_table('request_months')
    op.drop_table('request_marginals')
    op.drop_table('request_counts')
    op.drop_index('ix_outbox_queued', table_name='outbox')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint('fk_outbox_announcement_text', type_='foreignkey')
        batch_op.drop_column('announcement_text_id')

    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.drop_column('updated_at')
        batch_op.drop_column('partner_fields')
        batch_op.drop_column('partner')
        batch_op.drop_column('capacity')
        batch_op.drop_column('ends_on')
        batch_op.drop_column('place')
        batch_op.drop_column('description_ru')
        batch_op.drop_column('description_tg')

    with op.batch_alter_table('announcement_texts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_announcement_texts_announcement_id'))

    op.drop_table('announcement_texts')
    with op.batch_alter_table('announcement_recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_announcement_recipients_outcome')
        batch_op.drop_index(batch_op.f('ix_announcement_recipients_outbox_id'))

    op.drop_table('announcement_recipients')
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscriptions_topic'))

    op.drop_table('subscriptions')
    with op.batch_alter_table('enrolments', schema=None) as batch_op:
        batch_op.drop_index('ix_enrolments_course_status')
        batch_op.drop_index(batch_op.f('ix_enrolments_contact_id'))

    op.drop_table('enrolments')
    with op.batch_alter_table('announcements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_announcements_status'))
        batch_op.drop_index(batch_op.f('ix_announcements_send_at'))

    op.drop_table('announcements')
