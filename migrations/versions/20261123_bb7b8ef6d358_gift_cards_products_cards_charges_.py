"""gift cards: products, cards, charges, transactions, imports

Revision ID: bb7b8ef6d358
Revises: f35501669a9c
Create Date: 2026-11-23 08:46:34.606400
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import portal.db

revision = 'bb7b8ef6d358'
down_revision = 'f35501669a9c'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('giftcard_products',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('store_ids', sa.JSON(), nullable=False),
    sa.Column('design', sa.String(length=200), nullable=False),
    sa.Column('denominations', sa.JSON(), nullable=False),
    sa.Column('discount_bp', sa.Integer(), nullable=False),
    sa.Column('custom_amount', sa.Boolean(), nullable=False),
    sa.Column('custom_min_minor', sa.BigInteger(), nullable=True),
    sa.Column('custom_max_minor', sa.BigInteger(), nullable=True),
    sa.Column('buyer_fields', sa.JSON(), nullable=False),
    sa.Column('validity_days', sa.Integer(), nullable=True),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('pos_recharge', sa.Boolean(), nullable=False),
    sa.Column('terms', sa.Text(), nullable=False),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_giftcard_products'))
    )
    op.create_table('giftcard_imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('rows_total', sa.Integer(), nullable=False),
    sa.Column('rows_ok', sa.Integer(), nullable=False),
    sa.Column('failed_rows', sa.JSON(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['operator_id'], ['staff_users.id'], name=op.f('fk_giftcard_imports_operator_id_staff_users')),
    sa.ForeignKeyConstraint(['product_id'], ['giftcard_products.id'], name=op.f('fk_giftcard_imports_product_id_giftcard_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_giftcard_imports'))
    )
    op.create_table('giftcards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=24), nullable=False),
    sa.Column('pin_hash', sa.String(length=128), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('face_minor', sa.BigInteger(), nullable=False),
    sa.Column('price_minor', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('physical', sa.Boolean(), nullable=False),
    sa.Column('buyer_member_id', sa.Integer(), nullable=True),
    sa.Column('buyer_name', sa.String(length=120), nullable=True),
    sa.Column('buyer_phone', sa.String(length=20), nullable=True),
    sa.Column('buyer_email', sa.String(length=254), nullable=True),
    sa.Column('holder_member_id', sa.Integer(), nullable=True),
    sa.Column('recipient_name', sa.String(length=120), nullable=True),
    sa.Column('recipient_email', sa.String(length=254), nullable=True),
    sa.Column('recipient_phone', sa.String(length=20), nullable=True),
    sa.Column('message', sa.String(length=500), nullable=True),
    sa.Column('send_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claim_token', sa.String(length=48), nullable=True),
    sa.Column('claimed_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('activated_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('import_id', sa.Integer(), nullable=True),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['buyer_member_id'], ['members.id'], name=op.f('fk_giftcards_buyer_member_id_members')),
    sa.ForeignKeyConstraint(['holder_member_id'], ['members.id'], name=op.f('fk_giftcards_holder_member_id_members')),
    sa.ForeignKeyConstraint(['import_id'], ['giftcard_imports.id'], name=op.f('fk_giftcards_import_id_giftcard_imports')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_giftcards_payment_id_payments')),
    sa.ForeignKeyConstraint(['product_id'], ['giftcard_products.id'], name=op.f('fk_giftcards_product_id_giftcard_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_giftcards')),
    sa.UniqueConstraint('claim_token', name=op.f('uq_giftcards_claim_token')),
    sa.UniqueConstraint('number', name=op.f('uq_giftcards_number'))
    )
    with op.batch_alter_table('giftcards', schema=None) as batch_op:
        batch_op.create_index('ix_giftcards_buyer_phone', ['buyer_phone'], unique=False)
        batch_op.create_index(batch_op.f('ix_giftcards_holder_member_id'), ['holder_member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_giftcards_product_id'), ['product_id'], unique=False)

    op.create_table('giftcard_charges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('card_id', sa.Integer(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('refunded_minor', sa.BigInteger(), nullable=False),
    sa.Column('order_external_id', sa.String(length=64), nullable=True),
    sa.Column('store_id', sa.Integer(), nullable=True),
    sa.Column('client_id', sa.Integer(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('refunded_minor >= 0 AND refunded_minor <= amount_minor', name=op.f('ck_giftcard_charges_refund_within_amount')),
    sa.ForeignKeyConstraint(['card_id'], ['giftcards.id'], name=op.f('fk_giftcard_charges_card_id_giftcards')),
    sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'], name=op.f('fk_giftcard_charges_client_id_api_clients')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_giftcard_charges_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_giftcard_charges')),
    sa.UniqueConstraint('card_id', 'idempotency_key', name=op.f('uq_giftcard_charges_card_id_idempotency_key'))
    )
    with op.batch_alter_table('giftcard_charges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_giftcard_charges_card_id'), ['card_id'], unique=False)

    op.create_table('giftcard_transactions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('card_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('charge_id', sa.Integer(), nullable=True),
    sa.Column('store_id', sa.Integer(), nullable=True),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('client_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.String(length=255), nullable=True),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['giftcards.id'], name=op.f('fk_giftcard_transactions_card_id_giftcards')),
    sa.ForeignKeyConstraint(['charge_id'], ['giftcard_charges.id'], name=op.f('fk_giftcard_transactions_charge_id_giftcard_charges')),
    sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'], name=op.f('fk_giftcard_transactions_client_id_api_clients')),
    sa.ForeignKeyConstraint(['operator_id'], ['staff_users.id'], name=op.f('fk_giftcard_transactions_operator_id_staff_users')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_giftcard_transactions_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_giftcard_transactions')),
    sa.UniqueConstraint('card_id', 'key', name=op.f('uq_giftcard_transactions_card_id_key'))
    )
    with op.batch_alter_table('giftcard_transactions', schema=None) as batch_op:
        batch_op.create_index('ix_giftcard_transactions_card', ['card_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_giftcard_transactions_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_giftcard_transactions_kind'), ['kind'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('giftcard_transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_giftcard_transactions_kind'))
        batch_op.drop_index(batch_op.f('ix_giftcard_transactions_created_at'))
        batch_op.drop_index('ix_giftcard_transactions_card')

    op.drop_table('giftcard_transactions')
    with op.batch_alter_table('giftcard_charges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_giftcard_charges_card_id'))

    op.drop_table('giftcard_charges')
    with op.batch_alter_table('giftcards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_giftcards_product_id'))
        batch_op.drop_index(batch_op.f('ix_giftcards_holder_member_id'))
        batch_op.drop_index('ix_giftcards_buyer_phone')

    op.drop_table('giftcards')
    op.drop_table('giftcard_imports')
    op.drop_table('giftcard_products')
