"""Gift cards (spec 2.5): the products the merchant sells, the cards sold (their balance is
a ledger account of owner ("gift_card", id)), charges against them at tills, and the
transactions staff review, plus imports of physical card numbers."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.db import Base, UTCDateTime


class ProductStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    INACTIVE = "inactive"


class GiftCardProduct(Base):
    """What the merchant sells: denominations (up to 6) or a custom amount, a purchase
    discount, who must give what when buying, validity, where it sells and spends."""

    __tablename__ = "giftcard_products"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))              # electronic, physical
    name: Mapped[str] = mapped_column(String(120))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10), default=ProductStatus.DRAFT)
    store_ids: Mapped[list] = mapped_column(JSON, default=list)  # where it spends; empty: all
    # A built-in design key ("teal", "gold", …) or an uploaded image's name.
    design: Mapped[str] = mapped_column(String(200), default="teal")
    denominations: Mapped[list] = mapped_column(JSON, default=list)   # minor units, ≤ 6
    # Purchase discount in basis points of the face value (1000: pay 180 for a 200 card).
    discount_bp: Mapped[int] = mapped_column(default=0)
    custom_amount: Mapped[bool] = mapped_column(default=False)
    custom_min_minor: Mapped[int | None] = mapped_column(BigInteger)
    custom_max_minor: Mapped[int | None] = mapped_column(BigInteger)
    # Buyer information: {"name": "required"|"optional"|"off", "phone": …, "email": …,
    # "card_number": … (POS sales only)}.
    buyer_fields: Mapped[dict] = mapped_column(JSON, default=dict)
    validity_days: Mapped[int | None]                         # None: no expiry
    channels: Mapped[list] = mapped_column(JSON, default=lambda: ["POS", "ONLINE"])
    pos_recharge: Mapped[bool] = mapped_column(default=False)
    terms: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CardStatus(StrEnum):
    PENDING = "pending"        # bought, waiting for its payment
    IN_STOCK = "in_stock"      # an imported physical card, not yet sold at a till
    ACTIVE = "active"
    FROZEN = "frozen"
    REFUNDED = "refunded"      # its remaining value was paid back: closed
    CANCELLED = "cancelled"    # never paid


class GiftCard(Base):
    """One sold card. Its number and PIN are what a holder shows at a till or types to
    check the balance; the claim token is the link a friend receives."""

    __tablename__ = "giftcards"
    __table_args__ = (Index("ix_giftcards_buyer_phone", "buyer_phone"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("giftcard_products.id"), index=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)
    pin_hash: Mapped[str | None] = mapped_column(String(128))
    currency: Mapped[str] = mapped_column(String(3))
    face_minor: Mapped[int] = mapped_column(BigInteger)
    price_minor: Mapped[int] = mapped_column(BigInteger)      # what the buyer paid
    status: Mapped[str] = mapped_column(String(10), default=CardStatus.PENDING)
    physical: Mapped[bool] = mapped_column(default=False)
    buyer_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    buyer_name: Mapped[str | None] = mapped_column(String(120))
    buyer_phone: Mapped[str | None] = mapped_column(String(20))
    buyer_email: Mapped[str | None] = mapped_column(String(254))
    # Held by: the buyer ("for me"), or whoever claims it.
    holder_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"),
                                                         index=True)
    # Sent to a friend.
    recipient_name: Mapped[str | None] = mapped_column(String(120))
    recipient_email: Mapped[str | None] = mapped_column(String(254))
    recipient_phone: Mapped[str | None] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(String(500))
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claim_token: Mapped[str | None] = mapped_column(String(48), unique=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    import_id: Mapped[int | None] = mapped_column(ForeignKey("giftcard_imports.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    product: Mapped[GiftCardProduct] = relationship()


class GiftCardCharge(Base):
    """A bill paid with a gift card at a till or shop; once per (card, key)."""

    __tablename__ = "giftcard_charges"
    __table_args__ = (
        UniqueConstraint("card_id", "idempotency_key"),
        CheckConstraint("refunded_minor >= 0 AND refunded_minor <= amount_minor",
                        name="refund_within_amount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("giftcards.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    order_external_id: Mapped[str | None] = mapped_column(String(64))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class TransactionKind(StrEnum):
    ACTIVATION = "activation"
    RECHARGE = "recharge"
    CONSUMPTION = "consumption"
    REFUND = "refund"            # a charge given back to the card
    CARD_REFUND = "card_refund"  # the card's remaining value paid back to the buyer
    FREEZE = "freeze"
    RESTORE = "restore"


class GiftCardTransaction(Base):
    """Everything that happened to a card, for staff (spec 2.5.5) and the holder."""

    __tablename__ = "giftcard_transactions"
    __table_args__ = (Index("ix_giftcard_transactions_card", "card_id", "id"),
                      UniqueConstraint("card_id", "key"))

    id: Mapped[int] = mapped_column(primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("giftcards.id"))
    kind: Mapped[str] = mapped_column(String(12), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # + in, − out
    balance_after: Mapped[int] = mapped_column(BigInteger, default=0)
    key: Mapped[str] = mapped_column(String(160))             # once per card
    charge_id: Mapped[int | None] = mapped_column(ForeignKey("giftcard_charges.id"))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))
    note: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now,
                                                 index=True)


class GiftCardImport(Base):
    """One upload of physical card numbers: its rows' outcome stays for staff."""

    __tablename__ = "giftcard_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("giftcard_products.id"))
    filename: Mapped[str] = mapped_column(String(200))
    rows_total: Mapped[int] = mapped_column(default=0)
    rows_ok: Mapped[int] = mapped_column(default=0)
    # [{"row": n, "values": [...], "error": "…"}]: the failed-rows file is made from it.
    failed_rows: Mapped[list] = mapped_column(JSON, default=list)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
