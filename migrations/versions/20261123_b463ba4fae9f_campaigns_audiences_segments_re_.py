"""campaigns: audiences, segments, re-engagement, message settings

Revision ID: b463ba4fae9f
Revises: a6ede64c7f0d
Create Date: 2026-11-23 07:20:11.017428
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import portal.db

revision = 'b463ba4fae9f'
down_revision = 'a6ede64c7f0d'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('message_settings',
    sa.Column('kind', sa.String(length=32), nullable=False, server_default='notice'),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('email', sa.Boolean(), nullable=False),
    sa.Column('lead_days', sa.Integer(), nullable=False),
    sa.Column('updated_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('kind', name=op.f('pk_message_settings'))
    )
    op.create_table('segments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('match', sa.String(length=3), nullable=False),
    sa.Column('rules', sa.JSON(), nullable=False),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segments')),
    sa.UniqueConstraint('name', name=op.f('uq_segments_name'))
    )
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('segment_ids', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('tag_ids', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('lapse_days', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('last_scan_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('notify', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('updated_at', portal.db.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('activity_participations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('occasion', sa.String(length=40), nullable=False, server_default=''))
        batch_op.drop_constraint(batch_op.f('uq_activity_participations_activity_id_member_id'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_activity_participations_member_id'))
        batch_op.create_unique_constraint(batch_op.f('uq_activity_participations_activity_id_member_id_occasion'), ['activity_id', 'member_id', 'occasion'])

    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_grants_participation_id'), ['participation_id'], unique=False)

    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=32), nullable=False, server_default='notice'))
        batch_op.add_column(sa.Column('params', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('dedupe_key', sa.String(length=120), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_inbox_messages_member_id_dedupe_key'), ['member_id', 'dedupe_key'])



def downgrade() -> None:
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_inbox_messages_member_id_dedupe_key'), type_='unique')
        batch_op.drop_column('dedupe_key')
        batch_op.drop_column('params')
        batch_op.drop_column('kind')

    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_grants_participation_id'))

    with op.batch_alter_table('activity_participations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_activity_participations_activity_id_member_id_occasion'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_activity_participations_activity_id_member_id'), ['activity_id', 'member_id'])
        batch_op.create_index(batch_op.f('ix_activity_participations_member_id'), ['member_id'], unique=False)
        batch_op.drop_column('occasion')

    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.drop_column('updated_at')
        batch_op.drop_column('notify')
        batch_op.drop_column('last_scan_on')
        batch_op.drop_column('lapse_days')
        batch_op.drop_column('tag_ids')
        batch_op.drop_column('segment_ids')

    op.drop_table('segments')
    op.drop_table('message_settings')
