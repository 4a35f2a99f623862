"""Member data rights: download everything we hold, and close the account.

- An export is done at once: the member downloads the file, and a data request of kind
  export (status done) plus an audit entry record that they did.
- A closure is asked for by the member and decided by staff (owner or manager). Closing
  erases or blanks the personal fields, ends every session, and keeps the financial
  records (orders, payments, ledgers, charges, gift cards) under the member's id, which
  no longer leads to a person.
- Balances on closure: points and prepaid bonus are forfeited, each with a ledger entry
  (reason "account_closed"), so the cached balances still equal their entries. Prepaid
  principal is the member's own money: an account that still holds any is not closed;
  staff refund it first (Payments), then close. Gift cards stay valid with their number
  and PIN, as any bearer card.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from portal import clock, ledger
from portal.campaigns.models import Grant
from portal.coupons.models import Coupon, CouponStatus
from portal.db import transaction
from portal.giftcards.models import GiftCard
from portal.ledger import AccountKind
from portal.members.models import (
    CardStatus,
    Member,
    MemberCard,
    OneTimeCode,
    member_tags,
)
from portal.notifications.models import InboxMessage, OutboxMessage, OutboxStatus
from portal.payments.models import Payment, PaymentStatus
from portal.rights import export as exporter
from portal.rights.errors import RightsError, RightsErrorCode
from portal.rights.models import DataRequest, RequestKind, RequestStatus
from portal.staff.models import AuditEntry
from portal.staff.services import record
from portal.students import services as students
from portal.wallet.balance import OWNER as CARD_OWNER

NOTE_MAX = 500
PAGE = 25
CLOSED_REASON = "account_closed"


def _invalid(errors: dict[str, str]) -> RightsError:
    return RightsError(RightsErrorCode.INVALID, _("Please correct the marked fields."),
                       errors=errors)


def _open_member(session: Session, member_id: int, *, lock: bool = False) -> Member:
    query = select(Member).where(Member.id == member_id)
    if lock:
        # NO KEY UPDATE: a charge or order being written for the member checks its foreign
        # key with KEY SHARE; a full UPDATE lock would make it wait on us while we wait on
        # its account locks (a deadlock). Refunds and adjustments take SHARE and still wait.
        query = (query.with_for_update(key_share=True)
                 .execution_options(populate_existing=True))
    member = session.scalar(query)
    if member is None or member.is_closed:
        raise RightsError(RightsErrorCode.CLOSED, _("This account is closed."))
    return member


# --- export -------------------------------------------------------------------------------

def export(session: Session, member_id: int) -> Iterator[str]:
    """Record the export (a done data request, audited), then the file's pieces.

    The record is committed before the first byte goes out: a download that breaks off
    half-way was still asked for."""
    with transaction(session):
        _open_member(session, member_id)
        now = clock.now()
        req = DataRequest(kind=RequestKind.EXPORT, status=RequestStatus.DONE,
                          member_id=member_id, requested_at=now, processed_at=now)
        session.add(req)
        session.flush()
        record(session, None, "data_request.export", req, after={"member_id": member_id})
    return exporter.chunks(session, member_id)


# --- closure: the member asks ------------------------------------------------------------

def confirmation_digits(member: Member) -> str:
    """What the member types to confirm: the last four digits of their mobile number."""
    return "".join(ch for ch in member.mobile or "" if ch.isdecimal())[-4:]


def request_closure(session: Session, member_id: int, *, confirmation: str,
                    note: str = "") -> DataRequest:
    """Ask staff to close the account. One open request a member (a second ask, or two
    at once, get ALREADY_REQUESTED)."""
    note = (note or "").strip()
    typed = "".join(ch for ch in confirmation or "" if ch.isdecimal())
    with transaction(session):
        member = _open_member(session, member_id)
        errors = {}
        if not typed:
            errors["confirmation"] = _("Type the last four digits of your mobile number.")
        elif typed != confirmation_digits(member):
            errors["confirmation"] = _("These are not the last four digits of your mobile "
                                       "number.")
        if len(note) > NOTE_MAX:
            errors["note"] = _("At most %(n)d characters.", n=NOTE_MAX)
        if errors:
            raise _invalid(errors)
        req = DataRequest(kind=RequestKind.CLOSURE, status=RequestStatus.REQUESTED,
                          member_id=member_id, open_member_id=member_id, note=note,
                          requested_at=clock.now())
        try:
            with session.begin_nested():
                session.add(req)
        except IntegrityError:
            raise RightsError(RightsErrorCode.ALREADY_REQUESTED,
                              _("You have already asked to close your account.")) from None
        record(session, None, "data_request.closure", req, after={"member_id": member_id})
        return req


def withdraw_closure(session: Session, member_id: int) -> DataRequest:
    """The member changed their mind before staff closed the account."""
    with transaction(session):
        req = session.scalar(select(DataRequest).where(DataRequest.open_member_id == member_id)
                             .with_for_update().execution_options(populate_existing=True))
        if req is None:
            raise RightsError(RightsErrorCode.NOT_FOUND,
                              _("There is no open request to close your account."))
        req.status, req.open_member_id = RequestStatus.REFUSED, None
        req.processed_at, req.reason = clock.now(), "withdrawn by the member"
        record(session, None, "data_request.withdraw", req,
               before={"status": RequestStatus.REQUESTED}, after={"status": req.status})
        return req


def member_requests(session: Session, member_id: int, limit: int = 20) -> list[DataRequest]:
    return list(session.scalars(select(DataRequest).where(DataRequest.member_id == member_id)
                                .order_by(DataRequest.id.desc()).limit(limit)))


def open_closure(session: Session, member_id: int) -> DataRequest | None:
    return session.scalar(select(DataRequest).where(DataRequest.open_member_id == member_id))


# --- what closing would do -----------------------------------------------------------------

@dataclass(frozen=True)
class Holdings:
    """What the member still has: shown before closing, and what closing forfeits."""
    points: int
    principal_minor: int
    bonus_minor: int
    currency: str
    coupons: int
    giftcards: int

    @property
    def blocks_closure(self) -> bool:
        return self.principal_minor > 0


def holdings(session: Session, member_id: int) -> Holdings:
    """Three queries, whatever the member holds."""
    cards = select(MemberCard.id).where(MemberCard.member_id == member_id)
    rows = session.execute(
        select(ledger.Account.kind, func.max(ledger.Account.currency),
               func.sum(ledger.Account.balance))
        .where(or_((ledger.Account.owner_type == "member")
                   & (ledger.Account.owner_id == member_id)
                   & (ledger.Account.kind == AccountKind.POINTS),
                   (ledger.Account.owner_type == CARD_OWNER)
                   & ledger.Account.owner_id.in_(cards)))
        .group_by(ledger.Account.kind)).all()
    sums = {kind: int(total or 0) for kind, _currency, total in rows}
    currency = next((c for _kind, c, _t in rows if c), "") \
        or current_app.config["DEFAULT_CURRENCY"]
    coupons = session.scalar(select(func.count()).select_from(Coupon).where(
        Coupon.member_id == member_id, Coupon.status == CouponStatus.AVAILABLE,
        Coupon.valid_until > clock.now())) or 0
    giftcards = session.scalar(select(func.count()).select_from(GiftCard).where(
        GiftCard.holder_member_id == member_id)) or 0
    return Holdings(points=sums.get(AccountKind.POINTS, 0),
                    principal_minor=sums.get(AccountKind.PREPAID_PRINCIPAL, 0),
                    bonus_minor=sums.get(AccountKind.PREPAID_BONUS, 0), currency=currency,
                    coupons=coupons, giftcards=giftcards)


# --- closure: staff decide ------------------------------------------------------------------

def _locked(session: Session, request_id: int) -> DataRequest:
    req = session.scalar(select(DataRequest).where(DataRequest.id == request_id)
                         .with_for_update().execution_options(populate_existing=True))
    if req is None:
        raise RightsError(RightsErrorCode.NOT_FOUND, _("There is no such request."))
    if req.status != RequestStatus.REQUESTED:
        raise RightsError(RightsErrorCode.ALREADY_DECIDED,
                          _("This request has already been decided."))
    return req


def close_account(session: Session, request_id: int, *, operator_id: int) -> DataRequest:
    """Carry out a closure request: forfeit points and bonus, erase the personal fields,
    end the sessions. All or nothing; twice at once, the row lock lets one through."""
    with transaction(session):
        req = _locked(session, request_id)
        member = _open_member(session, req.member_id, lock=True)
        # Locked before the holdings are read: money moving on the cards right now lands
        # first and is counted; a refund that comes later waits, then finds it closed.
        cards = list(session.scalars(select(MemberCard).where(
            MemberCard.member_id == member.id).order_by(MemberCard.id)
            .with_for_update(key_share=True).execution_options(populate_existing=True)))
        session.scalars(select(ledger.Account.id).where(
            ledger.Account.owner_type == CARD_OWNER,
            ledger.Account.owner_id.in_([c.id for c in cards]))
            .order_by(ledger.Account.id).with_for_update()).all()
        held = holdings(session, member.id)
        if held.blocks_closure:
            raise RightsError(RightsErrorCode.BALANCE_LEFT,
                              _("The member still has prepaid money. Refund it first "
                                "(Payments), then close the account."))
        under_way = _payment_under_way(session, member.id)
        if under_way == PaymentStatus.REVIEW:
            # The member's money came in and bought nothing: staff settle it with a person.
            raise RightsError(RightsErrorCode.PAYMENT_UNDER_WAY,
                              _("A payment of the member needs attention (Payments). "
                                "Settle it, then close the account."))
        if under_way is not None:
            # Money that arrives after closing would land on a frozen card of no one.
            raise RightsError(RightsErrorCode.PAYMENT_UNDER_WAY,
                              _("A payment of the member is still under way. Close the "
                                "account once it is paid or has expired."))
        outcome = {"currency": held.currency,
                   "points_forfeited": _forfeit(session, req, "member", [member.id],
                                                AccountKind.POINTS, operator_id),
                   "bonus_forfeited_minor": _forfeit(session, req, CARD_OWNER,
                                                     [c.id for c in cards],
                                                     AccountKind.PREPAID_BONUS, operator_id)}
        outcome.update(_erase(session, member, cards))
        now = clock.now()
        req.status, req.open_member_id = RequestStatus.DONE, None
        req.processed_at, req.processed_by, req.outcome = now, operator_id, outcome
        # The member's own words may name them, in earlier (withdrawn, refused) asks too.
        session.execute(update(DataRequest).where(DataRequest.member_id == member.id)
                        .values(note=""))
        record(session, operator_id, "data_request.close", req,
               before={"status": RequestStatus.REQUESTED}, after={"status": req.status,
                                                                  **outcome})
        return req


def _payment_under_way(session: Session, member_id: int) -> PaymentStatus | None:
    """The status of a payment that may still bring money in, REVIEW first. An OPEN one
    counts past its expiry too: the sweep asks the provider and may still fulfil it."""
    statuses = (PaymentStatus.REVIEW, PaymentStatus.OPEN, PaymentStatus.PROCESSING)
    found = set(session.scalars(select(Payment.status).distinct().where(
        Payment.member_id == member_id, Payment.status.in_(statuses))))
    return next((s for s in statuses if s in found), None)


def _forfeit(session: Session, req: DataRequest, owner_type: str, owner_ids: list[int],
             kind: AccountKind, operator_id: int) -> int:
    """Take what is left to zero with one ledger entry an account; returns the total."""
    if not owner_ids:
        return 0
    accounts = session.scalars(select(ledger.Account).where(
        ledger.Account.kind == kind, ledger.Account.owner_type == owner_type,
        ledger.Account.owner_id.in_(owner_ids)).order_by(ledger.Account.id)
        .with_for_update().execution_options(populate_existing=True)).all()
    total = 0
    for acc in accounts:
        if acc.balance > 0:
            total += acc.balance
            ledger.post(session, acc, -acc.balance, reason=CLOSED_REASON,
                        key=f"closure:{req.id}", source=("data_request", req.id),
                        operator_id=operator_id)
    return total


def _erase(session: Session, member: Member, cards: list[MemberCard]) -> dict:
    """Blank every field that says who the member is, wherever it was copied."""
    now = clock.now()
    addresses = [a for a in (member.mobile, member.email) if a]
    coupons = session.execute(update(Coupon).where(
        Coupon.member_id == member.id, Coupon.status == CouponStatus.AVAILABLE)
        .values(status=CouponStatus.EXPIRED)).rowcount
    # Gifts not delivered yet would go to no one: marked done, with why.
    session.execute(update(Grant).where(Grant.member_id == member.id,
                                        Grant.delivered_at.is_(None))
                    .values(delivered_at=now, last_error="account closed"))
    session.execute(update(GiftCard).where(GiftCard.buyer_member_id == member.id)
                    .values(buyer_name=None, buyer_phone=None, buyer_email=None,
                            message=None))
    # A card given to the member keeps the member's name and address as its recipient.
    session.execute(update(GiftCard).where(GiftCard.holder_member_id == member.id)
                    .values(recipient_name=None, recipient_phone=None,
                            recipient_email=None))
    session.execute(delete(InboxMessage).where(InboxMessage.member_id == member.id))
    session.execute(delete(OneTimeCode).where(or_(OneTimeCode.member_id == member.id,
                                                  OneTimeCode.mobile.in_(addresses))))
    if addresses:
        session.execute(update(OutboxMessage).where(OutboxMessage.recipient.in_(addresses))
                        .values(recipient="", body="", subject=""))
        session.execute(update(OutboxMessage).where(OutboxMessage.recipient == "",
                                                    OutboxMessage.status
                                                    == OutboxStatus.PENDING)
                        .values(status=OutboxStatus.FAILED, last_error="account closed"))
    # The audit log keeps who did what and when; the member's values in it go.
    session.execute(update(AuditEntry).where(AuditEntry.object_type == "members",
                                             AuditEntry.object_id == str(member.id))
                    .values(before=None, after={"erased": True}))
    session.execute(delete(member_tags).where(member_tags.c.member_id == member.id))
    students_erased = students.forget_member(session, member.id)
    for card in cards:
        card.status = CardStatus.FROZEN
    member.full_name, member.mobile, member.mobile_verified = "", None, False
    member.email = member.born_on = member.gender = member.address = None
    member.id_number = member.locale = None
    member.custom = {}
    member.closed_at = now
    member.session_version += 1
    return {"coupons_voided": coupons, "cards_frozen": len(cards),
            "student_requests_erased": students_erased}


def refuse(session: Session, request_id: int, reason: str, *, operator_id: int) -> DataRequest:
    """Refuse a closure (for example: a dispute about an order is still open); the member
    reads the reason on their data page and may ask again."""
    reason = (reason or "").strip()
    if not reason or len(reason) > NOTE_MAX:
        raise _invalid({"reason": _("Tell the member why (at most %(n)d characters).",
                                    n=NOTE_MAX)})
    with transaction(session):
        req = _locked(session, request_id)
        req.status, req.open_member_id = RequestStatus.REFUSED, None
        req.processed_at, req.processed_by, req.reason = clock.now(), operator_id, reason
        record(session, operator_id, "data_request.refuse", req,
               before={"status": RequestStatus.REQUESTED},
               after={"status": req.status, "reason": reason})
        return req


# --- staff lists -------------------------------------------------------------------------------

def get(session: Session, request_id: int) -> DataRequest | None:
    return session.scalar(select(DataRequest).options(
        joinedload(DataRequest.member), joinedload(DataRequest.operator))
        .where(DataRequest.id == request_id))


def requests_page(session: Session, *, kind: str = "", status: str = "", q: str = "",
                  before_id: int | None = None, limit: int = PAGE) -> list[DataRequest]:
    """Newest first, `limit` at a time; `q` is a member's number (#12), name or mobile."""
    query = (select(DataRequest).join(Member, Member.id == DataRequest.member_id)
             .options(joinedload(DataRequest.member), joinedload(DataRequest.operator))
             .order_by(DataRequest.id.desc()).limit(limit))
    if kind in set(RequestKind):
        query = query.where(DataRequest.kind == kind)
    if status in set(RequestStatus):
        query = query.where(DataRequest.status == status)
    q = q.strip()
    # Plain 0-9 only: "²" passes isdigit() yet int() refuses it.
    if q.lstrip("#").isdecimal() and q.lstrip("#").isascii():
        query = query.where(DataRequest.member_id == int(q.lstrip("#")))
    elif q:
        like = f"%{q}%"
        query = query.where(or_(Member.full_name.ilike(like), Member.mobile.like(like)))
    if before_id:
        query = query.where(DataRequest.id < before_id)
    return list(session.scalars(query))


def open_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(DataRequest).where(
        DataRequest.status == RequestStatus.REQUESTED)) or 0
