"""customer imports

Revision ID: a400e3ff8b81
Revises: 2a690b1c8c63
Create Date: 2026-12-04 16:21:47.583862
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import portal.db

revision = 'a400e3ff8b81'
down_revision = '2a690b1c8c63'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customer_imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('stored_name', sa.String(length=64), nullable=True),
    sa.Column('policy', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('columns', sa.JSON(), nullable=False),
    sa.Column('rows_total', sa.Integer(), nullable=False),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('imported', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['operator_id'], ['staff_users.id'], name=op.f('fk_customer_imports_operator_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_imports'))
    )
    with op.batch_alter_table('customer_imports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_imports_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_customer_imports_status'), ['status'], unique=False)

    op.create_table('customer_import_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('row', sa.Integer(), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['customer_imports.id'], name=op.f('fk_customer_import_failures_import_id_customer_imports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_import_failures'))
    )
    with op.batch_alter_table('customer_import_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_import_failures_import_id'), ['import_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('customer_import_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_import_failures_import_id'))

    op.drop_table('customer_import_failures')
    with op.batch_alter_table('customer_imports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_imports_status'))
        batch_op.drop_index(batch_op.f('ix_customer_imports_created_at'))

    op.drop_table('customer_imports')
