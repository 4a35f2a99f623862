"""student id verification

Revision ID: 2a690b1c8c63
Revises: c53f2c7156e4
Create Date: 2026-12-04 15:50:30.990473
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import portal.db

revision = '2a690b1c8c63'
down_revision = 'c53f2c7156e4'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('student_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('validity_months', sa.Integer(), nullable=False),
    sa.Column('tag_id', sa.Integer(), nullable=True),
    sa.Column('segment_id', sa.Integer(), nullable=True),
    sa.Column('page_title', sa.String(length=120), nullable=False),
    sa.Column('page_intro', sa.Text(), nullable=False),
    sa.Column('perks', sa.Text(), nullable=False),
    sa.Column('gift_kind', sa.String(length=8), nullable=False),
    sa.Column('gift_template_id', sa.Integer(), nullable=True),
    sa.Column('gift_package_id', sa.Integer(), nullable=True),
    sa.Column('gift_rule', sa.String(length=8), nullable=False),
    sa.Column('reminder_days', sa.Integer(), nullable=False),
    sa.Column('photo_retention_days', sa.Integer(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['gift_package_id'], ['coupon_packages.id'], name=op.f('fk_student_settings_gift_package_id_coupon_packages')),
    sa.ForeignKeyConstraint(['gift_template_id'], ['coupon_templates.id'], name=op.f('fk_student_settings_gift_template_id_coupon_templates')),
    sa.ForeignKeyConstraint(['operator_id'], ['staff_users.id'], name=op.f('fk_student_settings_operator_id_staff_users')),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_student_settings_segment_id_segments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_student_settings_tag_id_tags'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_student_settings'))
    )
    op.create_table('student_verifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('pending_member_id', sa.Integer(), nullable=True),
    sa.Column('school', sa.String(length=120), nullable=False),
    sa.Column('student_number', sa.String(length=40), nullable=False),
    sa.Column('graduation_on', sa.Date(), nullable=False),
    sa.Column('photo', sa.String(length=80), nullable=True),
    sa.Column('consented_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('submitted_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('valid_until_on', sa.Date(), nullable=True),
    sa.Column('expires_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reminded_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expired_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('photo_deleted_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('gift_key', sa.String(length=60), nullable=True),
    sa.Column('gift_error', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['decided_by'], ['staff_users.id'], name=op.f('fk_student_verifications_decided_by_staff_users')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_student_verifications_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_student_verifications')),
    sa.UniqueConstraint('pending_member_id', name=op.f('uq_student_verifications_pending_member_id'))
    )
    with op.batch_alter_table('student_verifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_student_verifications_decided_at'), ['decided_at'], unique=False)
        batch_op.create_index('ix_student_verifications_member', ['member_id', 'id'], unique=False)
        batch_op.create_index('ix_student_verifications_status', ['status', 'expires_at'], unique=False)

    with op.batch_alter_table('benefit_packages', schema=None) as batch_op:
        # Packages already made stay open to everyone.
        batch_op.add_column(sa.Column('students_only', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))



def downgrade() -> None:
    with op.batch_alter_table('benefit_packages', schema=None) as batch_op:
        batch_op.drop_column('students_only')

    with op.batch_alter_table('student_verifications', schema=None) as batch_op:
        batch_op.drop_index('ix_student_verifications_status')
        batch_op.drop_index('ix_student_verifications_member')
        batch_op.drop_index(batch_op.f('ix_student_verifications_decided_at'))

    op.drop_table('student_verifications')
    op.drop_table('student_settings')
