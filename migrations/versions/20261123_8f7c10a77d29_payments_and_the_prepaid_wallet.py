"""payments and the prepaid wallet

Revision ID: 8f7c10a77d29
Revises: b463ba4fae9f
Create Date: 2026-11-23 07:50:32.044600
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import portal.db

revision = '8f7c10a77d29'
down_revision = 'b463ba4fae9f'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('smart_plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('starts_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ends_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('store_scope', sa.JSON(), nullable=False),
    sa.Column('plan_ids', sa.JSON(), nullable=False),
    sa.Column('tier_ids', sa.JSON(), nullable=False),
    sa.Column('min_topup_minor', sa.BigInteger(), nullable=False),
    sa.Column('rounding_minor', sa.Integer(), nullable=False),
    sa.Column('first_bonus', sa.Boolean(), nullable=False),
    sa.Column('first_topup_only', sa.Boolean(), nullable=False),
    sa.Column('stock_total', sa.Integer(), nullable=True),
    sa.Column('stock_left', sa.Integer(), nullable=True),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('cover_image', sa.String(length=200), nullable=True),
    sa.Column('agreement', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('stock_left IS NULL OR stock_left >= 0', name=op.f('ck_smart_plans_stock_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_smart_plans'))
    )
    op.create_table('smart_tiers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('multiplier_bp', sa.Integer(), nullable=True),
    sa.Column('bonus_bp', sa.Integer(), nullable=True),
    sa.Column('points_bp', sa.Integer(), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=True),
    sa.Column('bonus_minor', sa.BigInteger(), nullable=True),
    sa.Column('bonus_points', sa.Integer(), nullable=True),
    sa.Column('gift_template_id', sa.Integer(), nullable=True),
    sa.Column('first_gift_template_id', sa.Integer(), nullable=True),
    sa.Column('first_bonus_bp', sa.Integer(), nullable=False),
    sa.Column('first_points_bp', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['first_gift_template_id'], ['coupon_templates.id'], name=op.f('fk_smart_tiers_first_gift_template_id_coupon_templates')),
    sa.ForeignKeyConstraint(['gift_template_id'], ['coupon_templates.id'], name=op.f('fk_smart_tiers_gift_template_id_coupon_templates')),
    sa.ForeignKeyConstraint(['plan_id'], ['smart_plans.id'], name=op.f('fk_smart_tiers_plan_id_smart_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_smart_tiers')),
    sa.UniqueConstraint('plan_id', 'position', name=op.f('uq_smart_tiers_plan_id_position'))
    )
    op.create_table('topup_plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('starts_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ends_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('schedule', sa.JSON(), nullable=False),
    sa.Column('store_scope', sa.JSON(), nullable=False),
    sa.Column('plan_ids', sa.JSON(), nullable=False),
    sa.Column('tier_ids', sa.JSON(), nullable=False),
    sa.Column('segment_ids', sa.JSON(), nullable=False),
    sa.Column('tag_ids', sa.JSON(), nullable=False),
    sa.Column('upgrade_tier_id', sa.Integer(), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=True),
    sa.Column('bonus_minor', sa.BigInteger(), nullable=True),
    sa.Column('bonus_points', sa.Integer(), nullable=True),
    sa.Column('min_minor', sa.BigInteger(), nullable=True),
    sa.Column('max_minor', sa.BigInteger(), nullable=True),
    sa.Column('bonus_bp', sa.Integer(), nullable=True),
    sa.Column('points_bp', sa.Integer(), nullable=True),
    sa.Column('bonus_min_minor', sa.BigInteger(), nullable=True),
    sa.Column('bonus_max_minor', sa.BigInteger(), nullable=True),
    sa.Column('points_min', sa.Integer(), nullable=True),
    sa.Column('points_max', sa.Integer(), nullable=True),
    sa.Column('gift_template_id', sa.Integer(), nullable=True),
    sa.Column('gift_package_id', sa.Integer(), nullable=True),
    sa.Column('first_bonus', sa.Boolean(), nullable=False),
    sa.Column('first_bonus_bp', sa.Integer(), nullable=False),
    sa.Column('first_points_bp', sa.Integer(), nullable=False),
    sa.Column('first_gift_template_id', sa.Integer(), nullable=True),
    sa.Column('first_gift_package_id', sa.Integer(), nullable=True),
    sa.Column('benefit_ids', sa.JSON(), nullable=False),
    sa.Column('cover_image', sa.String(length=200), nullable=True),
    sa.Column('first_topup_only', sa.Boolean(), nullable=False),
    sa.Column('stock_total', sa.Integer(), nullable=True),
    sa.Column('stock_left', sa.Integer(), nullable=True),
    sa.Column('visible', sa.Boolean(), nullable=False),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('spend_product_ids', sa.JSON(), nullable=False),
    sa.Column('per_member_limit', sa.Integer(), nullable=True),
    sa.Column('same_day_usable_bp', sa.Integer(), nullable=True),
    sa.Column('bonus_locked_same_day', sa.Boolean(), nullable=False),
    sa.Column('agreement', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('stock_left IS NULL OR stock_left >= 0', name=op.f('ck_topup_plans_stock_not_negative')),
    sa.ForeignKeyConstraint(['first_gift_package_id'], ['coupon_packages.id'], name=op.f('fk_topup_plans_first_gift_package_id_coupon_packages')),
    sa.ForeignKeyConstraint(['first_gift_template_id'], ['coupon_templates.id'], name=op.f('fk_topup_plans_first_gift_template_id_coupon_templates')),
    sa.ForeignKeyConstraint(['gift_package_id'], ['coupon_packages.id'], name=op.f('fk_topup_plans_gift_package_id_coupon_packages')),
    sa.ForeignKeyConstraint(['gift_template_id'], ['coupon_templates.id'], name=op.f('fk_topup_plans_gift_template_id_coupon_templates')),
    sa.ForeignKeyConstraint(['upgrade_tier_id'], ['tiers.id'], name=op.f('fk_topup_plans_upgrade_tier_id_tiers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_topup_plans'))
    )
    op.create_table('recharge_code_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('scenario', sa.String(length=120), nullable=False),
    sa.Column('store_ids', sa.JSON(), nullable=False),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('valid_until', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['operator_id'], ['staff_users.id'], name=op.f('fk_recharge_code_batches_operator_id_staff_users')),
    sa.ForeignKeyConstraint(['plan_id'], ['topup_plans.id'], name=op.f('fk_recharge_code_batches_plan_id_topup_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recharge_code_batches'))
    )
    with op.batch_alter_table('recharge_code_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recharge_code_batches_plan_id'), ['plan_id'], unique=False)

    op.create_table('payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('purpose_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('amount_minor', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('provider', sa.String(length=10), nullable=False),
    sa.Column('provider_session_id', sa.String(length=255), nullable=True),
    sa.Column('provider_payment_id', sa.String(length=255), nullable=True),
    sa.Column('checkout_url', sa.String(length=1000), nullable=True),
    sa.Column('refunded_minor', sa.Integer(), nullable=False),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('paid_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('refunded_minor >= 0 AND refunded_minor <= amount_minor', name=op.f('ck_payments_refund_within_amount')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_payments_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('provider', 'provider_session_id', name=op.f('uq_payments_provider_provider_session_id')),
    sa.UniqueConstraint('token', name=op.f('uq_payments_token'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_payments_status_created', ['status', 'created_at'], unique=False)

    op.create_table('recharge_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=24), nullable=False),
    sa.Column('redeemed_by', sa.Integer(), nullable=True),
    sa.Column('redeemed_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['recharge_code_batches.id'], name=op.f('fk_recharge_codes_batch_id_recharge_code_batches')),
    sa.ForeignKeyConstraint(['redeemed_by'], ['members.id'], name=op.f('fk_recharge_codes_redeemed_by_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recharge_codes')),
    sa.UniqueConstraint('code', name=op.f('uq_recharge_codes_code'))
    )
    with op.batch_alter_table('recharge_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recharge_codes_batch_id'), ['batch_id'], unique=False)

    op.create_table('payment_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=10), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('received_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_payment_events_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_events')),
    sa.UniqueConstraint('provider', 'event_id', name=op.f('uq_payment_events_provider_event_id'))
    )
    with op.batch_alter_table('payment_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_events_payment_id'), ['payment_id'], unique=False)

    op.create_table('payment_refunds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.Column('amount_minor', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('reversal', sa.JSON(), nullable=False),
    sa.Column('provider_refund_id', sa.String(length=255), nullable=True),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['operator_id'], ['staff_users.id'], name=op.f('fk_payment_refunds_operator_id_staff_users')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_payment_refunds_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_refunds'))
    )
    with op.batch_alter_table('payment_refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_refunds_payment_id'), ['payment_id'], unique=False)

    op.create_table('topups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=True),
    sa.Column('smart_tier_id', sa.Integer(), nullable=True),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('card_id', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('bonus_minor', sa.BigInteger(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('gifts', sa.JSON(), nullable=False),
    sa.Column('first', sa.Boolean(), nullable=False),
    sa.Column('holds_stock', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('code_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=True),
    sa.Column('refunded_minor', sa.BigInteger(), nullable=False),
    sa.Column('bill_minor', sa.BigInteger(), nullable=True),
    sa.Column('bill_order_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('credited_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['card_id'], ['member_cards.id'], name=op.f('fk_topups_card_id_member_cards')),
    sa.ForeignKeyConstraint(['code_id'], ['recharge_codes.id'], name=op.f('fk_topups_code_id_recharge_codes')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_topups_member_id_members')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_topups_payment_id_payments')),
    sa.ForeignKeyConstraint(['plan_id'], ['topup_plans.id'], name=op.f('fk_topups_plan_id_topup_plans')),
    sa.ForeignKeyConstraint(['smart_tier_id'], ['smart_tiers.id'], name=op.f('fk_topups_smart_tier_id_smart_tiers')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_topups_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_topups')),
    sa.UniqueConstraint('code_id', name=op.f('uq_topups_code_id'))
    )
    with op.batch_alter_table('topups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_topups_card_id'), ['card_id'], unique=False)
        batch_op.create_index('ix_topups_member_status', ['member_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_topups_plan_id'), ['plan_id'], unique=False)

    op.create_table('charges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('card_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('principal_minor', sa.BigInteger(), nullable=False),
    sa.Column('bonus_minor', sa.BigInteger(), nullable=False),
    sa.Column('refunded_minor', sa.BigInteger(), nullable=False),
    sa.Column('refunded_principal_minor', sa.BigInteger(), nullable=False),
    sa.Column('refunded_bonus_minor', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('order_external_id', sa.String(length=64), nullable=True),
    sa.Column('store_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('topup_id', sa.Integer(), nullable=True),
    sa.Column('lots', sa.JSON(), nullable=False),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('refunded_minor >= 0 AND refunded_minor <= amount_minor', name=op.f('ck_charges_refund_within_amount')),
    sa.ForeignKeyConstraint(['card_id'], ['member_cards.id'], name=op.f('fk_charges_card_id_member_cards')),
    sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'], name=op.f('fk_charges_client_id_api_clients')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_charges_member_id_members')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_charges_store_id_stores')),
    sa.ForeignKeyConstraint(['topup_id'], ['topups.id'], name=op.f('fk_charges_topup_id_topups')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_charges')),
    sa.UniqueConstraint('card_id', 'idempotency_key', name=op.f('uq_charges_card_id_idempotency_key'))
    )
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_charges_card_id'), ['card_id'], unique=False)

    op.create_table('charge_refunds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('charge_id', sa.Integer(), nullable=False),
    sa.Column('refund_key', sa.String(length=128), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('principal_minor', sa.BigInteger(), nullable=False),
    sa.Column('bonus_minor', sa.BigInteger(), nullable=False),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['charge_id'], ['charges.id'], name=op.f('fk_charge_refunds_charge_id_charges')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_charge_refunds')),
    sa.UniqueConstraint('charge_id', 'refund_key', name=op.f('uq_charge_refunds_charge_id_refund_key'))
    )
    with op.batch_alter_table('charge_refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_charge_refunds_charge_id'), ['charge_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('charge_refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_charge_refunds_charge_id'))

    op.drop_table('charge_refunds')
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_charges_card_id'))

    op.drop_table('charges')
    with op.batch_alter_table('topups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_topups_plan_id'))
        batch_op.drop_index('ix_topups_member_status')
        batch_op.drop_index(batch_op.f('ix_topups_card_id'))

    op.drop_table('topups')
    with op.batch_alter_table('payment_refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_refunds_payment_id'))

    op.drop_table('payment_refunds')
    with op.batch_alter_table('payment_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_events_payment_id'))

    op.drop_table('payment_events')
    with op.batch_alter_table('recharge_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recharge_codes_batch_id'))

    op.drop_table('recharge_codes')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_status_created')
        batch_op.drop_index(batch_op.f('ix_payments_member_id'))

    op.drop_table('payments')
    with op.batch_alter_table('recharge_code_batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recharge_code_batches_plan_id'))

    op.drop_table('recharge_code_batches')
    op.drop_table('topup_plans')
    op.drop_table('smart_tiers')
    op.drop_table('smart_plans')
