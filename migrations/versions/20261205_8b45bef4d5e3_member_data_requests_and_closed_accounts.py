"""member data requests and closed accounts

Exports and closure requests (portal.rights); members.closed_at marks a closed account.

Revision ID: 8b45bef4d5e3
Revises: 3da7e6174c71
Create Date: 2026-12-05 07:37:58.790954
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import portal.db

revision = '8b45bef4d5e3'
down_revision = '3da7e6174c71'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('data_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('open_member_id', sa.Integer(), nullable=True),
    sa.Column('requested_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('processed_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('processed_by', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('outcome', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_data_requests_member_id_members')),
    sa.ForeignKeyConstraint(['processed_by'], ['staff_users.id'], name=op.f('fk_data_requests_processed_by_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_requests')),
    sa.UniqueConstraint('open_member_id', name=op.f('uq_data_requests_open_member_id'))
    )
    with op.batch_alter_table('data_requests', schema=None) as batch_op:
        batch_op.create_index('ix_data_requests_member', ['member_id', 'id'], unique=False)
        batch_op.create_index('ix_data_requests_status', ['status', 'kind', 'id'], unique=False)

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed_at', portal.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('closed_at')

    with op.batch_alter_table('data_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_data_requests_status')
        batch_op.drop_index('ix_data_requests_member')

    op.drop_table('data_requests')
