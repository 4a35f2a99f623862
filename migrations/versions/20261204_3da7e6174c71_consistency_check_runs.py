"""consistency check runs

Revision ID: 3da7e6174c71
Revises: a400e3ff8b81
Create Date: 2026-12-04 18:34:27.913614
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import portal.db

revision = '3da7e6174c71'
down_revision = 'a400e3ff8b81'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('consistency_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trigger', sa.String(length=10), nullable=False),
    sa.Column('daily_on', sa.Date(), nullable=True),
    sa.Column('started_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('checked', sa.JSON(), nullable=False),
    sa.Column('mismatch_count', sa.Integer(), nullable=False),
    sa.Column('mismatches', sa.JSON(), nullable=False),
    sa.Column('reported_to', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consistency_runs')),
    sa.UniqueConstraint('daily_on', name=op.f('uq_consistency_runs_daily_on'))
    )


def downgrade() -> None:
    op.drop_table('consistency_runs')
