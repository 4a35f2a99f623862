"""Everything we hold about one member, as one JSON document, written as it is read.

Each section is one query over the member's rows (or rows reached through their cards,
coupons and gift cards by a subquery), so the number of queries is fixed however long
the member's history; rows are fetched in batches and written out at once, so memory
stays flat. Sections are the tables as they are, every column, less the secrets that
would let someone else act on the member's behalf (hashes, bearer tokens).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Select, and_, case, or_, select
from sqlalchemy.orm import Session

from portal import clock
from portal.benefits.models import PackagePurchase
from portal.campaigns.models import Grant, Participation
from portal.coupons.models import Coupon, CouponTemplate, Redemption
from portal.giftcards.cards import OWNER as GIFT_CARD_OWNER
from portal.giftcards.models import GiftCard, GiftCardTransaction
from portal.ledger import Account, Entry
from portal.loyalty.models import InteractionRecord, Order, OrderRefund
from portal.members.models import (
    CardPlan,
    CustomAttribute,
    Member,
    MemberCard,
    Tag,
    Tier,
    member_tags,
)
from portal.notifications.models import InboxMessage
from portal.payments.models import Payment
from portal.rights.models import DataRequest
from portal.students.models import StudentVerification
from portal.wallet.balance import OWNER as CARD_OWNER
from portal.wallet.models import Charge, Topup

FORMAT = "tessera.member-data/1"
BATCH = 500
# Secrets, not data about the member: a hash or a token would let its holder act.
LEFT_OUT = {"session_version", "pin_hash", "claim_token", "token", "checkout_url",
            "open_member_id", "pending_member_id", "photo"}


def _columns(table, *extra):
    return [c for c in table.c if c.name not in LEFT_OUT] + list(extra)


def _giftcard_columns(member_id: int) -> list:
    """A card someone else bought for the member: the buyer's own contact details are the
    buyer's data, not the holder's. A card the member gave away (held by someone else,
    or not claimed yet): its number is the recipient's money, since a till spends a card
    by its number alone, so it is left out, as the buyer's gift page leaves it out."""
    bought = GiftCard.buyer_member_id == member_id
    held = GiftCard.holder_member_id == member_id
    hidden = {"buyer_name": bought, "buyer_phone": bought, "buyer_email": bought,
              "number": held}
    return [case((hidden[c.name], c), else_=None).label(c.name) if c.name in hidden else c
            for c in _columns(GiftCard.__table__)]


def _sections(member_id: int) -> list[tuple[str, Select]]:
    cards = select(MemberCard.id).where(MemberCard.member_id == member_id)
    giftcards = select(GiftCard.id).where(or_(GiftCard.buyer_member_id == member_id,
                                              GiftCard.holder_member_id == member_id))
    coupons = select(Coupon.id).where(Coupon.member_id == member_id)
    orders = select(Order.id).where(Order.member_id == member_id)
    accounts = or_(
        and_(Account.owner_type == "member", Account.owner_id == member_id),
        and_(Account.owner_type == CARD_OWNER, Account.owner_id.in_(cards)),
        and_(Account.owner_type == GIFT_CARD_OWNER, Account.owner_id.in_(giftcards)))
    return [
        ("profile", select(*_columns(Member.__table__)).where(Member.id == member_id)),
        ("tags", select(Tag.name).join(member_tags, member_tags.c.tag_id == Tag.id)
         .where(member_tags.c.member_id == member_id).order_by(Tag.name)),
        ("custom_attribute_names", select(CustomAttribute.key, CustomAttribute.name,
                                          CustomAttribute.kind).order_by(CustomAttribute.id)),
        ("cards", select(*_columns(MemberCard.__table__, CardPlan.name.label("plan_name"),
                                   Tier.name.label("tier_name")))
         .join(CardPlan, CardPlan.id == MemberCard.plan_id)
         .join(Tier, Tier.id == MemberCard.tier_id)
         .where(MemberCard.member_id == member_id).order_by(MemberCard.id)),
        ("balances", select(*_columns(Account.__table__)).where(accounts)
         .order_by(Account.id)),
        ("ledger_entries", select(*_columns(Entry.__table__, Account.kind,
                                            Account.owner_type, Account.owner_id))
         .join(Account, Account.id == Entry.account_id).where(accounts)
         .order_by(Entry.id)),
        ("coupons", select(*_columns(Coupon.__table__, CouponTemplate.title))
         .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
         .where(Coupon.member_id == member_id).order_by(Coupon.id)),
        ("coupon_redemptions", select(*_columns(Redemption.__table__))
         .where(Redemption.coupon_id.in_(coupons)).order_by(Redemption.id)),
        ("orders", select(*_columns(Order.__table__)).where(Order.member_id == member_id)
         .order_by(Order.id)),
        ("order_refunds", select(*_columns(OrderRefund.__table__))
         .where(OrderRefund.order_id.in_(orders)).order_by(OrderRefund.id)),
        ("payments", select(*_columns(Payment.__table__)).where(Payment.member_id == member_id)
         .order_by(Payment.id)),
        ("topups", select(*_columns(Topup.__table__)).where(Topup.member_id == member_id)
         .order_by(Topup.id)),
        ("prepaid_charges", select(*_columns(Charge.__table__))
         .where(Charge.member_id == member_id).order_by(Charge.id)),
        ("gift_cards", select(*_giftcard_columns(member_id)).where(GiftCard.id.in_(giftcards))
         .order_by(GiftCard.id)),
        ("gift_card_transactions", select(*_columns(GiftCardTransaction.__table__))
         .where(GiftCardTransaction.card_id.in_(giftcards)).order_by(GiftCardTransaction.id)),
        ("packages", select(*_columns(PackagePurchase.__table__))
         .where(PackagePurchase.member_id == member_id).order_by(PackagePurchase.id)),
        ("student_verifications", select(*_columns(StudentVerification.__table__))
         .where(StudentVerification.member_id == member_id)
         .order_by(StudentVerification.id)),
        ("activity_participations", select(*_columns(Participation.__table__))
         .where(Participation.member_id == member_id).order_by(Participation.id)),
        ("activity_gifts", select(*_columns(Grant.__table__)).where(Grant.member_id == member_id)
         .order_by(Grant.id)),
        ("interactions", select(*_columns(InteractionRecord.__table__))
         .where(InteractionRecord.member_id == member_id).order_by(InteractionRecord.id)),
        ("inbox", select(*_columns(InboxMessage.__table__))
         .where(InboxMessage.member_id == member_id).order_by(InboxMessage.id)),
        ("data_requests", select(*_columns(DataRequest.__table__))
         .where(DataRequest.member_id == member_id).order_by(DataRequest.id)),
    ]


SECTIONS = tuple(name for name, _query in _sections(0))


def _plain(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _dump(value) -> str:
    return json.dumps(value, default=_plain, ensure_ascii=False, sort_keys=True)


def chunks(session: Session, member_id: int) -> Iterator[str]:
    """The document in pieces: a header, then each section's rows as they come.

    Consent is not a section of its own: what the member agreed to is where it was given
    (`consented_at` on student verifications), and what they hear from us is the
    merchant's message settings, the same for every member."""
    yield '{"format": ' + _dump(FORMAT) + ', "generated_at": ' + _dump(clock.now()) \
        + ', "member_id": ' + _dump(member_id) + ', "sections": {'
    for n, (name, query) in enumerate(_sections(member_id)):
        yield (", " if n else "") + _dump(name) + ": ["
        result = session.execute(query.execution_options(yield_per=BATCH))
        first = True
        for part in result.mappings().partitions():
            yield ("" if first else ", ") + ", ".join(_dump(dict(row)) for row in part)
            first = False
        result.close()
        yield "]"
    yield "}}\n"
