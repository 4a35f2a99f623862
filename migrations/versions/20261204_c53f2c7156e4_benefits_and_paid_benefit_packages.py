"""benefits and paid benefit packages

Revision ID: c53f2c7156e4
Revises: bb7b8ef6d358
Create Date: 2026-12-04 15:44:16.077919
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import portal.db

revision = 'c53f2c7156e4'
down_revision = 'bb7b8ef6d358'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('benefit_package_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('validity_mode', sa.String(length=12), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['operator_id'], ['staff_users.id'], name=op.f('fk_benefit_package_settings_operator_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_benefit_package_settings'))
    )
    op.create_table('benefit_packages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('cover', sa.String(length=200), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('plan_ids', sa.JSON(), nullable=False),
    sa.Column('tier_ids', sa.JSON(), nullable=False),
    sa.Column('segment_ids', sa.JSON(), nullable=False),
    sa.Column('tag_ids', sa.JSON(), nullable=False),
    sa.Column('schedule', sa.JSON(), nullable=False),
    sa.Column('starts_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ends_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('refund_restricted', sa.Boolean(), nullable=False),
    sa.Column('agreement', sa.Text(), nullable=False),
    sa.Column('terms', sa.Text(), nullable=False),
    sa.Column('faq', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['operator_id'], ['staff_users.id'], name=op.f('fk_benefit_packages_operator_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_benefit_packages'))
    )
    op.create_table('benefits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('brief', sa.String(length=160), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('icon', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('plan_ids', sa.JSON(), nullable=False),
    sa.Column('tier_ids', sa.JSON(), nullable=False),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('activity_id', sa.Integer(), nullable=True),
    sa.Column('threshold_minor', sa.BigInteger(), nullable=True),
    sa.Column('off_minor', sa.BigInteger(), nullable=True),
    sa.Column('prices', sa.JSON(), nullable=False),
    sa.Column('discount_bp', sa.Integer(), nullable=True),
    sa.Column('multiplier_bp', sa.Integer(), nullable=True),
    sa.Column('restriction', sa.JSON(), nullable=False),
    sa.Column('exclusions', sa.JSON(), nullable=False),
    sa.Column('schedule', sa.JSON(), nullable=False),
    sa.Column('birthday_window', sa.String(length=5), nullable=True),
    sa.Column('tier_perks', sa.JSON(), nullable=False),
    sa.Column('extension_days', sa.Integer(), nullable=True),
    sa.Column('images', sa.JSON(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('discount_bp IS NULL OR (discount_bp > 0 AND discount_bp < 10000)', name=op.f('ck_benefits_discount_below_100_percent')),
    sa.CheckConstraint('multiplier_bp IS NULL OR multiplier_bp > 10000', name=op.f('ck_benefits_multiplier_above_one')),
    sa.ForeignKeyConstraint(['activity_id'], ['activities.id'], name=op.f('fk_benefits_activity_id_activities')),
    sa.ForeignKeyConstraint(['operator_id'], ['staff_users.id'], name=op.f('fk_benefits_operator_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_benefits'))
    )
    with op.batch_alter_table('benefits', schema=None) as batch_op:
        batch_op.create_index('ix_benefits_kind_status', ['kind', 'status'], unique=False)

    op.create_table('benefit_package_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('package_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('rule_positions', sa.JSON(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('coupon_template_id', sa.Integer(), nullable=True),
    sa.Column('coupon_package_id', sa.Integer(), nullable=True),
    sa.Column('distribution', sa.String(length=10), nullable=True),
    sa.Column('benefit_id', sa.Integer(), nullable=True),
    sa.Column('tier_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['benefit_id'], ['benefits.id'], name=op.f('fk_benefit_package_items_benefit_id_benefits')),
    sa.ForeignKeyConstraint(['coupon_package_id'], ['coupon_packages.id'], name=op.f('fk_benefit_package_items_coupon_package_id_coupon_packages')),
    sa.ForeignKeyConstraint(['coupon_template_id'], ['coupon_templates.id'], name=op.f('fk_benefit_package_items_coupon_template_id_coupon_templates')),
    sa.ForeignKeyConstraint(['package_id'], ['benefit_packages.id'], name=op.f('fk_benefit_package_items_package_id_benefit_packages')),
    sa.ForeignKeyConstraint(['tier_id'], ['tiers.id'], name=op.f('fk_benefit_package_items_tier_id_tiers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_benefit_package_items'))
    )
    with op.batch_alter_table('benefit_package_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_benefit_package_items_package_id'), ['package_id'], unique=False)

    op.create_table('benefit_package_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('package_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('duration_days', sa.Integer(), nullable=False),
    sa.Column('original_minor', sa.BigInteger(), nullable=False),
    sa.Column('first_minor', sa.BigInteger(), nullable=True),
    sa.Column('repeat_minor', sa.BigInteger(), nullable=True),
    sa.Column('renewal_minor', sa.BigInteger(), nullable=True),
    sa.Column('promo_minor', sa.BigInteger(), nullable=True),
    sa.Column('promo_starts_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('promo_ends_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('duration_days > 0', name=op.f('ck_benefit_package_rules_positive_duration')),
    sa.CheckConstraint('original_minor >= 0', name=op.f('ck_benefit_package_rules_price_not_negative')),
    sa.ForeignKeyConstraint(['package_id'], ['benefit_packages.id'], name=op.f('fk_benefit_package_rules_package_id_benefit_packages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_benefit_package_rules')),
    sa.UniqueConstraint('package_id', 'position', name=op.f('uq_benefit_package_rules_package_id_position'))
    )
    with op.batch_alter_table('benefit_package_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_benefit_package_rules_package_id'), ['package_id'], unique=False)

    op.create_table('benefit_package_purchases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('package_id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('price_kind', sa.String(length=10), nullable=False),
    sa.Column('price_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('is_renewal', sa.Boolean(), nullable=False),
    sa.Column('is_first', sa.Boolean(), nullable=False),
    sa.Column('gifts', sa.JSON(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('starts_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ends_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('paid_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('grants_due_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('granted_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_benefit_package_purchases_member_id_members')),
    sa.ForeignKeyConstraint(['package_id'], ['benefit_packages.id'], name=op.f('fk_benefit_package_purchases_package_id_benefit_packages')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_benefit_package_purchases_payment_id_payments')),
    sa.ForeignKeyConstraint(['rule_id'], ['benefit_package_rules.id'], name=op.f('fk_benefit_package_purchases_rule_id_benefit_package_rules')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_benefit_package_purchases'))
    )
    with op.batch_alter_table('benefit_package_purchases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_benefit_package_purchases_grants_due_at'), ['grants_due_at'], unique=False)
        batch_op.create_index('ix_package_purchases_member', ['member_id', 'package_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('benefit_package_purchases', schema=None) as batch_op:
        batch_op.drop_index('ix_package_purchases_member')
        batch_op.drop_index(batch_op.f('ix_benefit_package_purchases_grants_due_at'))

    op.drop_table('benefit_package_purchases')
    with op.batch_alter_table('benefit_package_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_benefit_package_rules_package_id'))

    op.drop_table('benefit_package_rules')
    with op.batch_alter_table('benefit_package_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_benefit_package_items_package_id'))

    op.drop_table('benefit_package_items')
    with op.batch_alter_table('benefits', schema=None) as batch_op:
        batch_op.drop_index('ix_benefits_kind_status')

    op.drop_table('benefits')
    op.drop_table('benefit_packages')
    op.drop_table('benefit_package_settings')
