"""Member rules: cards, one-time codes, registration with source tracking, profiles,
adding customers by hand, and the registration pages merchants build."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from portal import clock, ledger
from portal.db import transaction
from portal.members.attributes import (
    ATTRIBUTES,
    CUSTOM_PREFIX,
    MAX_CUSTOM_ATTRIBUTES,
    Attribute,
    catalogue,
    clean_answers,
    normalize_mobile,
)
from portal.members.errors import MemberError, MemberErrorCode
from portal.members.models import (
    AttributeKind,
    CardPlan,
    CardStatus,
    CodePurpose,
    CustomAttribute,
    Member,
    MemberCard,
    OneTimeCode,
    PageStatus,
    RegistrationField,
    RegistrationPage,
    Store,
    Tag,
    Tier,
    TrackingLink,
)
from portal.notifications import services as notifications
from portal.notifications.models import Channel
from portal.staff.services import record

TRACKING_MAX = 64
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,62}[a-z0-9])$")
LINK_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes: 0/o, 1/l/i


def _region() -> str:
    return current_app.config["DEFAULT_REGION"]


# --- cards -----------------------------------------------------------------------------

# Luhn doubles every second digit from the right and sums the digits of each product:
# 0→0, 1→2, …, 5→1 (10), …, 9→9 (18).
_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")


def luhn_check_digit(digits: str) -> str:
    """The digit that completes `digits` (ASCII digits) to a valid Luhn number. Slices and
    a translation table rather than a loop per digit: an import numbers 50,000 cards."""
    backwards = digits[::-1]
    # Summing the ASCII codes and taking 48 ("0") off each: no int() per digit.
    codes = (backwards[0::2].translate(_LUHN_DOUBLED) + backwards[1::2]).encode()
    return str((48 * len(codes) - sum(codes)) % 10)


def is_valid_card_number(number: str) -> bool:
    return number.isdecimal() and number.isascii() and len(number) == 16 and \
        luhn_check_digit(number[:-1]) == number[-1]


def new_card_number() -> str:
    """16 digits: 15 random (unguessable, not sequential) plus a Luhn check digit."""
    return new_card_numbers(1)[0]


_BODIES = 9 * 10 ** 14                      # 15-digit bodies: 10**14 up to 10**15 - 1
_UNBIASED = 2 ** 64 - 2 ** 64 % _BODIES     # 64-bit draws at or above this are redrawn


def new_card_numbers(count: int) -> list[str]:
    """`count` numbers as `new_card_number` gives them, from one read of the system's
    random source for all of them (an import numbers 50,000 cards at once). A draw is
    kept only below the largest multiple of the bodies' range, so each body is equally
    likely."""
    numbers: list[str] = []
    while len(numbers) < count:
        for draw in memoryview(secrets.token_bytes(8 * (count - len(numbers)))).cast("Q"):
            if draw < _UNBIASED:
                body = str(10 ** 14 + draw % _BODIES)
                numbers.append(body + luhn_check_digit(body))
    return numbers


def issue_card(session: Session, member: Member, plan: CardPlan, *,
               operator_id: int | None = None) -> MemberCard:
    """Issue a card of `plan` in its lowest tier; the customer becomes a member.

    Runs in the caller's transaction. One card per plan per member (a unique constraint).
    """
    now = clock.now()
    existing = session.scalar(select(MemberCard).filter_by(member_id=member.id,
                                                           plan_id=plan.id))
    if existing is not None:
        return existing
    tier = session.scalar(select(Tier).where(Tier.plan_id == plan.id).order_by(Tier.rank)
                          .limit(1))
    for _attempt in range(5):
        number = new_card_number()
        if session.scalar(select(MemberCard.id).where(MemberCard.number == number)) is None:
            break
    card = MemberCard(
        number=number, member_id=member.id, plan_id=plan.id, tier_id=tier.id,
        status=CardStatus.ACTIVE, issued_at=now,
        expires_at=now + timedelta(days=plan.validity_days) if plan.validity_days else None)
    session.add(card)
    if member.became_member_at is None:
        member.became_member_at = now
    session.flush()
    if operator_id is not None:
        record(session, operator_id, "card.issue", card,
               after={"number": card.number, "plan_id": plan.id, "member_id": member.id})
    return card


def default_plan(session: Session) -> CardPlan | None:
    return session.scalar(select(CardPlan).order_by(CardPlan.is_default.desc(), CardPlan.id)
                          .limit(1))


# --- one-time codes --------------------------------------------------------------------

def _hash_code(mobile: str, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{mobile}:{code}".encode(), hashlib.sha256).hexdigest()


def request_code(session: Session, raw_mobile: str, purpose: CodePurpose, *,
                 payload: dict | None = None, member_id: int | None = None) -> OneTimeCode:
    """Send a new 6-digit code; earlier unused codes to the number stop working."""
    mobile = normalize_mobile(raw_mobile, _region())
    cfg = current_app.config
    with transaction(session):
        now = clock.now()
        last = session.scalar(select(OneTimeCode).where(OneTimeCode.mobile == mobile)
                              .order_by(OneTimeCode.id.desc()).limit(1))
        if last is not None and last.created_at + cfg["OTP_RESEND_AFTER"] > now:
            wait = int((last.created_at + cfg["OTP_RESEND_AFTER"] - now).total_seconds()) + 1
            raise MemberError(MemberErrorCode.CODE_TOO_SOON,
                              ngettext("You can ask for a new code in %(num)d second.",
                                       "You can ask for a new code in %(num)d seconds.", wait),
                              field="mobile", wait=wait)
        session.execute(update(OneTimeCode).where(OneTimeCode.mobile == mobile,
                                                  OneTimeCode.used_at.is_(None))
                        .values(used_at=now))
        code = f"{secrets.randbelow(1_000_000):06d}"
        otp = OneTimeCode(mobile=mobile, purpose=purpose, code_hash=_hash_code(mobile, code),
                          payload=payload or {}, member_id=member_id, created_at=now,
                          expires_at=now + cfg["OTP_TTL"])
        session.add(otp)
        minutes = int(cfg["OTP_TTL"].total_seconds() // 60)
        notifications.queue(
            session, channel=Channel.SMS, recipient=mobile, template="otp",
            body=_("%(merchant)s: your code is %(code)s. It expires in %(minutes)d minutes. "
                   "Never share it.", merchant=cfg["MERCHANT_NAME"], code=code,
                   minutes=minutes))
        session.flush()
        return otp


def _check_code(session: Session, code_id: int, code: str,
                purpose: CodePurpose) -> tuple[OneTimeCode | None, MemberError | None]:
    """Inside a write transaction: the code if right, else the refusal to raise after commit
    (so a wrong try still counts)."""
    otp = session.scalar(select(OneTimeCode).where(OneTimeCode.id == code_id,
                                                   OneTimeCode.purpose == purpose)
                         .with_for_update().execution_options(populate_existing=True))
    if otp is None or otp.used_at is not None:
        return None, MemberError(MemberErrorCode.CODE_EXPIRED,
                                 _("This code is no longer valid. Ask for a new one."),
                                 field="code")
    if otp.expires_at <= clock.now():
        otp.used_at = clock.now()
        return None, MemberError(MemberErrorCode.CODE_EXPIRED,
                                 _("This code has expired. Ask for a new one."), field="code")
    if not hmac.compare_digest(otp.code_hash, _hash_code(otp.mobile, (code or "").strip())):
        otp.attempts += 1
        left = current_app.config["OTP_MAX_ATTEMPTS"] - otp.attempts
        if left <= 0:
            otp.used_at = clock.now()
            return None, MemberError(MemberErrorCode.CODE_BURNT,
                                     _("Too many wrong tries. Ask for a new code."),
                                     field="code")
        return None, MemberError(MemberErrorCode.CODE_INVALID,
                                 ngettext("That code is not right. %(num)d try left.",
                                          "That code is not right. %(num)d tries left.", left),
                                 field="code")
    otp.used_at = clock.now()
    return otp, None


def pending_code(session: Session, code_id: int | None) -> OneTimeCode | None:
    if code_id is None:
        return None
    return session.get(OneTimeCode, code_id)


def sign_in_with_code(session: Session, code_id: int, code: str) -> Member:
    """Sign in by code; a number we do not know yet signs up on the default plan."""
    refusal = None
    with transaction(session):
        otp, refusal = _check_code(session, code_id, code, CodePurpose.SIGN_IN)
        if otp is not None:
            member = session.scalar(select(Member).where(Member.mobile == otp.mobile))
            if member is None:
                member = _create_member(session, otp.mobile, {}, otp.payload.get("attribution"),
                                        plan=default_plan(session))
            member.mobile_verified = True
            if not member.is_member:
                plan = default_plan(session)
                if plan is not None:
                    issue_card(session, member, plan)
            return member
    raise refusal


def _create_member(session: Session, mobile: str, answers: dict, attribution: dict | None,
                   *, plan: CardPlan | None, store_id: int | None = None) -> Member:
    attribution = attribution or {}
    member = Member(mobile=mobile, mobile_verified=True, custom={},
                    enroll_page_id=attribution.get("page_id"),
                    enroll_link_id=attribution.get("link_id"),
                    enroll_campaign=attribution.get("campaign") or None,
                    enroll_source=attribution.get("source") or None,
                    enroll_content=attribution.get("content") or None,
                    enroll_store_id=store_id)
    apply_answers(member, answers)
    session.add(member)
    session.flush()
    if plan is not None:
        issue_card(session, member, plan)
    return member


def apply_answers(member: Member, answers: dict, *, only_empty: bool = False) -> None:
    """Put cleaned answers on the member: presets in their columns, custom ones by key."""
    custom = dict(member.custom or {})
    for name, value in answers.items():
        if name.startswith(CUSTOM_PREFIX):
            key = name.removeprefix(CUSTOM_PREFIX)
            if not (only_empty and custom.get(key) not in (None, "")):
                custom[key] = value.isoformat() if hasattr(value, "isoformat") else value
        elif not (only_empty and getattr(member, name) not in (None, "")):
            # The name column holds "" rather than NULL for "no name given".
            setattr(member, name, "" if value is None and name == "full_name" else value)
    member.custom = custom  # a new dict, so the JSON column is seen as changed


def custom_attributes(session: Session) -> list[CustomAttribute]:
    return list(session.scalars(select(CustomAttribute).order_by(CustomAttribute.id)))


def attribute_catalogue(session: Session) -> dict[str, Attribute]:
    return catalogue(custom_attributes(session))


def profile_attributes(session: Session) -> dict[str, Attribute]:
    """What a member edits on their profile: the presets, then the custom attributes."""
    return {name: attr for name, attr in attribute_catalogue(session).items()
            if name in PROFILE_FIELDS or attr.custom}


def profile_values(member: Member, attributes: dict[str, Attribute]) -> dict:
    """The profile form's starting values (the ID number box starts empty: it is masked)."""
    values = {}
    for name, attr in attributes.items():
        value = (member.custom or {}).get(attr.key) if attr.custom else getattr(member, name)
        if name == "id_number":
            value = ""
        values[name] = value.isoformat() if hasattr(value, "isoformat") else (value or "")
    return values


def custom_values(session: Session, member: Member) -> list[tuple[Attribute, object]]:
    """The member's custom attribute values, for display (dates as dates)."""
    from datetime import date as date_type

    out = []
    for attr in attribute_catalogue(session).values():
        if not attr.custom:
            continue
        value = (member.custom or {}).get(attr.key)
        if value and attr.kind == "date":
            value = date_type.fromisoformat(value)
        out.append((attr, value))
    return out


# --- registration pages (member side) --------------------------------------------------

@dataclass(frozen=True)
class Attribution:
    page_id: int
    link_id: int | None = None
    campaign: str = ""
    source: str = ""
    content: str = ""

    def as_dict(self) -> dict:
        return {"page_id": self.page_id, "link_id": self.link_id, "campaign": self.campaign,
                "source": self.source, "content": self.content}


def published_page(session: Session, slug: str) -> RegistrationPage | None:
    return session.scalar(
        select(RegistrationPage).options(selectinload(RegistrationPage.fields))
        .where(RegistrationPage.slug == slug, RegistrationPage.status == PageStatus.PUBLISHED))


def page_by_link(session: Session, code: str) -> TrackingLink | None:
    return session.scalar(select(TrackingLink).where(TrackingLink.code == code))


def record_visit(session: Session, page_id: int, link_id: int | None) -> None:
    """Count one visit, with a relative UPDATE so parallel visits are all counted."""
    with transaction(session):
        session.execute(update(RegistrationPage).where(RegistrationPage.id == page_id)
                        .values(visit_count=RegistrationPage.visit_count + 1))
        if link_id is not None:
            session.execute(update(TrackingLink).where(TrackingLink.id == link_id)
                            .values(visit_count=TrackingLink.visit_count + 1))


def clean_tracking(value: str | None) -> str:
    """A tracking value from a URL: kept if short and printable, else dropped."""
    value = (value or "").strip()
    if len(value) > TRACKING_MAX or not value.isprintable():
        return ""
    return value


def member_by_mobile(session: Session, raw_mobile: str) -> Member | None:
    mobile = normalize_mobile(raw_mobile, _region())
    return session.scalar(select(Member).where(Member.mobile == mobile))


def start_registration(session: Session, page_id: int, raw_mobile: str, answers: dict,
                       attribution: dict | None) -> OneTimeCode:
    """Check the form and send a code; nothing about the member is stored until it's verified.

    A number that already belongs to a member raises ALREADY_MEMBER: the sign-in path.
    """
    page = session.get(RegistrationPage, page_id)
    if page is None or not page.is_published:
        raise MemberError(MemberErrorCode.PAGE_NOT_PUBLISHED,
                          _("This registration page is not open."))
    fields = {f.attribute: f for f in page.fields}
    known = attribute_catalogue(session)
    errors = {}
    try:
        mobile = normalize_mobile(raw_mobile, _region())
    except MemberError as e:
        errors["mobile"] = str(e)
    try:
        cleaned = clean_answers(answers, {n for n, f in fields.items() if f.required},
                                {n: known[n] for n in fields if n in known})
    except MemberError as e:
        errors.update(e.details["errors"])
    if errors:
        raise MemberError(MemberErrorCode.INVALID_VALUE, _("Please correct the marked fields."),
                          errors=errors)
    existing = session.scalar(select(Member).where(Member.mobile == mobile))
    if existing is not None and existing.is_member:
        raise MemberError(MemberErrorCode.ALREADY_MEMBER,
                          _("You are already a member. Sign in with your mobile number."),
                          field="mobile")
    payload = {"page_id": page.id,
               "answers": {k: v.isoformat() if hasattr(v, "isoformat") else v
                           for k, v in cleaned.items()},
               "attribution": attribution if attribution and
               attribution.get("page_id") == page.id else {"page_id": page.id}}
    return request_code(session, mobile, CodePurpose.REGISTER, payload=payload)


def complete_registration(session: Session, code_id: int, code: str) -> Member:
    """Verify the code and create the member with its card and source, exactly once.

    A customer already on file (added by hand, imported) with this number is made a
    member and keeps what it had; someone who became a member meanwhile is signed in.
    """
    refusal = None
    with transaction(session):
        otp, refusal = _check_code(session, code_id, code, CodePurpose.REGISTER)
        if otp is not None:
            page = session.get(RegistrationPage, otp.payload["page_id"])
            known = attribute_catalogue(session)
            given = otp.payload.get("answers", {})
            answers = clean_answers(given, set(), {n: known[n] for n in given if n in known})
            member = session.scalar(select(Member).where(Member.mobile == otp.mobile))
            if member is None:
                try:
                    with session.begin_nested():
                        member = _create_member(session, otp.mobile, answers,
                                                otp.payload.get("attribution"), plan=page.plan)
                except IntegrityError:
                    # A parallel verification of the same number won: no second member.
                    member = session.scalar(select(Member).where(Member.mobile == otp.mobile))
            elif not member.is_member:
                apply_answers(member, answers, only_empty=True)
                _set_attribution_if_empty(member, otp.payload.get("attribution") or {})
                member.mobile_verified = True
                issue_card(session, member, page.plan)
            return member
    raise refusal


def _set_attribution_if_empty(member: Member, attribution: dict) -> None:
    if member.enroll_page_id is None and attribution:
        member.enroll_page_id = attribution.get("page_id")
        member.enroll_link_id = attribution.get("link_id")
        member.enroll_campaign = attribution.get("campaign") or None
        member.enroll_source = attribution.get("source") or None
        member.enroll_content = attribution.get("content") or None


# --- the signed-in member --------------------------------------------------------------

def load_for_session(session: Session, member_id: int, version: int) -> Member | None:
    member = session.get(Member, member_id)
    if member is None or member.session_version != version or member.is_closed:
        return None
    return member


def sign_out(session: Session, member_id: int) -> None:
    with transaction(session):
        session.execute(update(Member).where(Member.id == member_id)
                        .values(session_version=Member.session_version + 1))


def set_locale(session: Session, member_id: int, locale: str) -> None:
    if locale not in current_app.config["LANGUAGES"]:
        raise MemberError(MemberErrorCode.INVALID_VALUE, _("Unknown language."))
    with transaction(session):
        session.get(Member, member_id).locale = locale


@dataclass
class MemberHome:
    member: Member
    cards: list[MemberCard]
    points: int
    prepaid_minor: int
    currency: str
    coupons: int


def member_home(session: Session, member_id: int) -> MemberHome:
    """What the card page shows, in a fixed number of queries."""
    member = session.get(Member, member_id)
    cards = list(session.scalars(
        select(MemberCard).options(selectinload(MemberCard.plan), selectinload(MemberCard.tier))
        .where(MemberCard.member_id == member_id).order_by(MemberCard.id)))
    currency = cards[0].plan.currency if cards else current_app.config["DEFAULT_CURRENCY"]
    # Points are the member's; the prepaid balance is each card's (in the first card's
    # currency): one query for both.
    rows = session.execute(
        select(ledger.Account.kind, func.sum(ledger.Account.balance)).where(or_(
            (ledger.Account.owner_type == "member") & (ledger.Account.owner_id == member_id)
            & (ledger.Account.kind == ledger.AccountKind.POINTS),
            (ledger.Account.owner_type == "card")
            & ledger.Account.owner_id.in_([c.id for c in cards])
            & (ledger.Account.currency == currency)))
        .group_by(ledger.Account.kind)).all()
    balances = {kind: int(total or 0) for kind, total in rows}
    from portal.coupons.services import available_count

    return MemberHome(
        member=member, cards=cards,
        points=balances.get(ledger.AccountKind.POINTS, 0),
        prepaid_minor=balances.get(ledger.AccountKind.PREPAID_PRINCIPAL, 0)
        + balances.get(ledger.AccountKind.PREPAID_BONUS, 0),
        currency=currency, coupons=available_count(session, member_id))


PROFILE_FIELDS = ("full_name", "email", "born_on", "gender", "address", "id_number")


def update_profile(session: Session, member_id: int, answers: dict) -> Member:
    """Members edit their own attributes; the mobile number changes only by a new code."""
    editable = profile_attributes(session)
    cleaned = clean_answers(answers, set(), editable)
    with transaction(session):
        member = session.get(Member, member_id)
        # A box left empty clears the value, except the ID number: it is shown masked,
        # so an empty box there means "keep it".
        apply_answers(member, {name: cleaned.get(name) for name in editable
                               if name != "id_number" or name in cleaned})
        return member


def start_mobile_change(session: Session, member_id: int, raw_mobile: str) -> OneTimeCode:
    mobile = normalize_mobile(raw_mobile, _region())
    if session.scalar(select(Member.id).where(Member.mobile == mobile)) is not None:
        raise MemberError(MemberErrorCode.MOBILE_TAKEN,
                          _("This number already belongs to a member."), field="mobile")
    return request_code(session, mobile, CodePurpose.CHANGE_MOBILE, member_id=member_id)


def confirm_mobile_change(session: Session, member_id: int, code_id: int, code: str) -> Member:
    refusal = None
    with transaction(session):
        otp, refusal = _check_code(session, code_id, code, CodePurpose.CHANGE_MOBILE)
        if otp is not None and otp.member_id == member_id:
            if session.scalar(select(Member.id).where(Member.mobile == otp.mobile)):
                refusal = MemberError(MemberErrorCode.MOBILE_TAKEN,
                                      _("This number already belongs to a member."),
                                      field="code")
            else:
                member = session.get(Member, member_id)
                member.mobile = otp.mobile
                member.mobile_verified = True
                return member
        elif otp is not None:
            refusal = MemberError(MemberErrorCode.CODE_INVALID, _("That code is not right."),
                                  field="code")
    raise refusal


# --- staff: customers and members ------------------------------------------------------

def add_customer(session: Session, *, raw_mobile: str | None, answers: dict, as_member: bool,
                 plan_id: int | None, operator_id: int, store_id: int | None,
                 tags: list[str] | None = None) -> Member:
    """Staff add a customer by hand; as a member, a card of the chosen plan is issued."""
    required = {"full_name"}
    errors = {}
    mobile = None
    if raw_mobile:
        try:
            mobile = normalize_mobile(raw_mobile, _region())
        except MemberError as e:
            errors["mobile"] = str(e)
    elif as_member:
        errors["mobile"] = _("A member needs a mobile number.")
    if as_member and not plan_id:
        errors["plan_id"] = _("Choose the card plan.")
    try:
        cleaned = clean_answers(answers, required, {n: ATTRIBUTES[n] for n in PROFILE_FIELDS})
    except MemberError as e:
        errors.update(e.details["errors"])
    if errors:
        raise MemberError(MemberErrorCode.INVALID_VALUE, _("Please correct the marked fields."),
                          errors=errors)
    with transaction(session):
        if mobile and session.scalar(select(Member.id).where(Member.mobile == mobile)):
            raise MemberError(MemberErrorCode.MOBILE_TAKEN,
                              _("This number already belongs to a customer."),
                              errors={"mobile": _("This number already belongs to a customer.")})
        member = Member(mobile=mobile, mobile_verified=False, enroll_store_id=store_id,
                        enroll_source="staff", custom={})
        apply_answers(member, cleaned)
        session.add(member)
        session.flush()
        if as_member:
            plan = session.get(CardPlan, plan_id)
            if plan is None:
                raise MemberError(MemberErrorCode.PLAN_REQUIRED, _("Choose the card plan."),
                                  errors={"plan_id": _("Choose the card plan.")})
            issue_card(session, member, plan, operator_id=operator_id)
        record(session, operator_id, "member.create", member,
               after={"mobile": mobile, "as_member": as_member, "store_id": store_id,
                      **{k: v for k, v in cleaned.items() if k != "id_number"}})
        return member


@dataclass
class MemberFilters:
    q: str = ""
    kind: str = ""          # "", "member", "customer"
    status: str = ""
    page_id: int | None = None
    link_id: int | None = None
    campaign: str = ""
    source: str = ""
    content: str = ""
    plan_id: int | None = None
    store_id: int | None = None
    tag: str = ""
    attr: str = ""          # a custom attribute's key, with...
    attr_value: str = ""    # ...text its value contains (case-insensitive)


def _filtered(query: Select, f: MemberFilters) -> Select:
    if f.q:
        term = f.q.strip()
        digits = re.sub(r"\D", "", term)
        conditions = [Member.full_name.ilike(f"%{term}%")]
        if digits and len(digits) >= 3:
            conditions.append(Member.mobile.like(f"%{digits}%"))
            conditions.append(Member.id.in_(select(MemberCard.member_id)
                                            .where(MemberCard.number.like(f"{digits}%"))))
        if "@" in term:
            conditions.append(Member.email == term.lower())
        query = query.where(or_(*conditions))
    if f.kind == "member":
        query = query.where(Member.became_member_at.is_not(None))
    elif f.kind == "customer":
        query = query.where(Member.became_member_at.is_(None))
    if f.status:
        query = query.where(Member.status == f.status)
    if f.page_id:
        query = query.where(Member.enroll_page_id == f.page_id)
    if f.link_id:
        query = query.where(Member.enroll_link_id == f.link_id)
    for column, value in ((Member.enroll_campaign, f.campaign),
                          (Member.enroll_source, f.source),
                          (Member.enroll_content, f.content)):
        if value:
            query = query.where(column == value)
    if f.plan_id:
        query = query.where(Member.id.in_(select(MemberCard.member_id)
                                          .where(MemberCard.plan_id == f.plan_id)))
    if f.store_id:
        query = query.where(Member.enroll_store_id == f.store_id)
    if f.tag:
        query = query.where(Member.tags.any(Tag.name == f.tag))
    if f.attr and f.attr_value.strip() and ATTRIBUTE_KEY.match(f.attr):
        query = query.where(func.lower(Member.custom[f.attr].as_string()).contains(
            f.attr_value.strip().lower(), autoescape=True))
    return query


def search_members(session: Session, filters: MemberFilters, *, before_id: int | None = None,
                   limit: int = 25) -> list[Member]:
    """Newest first, `limit` at a time ("load more" passes the last id seen)."""
    query = _filtered(select(Member), filters).options(
        selectinload(Member.cards).selectinload(MemberCard.plan),
        selectinload(Member.cards).selectinload(MemberCard.tier))
    if before_id:
        query = query.where(Member.id < before_id)
    return list(session.scalars(query.order_by(Member.id.desc()).limit(limit)))


def count_members(session: Session, filters: MemberFilters) -> int:
    return session.scalar(_filtered(select(func.count(Member.id)), filters))


def tracking_values(session: Session) -> dict[str, list[str]]:
    """The campaign, source and content values in use, for the filter menus."""
    out = {}
    for name, column in (("campaign", Member.enroll_campaign),
                         ("source", Member.enroll_source), ("content", Member.enroll_content)):
        out[name] = list(session.scalars(select(column).where(column.is_not(None))
                                         .distinct().order_by(column)))
    return out


def member_detail(session: Session, member_id: int) -> Member | None:
    return session.scalar(
        select(Member).options(selectinload(Member.cards).selectinload(MemberCard.plan),
                               selectinload(Member.cards).selectinload(MemberCard.tier),
                               selectinload(Member.tags), selectinload(Member.enroll_page))
        .where(Member.id == member_id))


def create_plan(session: Session, *, name: str, currency: str, validity_days: int | None,
                tier_name: str, is_default: bool = False,
                operator_id: int | None = None) -> CardPlan:
    """A card plan with its lowest tier; a new default plan takes over from the old one."""
    from babel.numbers import list_currencies

    if currency not in list_currencies():
        raise MemberError(MemberErrorCode.INVALID_VALUE, _("Unknown currency."),
                          field="currency")
    if validity_days is not None and validity_days <= 0:
        raise MemberError(MemberErrorCode.INVALID_VALUE,
                          _("Validity is a number of days above zero."), field="validity_days")
    with transaction(session):
        if is_default:
            session.execute(update(CardPlan).values(is_default=False))
        plan = CardPlan(name=name.strip(), currency=currency, validity_days=validity_days,
                        is_default=is_default)
        session.add(plan)
        session.flush()
        session.add(Tier(plan_id=plan.id, name=tier_name.strip(), rank=0))
        record(session, operator_id, "plan.create", plan,
               after={"name": plan.name, "currency": currency,
                      "validity_days": validity_days, "is_default": is_default})
        return plan


def create_store(session: Session, *, name: str, code: str, organisation: str = "",
                 store_group: str = "", operator_id: int | None = None) -> Store:
    with transaction(session):
        code = code.strip().upper()
        if session.scalar(select(Store.id).where(Store.code == code)) is not None:
            raise MemberError(MemberErrorCode.INVALID_VALUE, _("Another store has this code."),
                              field="code")
        store = Store(name=name.strip(), code=code, organisation=organisation.strip(),
                      store_group=store_group.strip())
        session.add(store)
        session.flush()
        record(session, operator_id, "store.create", store,
               after={"name": store.name, "code": code})
        return store


def plans(session: Session) -> list[CardPlan]:
    return list(session.scalars(select(CardPlan).options(selectinload(CardPlan.tiers))
                                .order_by(CardPlan.id)))


def stores(session: Session) -> list[Store]:
    return list(session.scalars(select(Store).order_by(Store.name)))


# --- staff: registration pages ---------------------------------------------------------

PAGE_FIELDS = ("name", "title", "slug", "intro", "plan_id", "after_submit_url",
               "existing_member_url", "share_title", "share_summary")


def _page_snapshot(page: RegistrationPage) -> dict:
    snap = {name: getattr(page, name) for name in PAGE_FIELDS}
    snap.update(status=page.status, banner_path=page.banner_path,
                share_image_path=page.share_image_path,
                fields=[[f.attribute, f.required] for f in page.fields])
    return snap


def _check_page_data(session: Session, data: dict, page_id: int | None) -> dict:
    errors = {}
    slug = (data.get("slug") or "").strip().lower()
    if not SLUG.match(slug):
        errors["slug"] = _("3 to 64 lowercase letters, digits and dashes; "
                           "no dash at either end.")
    elif session.scalar(select(RegistrationPage.id).where(RegistrationPage.slug == slug,
                                                          RegistrationPage.id != (page_id or 0))):
        errors["slug"] = _("Another page uses this address.")
    if not session.get(CardPlan, data.get("plan_id") or 0):
        errors["plan_id"] = _("Choose the card plan new members get.")
    for name in ("after_submit_url", "existing_member_url"):
        url = (data.get(name) or "").strip()
        if url and not _is_safe_target(url):
            errors[name] = _("Use a path on this site (starting with /) or an https:// link.")
    if errors:
        raise MemberError(MemberErrorCode.INVALID_VALUE, _("Please correct the marked fields."),
                          errors=errors)
    clean = {k: (data.get(k).strip() if isinstance(data.get(k), str) else data.get(k))
             for k in PAGE_FIELDS}
    clean["slug"] = slug
    for k in ("after_submit_url", "existing_member_url", "share_title", "share_summary"):
        clean[k] = clean[k] or None
    return clean


def _is_safe_target(url: str) -> bool:
    return (url.startswith("/") and not url.startswith("//")) or url.startswith("https://")


def create_page(session: Session, data: dict, *, operator_id: int) -> RegistrationPage:
    """A draft page asking for the full name (optional) besides the mobile number."""
    with transaction(session):
        clean = _check_page_data(session, data, None)
        page = RegistrationPage(**clean, status=PageStatus.DRAFT)
        page.fields = [RegistrationField(attribute="full_name", required=False, position=0)]
        session.add(page)
        session.flush()
        record(session, operator_id, "page.create", page, after=_page_snapshot(page))
        return page


def update_page(session: Session, page_id: int, data: dict, *, operator_id: int,
                banner_path: str | None = None,
                share_image_path: str | None = None) -> RegistrationPage:
    with transaction(session):
        page = _page(session, page_id)
        before = _page_snapshot(page)
        clean = _check_page_data(session, data, page_id)
        for k, v in clean.items():
            setattr(page, k, v)
        if banner_path:
            page.banner_path = banner_path
        if share_image_path:
            page.share_image_path = share_image_path
        record(session, operator_id, "page.update", page, before=before,
               after=_page_snapshot(page))
        return page


def set_published(session: Session, page_id: int, published: bool, *,
                  operator_id: int) -> RegistrationPage:
    with transaction(session):
        page = _page(session, page_id)
        before = _page_snapshot(page)
        page.status = PageStatus.PUBLISHED if published else PageStatus.DRAFT
        if published and page.published_at is None:
            page.published_at = clock.now()
        record(session, operator_id, "page.publish" if published else "page.unpublish", page,
               before=before, after=_page_snapshot(page))
        return page


def _page(session: Session, page_id: int) -> RegistrationPage:
    page = session.scalar(select(RegistrationPage).options(
        selectinload(RegistrationPage.fields)).where(RegistrationPage.id == page_id)
        .with_for_update().execution_options(populate_existing=True))
    if page is None:
        raise MemberError(MemberErrorCode.NOT_FOUND, _("No such page."))
    return page


def _renumber(page: RegistrationPage) -> None:
    for i, f in enumerate(page.fields):
        f.position = i


def add_field(session: Session, page_id: int, attribute: str, required: bool, *,
              operator_id: int) -> RegistrationPage:
    if attribute not in attribute_catalogue(session):
        raise MemberError(MemberErrorCode.INVALID_VALUE, _("Choose a member attribute."),
                          errors={"attribute": _("Choose a member attribute.")})
    with transaction(session):
        page = _page(session, page_id)
        if any(f.attribute == attribute for f in page.fields):
            raise MemberError(MemberErrorCode.INVALID_VALUE, _("This field is on the form."),
                              errors={"attribute": _("This field is on the form.")})
        before = _page_snapshot(page)
        page.fields.append(RegistrationField(attribute=attribute, required=required,
                                             position=len(page.fields)))
        record(session, operator_id, "page.fields", page, before=before,
               after=_page_snapshot(page))
        return page


def change_field(session: Session, page_id: int, attribute: str, *, operator_id: int,
                 required: bool | None = None, move: int = 0,
                 remove: bool = False) -> RegistrationPage:
    """Toggle required, move up (-1) or down (+1), or remove one field of the form."""
    with transaction(session):
        page = _page(session, page_id)
        before = _page_snapshot(page)
        fields = list(page.fields)
        index = next((i for i, f in enumerate(fields) if f.attribute == attribute), None)
        if index is None:
            raise MemberError(MemberErrorCode.NOT_FOUND, _("This field is not on the form."))
        if remove:
            page.fields.remove(fields[index])
        else:
            if required is not None:
                fields[index].required = required
            target = index + move
            if move and 0 <= target < len(fields):
                fields[index], fields[target] = fields[target], fields[index]
                page.fields = fields
        _renumber(page)
        record(session, operator_id, "page.fields", page, before=before,
               after=_page_snapshot(page))
        return page


def reorder_fields(session: Session, page_id: int, order: list[str], *,
                   operator_id: int) -> RegistrationPage:
    """Put the fields in the given order (drag and drop); the set of fields must not change."""
    with transaction(session):
        page = _page(session, page_id)
        by_name = {f.attribute: f for f in page.fields}
        if sorted(order) != sorted(by_name):
            raise MemberError(MemberErrorCode.INVALID_VALUE,
                              _("The form changed meanwhile. Reload the page."))
        before = _page_snapshot(page)
        page.fields = [by_name[name] for name in order]
        _renumber(page)
        record(session, operator_id, "page.fields", page, before=before,
               after=_page_snapshot(page))
        return page


def _check_link_values(values: dict) -> dict:
    errors = {}
    clean = {}
    for name in ("campaign", "source", "content"):
        value = (values.get(name) or "").strip()
        if len(value) > TRACKING_MAX:
            errors[name] = _("At most %(n)d characters.", n=TRACKING_MAX)
        elif value and not value.isprintable():
            errors[name] = _("Use letters, digits and punctuation only.")
        clean[name] = value
    if not errors and not any(clean.values()):
        errors["source"] = _("Give at least one of campaign, source or content.")
    if errors:
        raise MemberError(MemberErrorCode.INVALID_VALUE, _("Please correct the marked fields."),
                          errors=errors)
    return clean


def create_link(session: Session, page_id: int, values: dict, *,
                operator_id: int) -> TrackingLink:
    clean = _check_link_values(values)
    with transaction(session):
        page = _page(session, page_id)
        for _attempt in range(10):
            code = "".join(secrets.choice(LINK_CODE_ALPHABET) for _ in range(7))
            if session.scalar(select(TrackingLink.id).where(TrackingLink.code == code)) is None:
                break
        link = TrackingLink(page_id=page.id, code=code, **clean)
        session.add(link)
        session.flush()
        record(session, operator_id, "link.create", link, after={"page_id": page.id,
                                                                "code": code, **clean})
        return link


def update_link(session: Session, link_id: int, values: dict, *,
                operator_id: int) -> TrackingLink:
    """New values apply to later sign-ups; members keep the values they came with."""
    clean = _check_link_values(values)
    with transaction(session):
        link = session.get(TrackingLink, link_id)
        if link is None:
            raise MemberError(MemberErrorCode.NOT_FOUND, _("No such link."))
        before = {k: getattr(link, k) for k in clean}
        for k, v in clean.items():
            setattr(link, k, v)
        record(session, operator_id, "link.update", link, before=before, after=clean)
        return link


@dataclass
class Funnel:
    visits: int
    registrations: int

    @property
    def conversion(self) -> float | None:
        return self.registrations / self.visits if self.visits else None


def page_list(session: Session) -> list[tuple[RegistrationPage, Funnel]]:
    """Every page with its visits, registrations and conversion, in two queries."""
    pages = list(session.scalars(select(RegistrationPage).options(
        selectinload(RegistrationPage.links), selectinload(RegistrationPage.plan))
        .order_by(RegistrationPage.id.desc())))
    counts = dict(session.execute(
        select(Member.enroll_page_id, func.count(Member.id))
        .where(Member.enroll_page_id.is_not(None), Member.became_member_at.is_not(None))
        .group_by(Member.enroll_page_id)).all())
    return [(p, Funnel(p.visit_count, counts.get(p.id, 0))) for p in pages]


def link_funnels(session: Session, page_id: int) -> dict[int, Funnel]:
    links = session.scalars(select(TrackingLink).where(TrackingLink.page_id == page_id)).all()
    counts = dict(session.execute(
        select(Member.enroll_link_id, func.count(Member.id))
        .where(Member.enroll_page_id == page_id, Member.enroll_link_id.is_not(None),
               Member.became_member_at.is_not(None))
        .group_by(Member.enroll_link_id)).all())
    return {link.id: Funnel(link.visit_count, counts.get(link.id, 0)) for link in links}


def page_for_edit(session: Session, page_id: int) -> RegistrationPage | None:
    return session.scalar(select(RegistrationPage).options(
        selectinload(RegistrationPage.fields), selectinload(RegistrationPage.links))
        .where(RegistrationPage.id == page_id))


def link_by_id(session: Session, link_id: int) -> TrackingLink | None:
    return session.get(TrackingLink, link_id)




def start_preview(session: Session, member_id: int, *, operator_id: int) -> Member:
    """Staff look at the portal as this member; the look itself is audited."""
    with transaction(session):
        member = session.get(Member, member_id)
        if member is None:
            raise MemberError(MemberErrorCode.NOT_FOUND, _("No such member."))
        record(session, operator_id, "member.preview", member)
        return member


def dashboard_counts(session: Session) -> dict[str, int]:
    since = clock.start_of_local_day(clock.today()) - timedelta(days=6)
    return {
        "members": session.scalar(select(func.count(Member.id))
                                  .where(Member.became_member_at.is_not(None))),
        "customers": session.scalar(select(func.count(Member.id))
                                    .where(Member.became_member_at.is_(None))),
        "new_this_week": session.scalar(select(func.count(Member.id))
                                        .where(Member.became_member_at >= since)),
        "published_pages": session.scalar(select(func.count(RegistrationPage.id)).where(
            RegistrationPage.status == PageStatus.PUBLISHED)),
    }


# --- staff: custom member attributes ---------------------------------------------------

ATTRIBUTE_KEY = re.compile(r"^[a-z][a-z0-9_]{1,31}$")


def create_custom_attribute(session: Session, *, name: str, key: str, kind: str,
                            operator_id: int) -> CustomAttribute:
    """A new member attribute (at most 48). Its key and kind never change afterwards:
    values already stored depend on them."""
    name, key = " ".join((name or "").split()), (key or "").strip().lower()
    errors = {}
    if not name or len(name) > 60:
        errors["name"] = _("Give the attribute a name of at most 60 characters.")
    if not ATTRIBUTE_KEY.match(key):
        errors["key"] = _("2 to 32 lowercase letters, digits and underscores, "
                          "starting with a letter.")
    if kind not in {k.value for k in AttributeKind}:
        errors["kind"] = _("Choose text, number or date.")
    with transaction(session):
        if not errors.get("key") and session.scalar(
                select(CustomAttribute.id).where(CustomAttribute.key == key)):
            errors["key"] = _("Another attribute uses this ID.")
        if session.scalar(select(func.count(CustomAttribute.id))) >= MAX_CUSTOM_ATTRIBUTES:
            errors["name"] = _("You have %(n)d custom attributes, the most there can be.",
                               n=MAX_CUSTOM_ATTRIBUTES)
        if errors:
            raise MemberError(MemberErrorCode.INVALID_VALUE,
                              _("Please correct the marked fields."), errors=errors)
        attribute = CustomAttribute(name=name, key=key, kind=kind)
        session.add(attribute)
        session.flush()
        record(session, operator_id, "attribute.create", attribute,
               after={"name": name, "key": key, "kind": kind})
        return attribute


def rename_custom_attribute(session: Session, attribute_id: int, name: str, *,
                            operator_id: int) -> CustomAttribute:
    name = " ".join((name or "").split())
    if not name or len(name) > 60:
        raise MemberError(MemberErrorCode.INVALID_VALUE, _("Please correct the marked fields."),
                          errors={"name": _("Give the attribute a name of at most 60 "
                                            "characters.")})
    with transaction(session):
        attribute = session.get(CustomAttribute, attribute_id)
        if attribute is None:
            raise MemberError(MemberErrorCode.NOT_FOUND, _("No such attribute."))
        before = {"name": attribute.name}
        attribute.name = name
        record(session, operator_id, "attribute.rename", attribute, before=before,
               after={"name": name})
        return attribute


def delete_custom_attribute(session: Session, attribute_id: int, *,
                            operator_id: int) -> None:
    """Remove an attribute no registration form asks for; members' values stay on file."""
    with transaction(session):
        attribute = session.get(CustomAttribute, attribute_id)
        if attribute is None:
            raise MemberError(MemberErrorCode.NOT_FOUND, _("No such attribute."))
        pages = list(session.scalars(
            select(RegistrationPage.name).join(RegistrationField)
            .where(RegistrationField.attribute == CUSTOM_PREFIX + attribute.key)))
        if pages:
            raise MemberError(MemberErrorCode.INVALID_VALUE,
                              _("Registration pages ask for it: %(pages)s. Remove it from "
                                "their forms first.", pages=", ".join(pages)))
        record(session, operator_id, "attribute.delete", attribute,
               before={"name": attribute.name, "key": attribute.key, "kind": attribute.kind})
        session.delete(attribute)


# --- staff: tags ---------------------------------------------------------------------------

TAG_MAX = 40


def set_tags(session: Session, member_id: int, names: list[str], *,
             operator_id: int) -> Member:
    """Replace the member's tags; new tag names are created on first use."""
    clean = []
    for raw in names:
        name = " ".join(raw.split())
        if not name:
            continue
        if len(name) > TAG_MAX or not name.isprintable():
            raise MemberError(MemberErrorCode.INVALID_VALUE,
                              _("Tags are at most %(n)d characters.", n=TAG_MAX),
                              errors={"tags": _("Tags are at most %(n)d characters.",
                                                n=TAG_MAX)})
        if name.casefold() not in {c.casefold() for c in clean}:
            clean.append(name)
    with transaction(session):
        member = session.scalar(select(Member).options(selectinload(Member.tags))
                                .where(Member.id == member_id))
        if member is None:
            raise MemberError(MemberErrorCode.NOT_FOUND, _("No such member."))
        before = [t.name for t in member.tags]
        existing = {t.name: t for t in session.scalars(select(Tag).where(Tag.name.in_(clean)))}
        tags = []
        for name in clean:
            tags.append(existing.get(name) or tag_named(session, name))
        member.tags = tags
        record(session, operator_id, "member.tags", member, before={"tags": before},
               after={"tags": clean})
        return member


def tag_named(session: Session, name: str) -> Tag:
    """The tag of that name, created on first use (also when two requests race)."""
    tag = session.scalar(select(Tag).where(Tag.name == name))
    if tag is None:
        try:
            with session.begin_nested():
                tag = Tag(name=name)
                session.add(tag)
        except IntegrityError:  # created meanwhile by another request
            tag = session.scalar(select(Tag).where(Tag.name == name))
    return tag


def tag_names(session: Session) -> list[str]:
    return list(session.scalars(select(Tag.name).order_by(Tag.name)))


def join_at_till(session: Session, *, raw_mobile: str, full_name: str, plan_id: int | None,
                 store_id: int) -> tuple[Member, MemberCard, bool]:
    """The till's "add member": a new member with a card, or the existing card (False)
    when the number is already a member's. A customer on file gets a card."""
    mobile = normalize_mobile(raw_mobile, _region())
    name = " ".join((full_name or "").split())[:120]
    with transaction(session):
        member = session.scalar(select(Member).where(Member.mobile == mobile))
        if member is not None and member.is_member:
            return member, member.cards[0], False
        plan = session.get(CardPlan, plan_id) if plan_id else default_plan(session)
        if plan is None:
            raise MemberError(MemberErrorCode.PLAN_REQUIRED, _("Choose the card plan."),
                              field="card_plan")
        if member is None:
            member = Member(mobile=mobile, full_name=name, mobile_verified=False, custom={},
                            enroll_store_id=store_id, enroll_source="pos")
            session.add(member)
            session.flush()
        elif name and not member.full_name:
            member.full_name = name
        card = issue_card(session, member, plan)
        return member, card, True


def complete_fields(session: Session, member_id: int, answers: dict) -> Member:
    """Fill in some profile fields (an activity's missing ones), leaving the rest as is.
    Every given field must be valid and not empty."""
    known = attribute_catalogue(session)
    fields = {name: known[name] for name in answers if name in known}
    cleaned = clean_answers(answers, set(fields), fields)
    with transaction(session):
        member = session.get(Member, member_id)
        apply_answers(member, cleaned)
        return member
