"""coupons: issue batches by source

Revision ID: f35501669a9c
Revises: 8f7c10a77d29
Create Date: 2026-11-23 08:00:00.546635
"""
from __future__ import annotations

from alembic import op

revision = 'f35501669a9c'
down_revision = '8f7c10a77d29'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('coupon_issue_batches', schema=None) as batch_op:
        batch_op.create_index('ix_coupon_issue_batches_source', ['source', 'source_ref'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('coupon_issue_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_coupon_issue_batches_source')

