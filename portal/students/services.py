"""Student ID verification (spec 2.6): requests, review, status, perks and the sweeps.

The student tag is given on approval and taken away on expiry; the student group is a
segment whose one rule is "tagged with the student tag", so joining and leaving the group
follows the tag. Whether a member is a student *now* is always read from the approvals
and the clock (`is_verified_student`), never from the tag, so a package sale at 00:00:30
does not depend on a sweep having run.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    delete,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from portal import clock, jobs
from portal.benefits.models import BenefitPackage, PackageStatus
from portal.coupons import services as coupons
from portal.coupons.errors import CouponError
from portal.coupons.models import CouponPackage, CouponTemplate, TemplateStatus
from portal.db import transaction
from portal.loyalty.tiers import add_months
from portal.members import segments
from portal.members.models import Member, Segment, Tag, member_tags
from portal.members.services import TAG_MAX, tag_named
from portal.notifications import services as notifications
from portal.notifications.models import MessageKind
from portal.staff.services import record
from portal.students.errors import StudentError, StudentErrorCode
from portal.students.models import (
    GiftKind,
    GiftRule,
    StudentSettings,
    StudentVerification,
    VerificationStatus,
)
from portal.web.uploads import UploadError, delete_private_image, save_private_image

PHOTO_FOLDER = "students"
SCHOOL_MAX = 120
NUMBER_MAX = 40
REASON_MAX = 500
PAGE_TITLE_MAX = 120
TEXT_MAX = 2000
VALIDITY_MONTHS_MAX = 60
REMINDER_DAYS_MAX = 90
RETENTION_DAYS_MAX = 365
GRADUATION_YEARS_MAX = 10
CHART_DAYS = 30
QUEUE_PAGE = 50
# Approvals a member ever had: an earlier one makes the next a re-verification.
EVER_APPROVED = (VerificationStatus.APPROVED, VerificationStatus.EXPIRED,
                 VerificationStatus.REPLACED)


def _invalid(errors: dict[str, str]) -> StudentError:
    return StudentError(StudentErrorCode.INVALID, _("Please correct the marked fields."),
                        errors=errors)


# --- settings -------------------------------------------------------------------------------

def settings(session: Session) -> StudentSettings:
    """The merchant's settings (unsaved defaults until the first save)."""
    return session.get(StudentSettings, 1) or StudentSettings(
        id=1, validity_months=12, page_title="", page_intro="", perks="",
        gift_kind=GiftKind.NONE, gift_rule=GiftRule.FIRST, reminder_days=14,
        photo_retention_days=30)


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_settings(session: Session, values: dict) -> dict:
    errors: dict[str, str] = {}
    clean = {}
    limits = {"validity_months": (1, VALIDITY_MONTHS_MAX),
              "reminder_days": (1, REMINDER_DAYS_MAX),
              "photo_retention_days": (1, RETENTION_DAYS_MAX)}
    for name, (low, high) in limits.items():
        if not _whole(values.get(name), low, high):
            errors[name] = _("A whole number from %(low)d to %(high)d.", low=low, high=high)
        clean[name] = values.get(name)
    tag = " ".join((values.get("tag_name") or "").split())
    if not tag or len(tag) > TAG_MAX or not tag.isprintable():
        errors["tag_name"] = _("Tags are 1 to %(n)d characters.", n=TAG_MAX)
    clean["tag_name"] = tag
    clean["page_title"] = " ".join((values.get("page_title") or "").split())
    if len(clean["page_title"]) > PAGE_TITLE_MAX:
        errors["page_title"] = _("At most %(n)d characters.", n=PAGE_TITLE_MAX)
    for name in ("page_intro", "perks"):
        clean[name] = (values.get(name) or "").strip().replace("\r\n", "\n")
        if len(clean[name]) > TEXT_MAX:
            errors[name] = _("At most %(n)d characters.", n=TEXT_MAX)
    kind, rule = values.get("gift_kind"), values.get("gift_rule")
    if kind not in set(GiftKind):
        errors["gift_kind"] = _("Choose a gift, or no gift.")
    if rule not in set(GiftRule):
        errors["gift_rule"] = _("Choose when the gift is given.")
    clean["gift_kind"], clean["gift_rule"] = kind, rule
    clean["gift_template_id"] = clean["gift_package_id"] = None
    if kind == GiftKind.COUPON:
        template = session.get(CouponTemplate, values.get("gift_template_id") or 0)
        if template is None or template.status != TemplateStatus.ACTIVE:
            errors["gift_template_id"] = _("Choose an active coupon.")
        else:
            clean["gift_template_id"] = template.id
    elif kind == GiftKind.PACKAGE:
        package = session.get(CouponPackage, values.get("gift_package_id") or 0)
        if package is None or package.status != TemplateStatus.ACTIVE:
            errors["gift_package_id"] = _("Choose an active coupon package.")
        else:
            clean["gift_package_id"] = package.id
    wanted = {int(i) for i in values.get("package_ids") or [] if str(i).isdecimal()}
    known = set(session.scalars(select(BenefitPackage.id).where(
        BenefitPackage.id.in_(wanted)))) if wanted else set()
    if wanted - known:
        errors["package_ids"] = _("A chosen package no longer exists.")
    clean["package_ids"] = sorted(known)
    if errors:
        raise _invalid(errors)
    return clean


def _snapshot(row: StudentSettings, package_ids: list[int]) -> dict:
    names = ("validity_months", "tag_id", "segment_id", "page_title", "page_intro", "perks",
             "gift_kind", "gift_template_id", "gift_package_id", "gift_rule", "reminder_days",
             "photo_retention_days")
    return {**{n: getattr(row, n) for n in names}, "package_ids": package_ids}


def student_package_ids(session: Session) -> list[int]:
    return list(session.scalars(select(BenefitPackage.id).where(
        BenefitPackage.students_only.is_(True)).order_by(BenefitPackage.id)))


def save_settings(session: Session, values: dict, *, operator_id: int | None
                  ) -> StudentSettings:
    """Save all settings at once, audited. The tag is created on first use and the group
    (a segment on the tag) on the first save; changing the tag moves current students to
    the new one and points the group at it. `package_ids` are the paid packages only
    verified students may see and buy."""
    clean = _check_settings(session, values)
    with transaction(session):
        row = session.scalar(select(StudentSettings).where(StudentSettings.id == 1)
                             .with_for_update().execution_options(populate_existing=True))
        if row is None:
            row = settings(session)
            session.add(row)
            try:
                with session.begin_nested():
                    session.flush()
            except IntegrityError:  # saved meanwhile by another request: change theirs
                row = session.scalar(select(StudentSettings).where(StudentSettings.id == 1)
                                     .with_for_update()
                                     .execution_options(populate_existing=True))
        before = _snapshot(row, student_package_ids(session))
        tag = tag_named(session, clean["tag_name"])
        if row.tag_id is not None and row.tag_id != tag.id:
            _move_tag(session, row.tag_id, tag.id)
        row.tag_id = tag.id
        row.segment_id = _ensure_group(session, row.segment_id, tag, operator_id)
        for name in ("validity_months", "page_title", "page_intro", "perks", "gift_kind",
                     "gift_template_id", "gift_package_id", "gift_rule", "reminder_days",
                     "photo_retention_days"):
            setattr(row, name, clean[name])
        row.operator_id, row.updated_at = operator_id, clock.now()
        session.execute(update(BenefitPackage).values(
            students_only=BenefitPackage.id.in_(clean["package_ids"]))
            .where(BenefitPackage.students_only.is_(True)
                   | BenefitPackage.id.in_(clean["package_ids"])))
        session.flush()
        record(session, operator_id, "student.settings", row, before=before,
               after=_snapshot(row, clean["package_ids"]))
        return row


def _group_rules(tag: Tag) -> list[dict]:
    return [{"field": "tag", "op": "in", "value": [tag.id]}]


def _ensure_group(session: Session, segment_id: int | None, tag: Tag,
                  operator_id: int | None) -> int:
    """The student group's segment, made on first save (or after the merchant deleted
    it) and kept pointing at the student tag."""
    rules = _group_rules(tag)
    segment = session.get(Segment, segment_id) if segment_id else None
    if segment is not None:
        if segment.rules != rules:
            segments.update_segment(session, segment.id, name=segment.name,
                                    match="all", rules=rules, operator_id=operator_id)
        return segment.id
    taken = {n.lower() for n in session.scalars(select(Segment.name))}
    base = _("Student members")
    name = next(n for n in (base, *(f"{base} {i}" for i in range(2, 1000)))
                if n.lower() not in taken)
    return segments.create_segment(session, name=name, match="all", rules=rules,
                                   operator_id=operator_id).id


def _insert_tags(session: Session, rows):
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[session.get_bind().dialect.name]
    # ON CONFLICT: a member tagged by hand (or by a parallel run) keeps one row.
    return dialect.insert(member_tags).from_select(["member_id", "tag_id"], rows) \
        .on_conflict_do_nothing()


def _move_tag(session: Session, old_tag_id: int, new_tag_id: int) -> None:
    students = select(StudentVerification.member_id).where(_valid_approval(clock.now()))
    session.execute(_insert_tags(session, select(Member.id, literal(new_tag_id))
                                 .where(Member.id.in_(students))))
    session.execute(delete(member_tags).where(member_tags.c.tag_id == old_tag_id,
                                              member_tags.c.member_id.in_(students)))


def _give_tag(session: Session, member_id: int, tag_id: int | None) -> None:
    if tag_id is None:
        return
    session.execute(_insert_tags(session, select(Member.id, literal(tag_id))
                                 .where(Member.id == member_id)))


# --- being a student ---------------------------------------------------------------------

def _valid_approval(at: datetime) -> ColumnElement[bool]:
    return and_(StudentVerification.status == VerificationStatus.APPROVED,
                StudentVerification.expires_at > at)


def verified_condition(at: datetime | None = None) -> ColumnElement[bool]:
    """"The member is a verified student at `at`" as one boolean over Member, for use in a
    WHERE (package lists, counts) without a query per member."""
    at = at or clock.now()
    return exists().where(StudentVerification.member_id == Member.id, _valid_approval(at))


def is_verified_student(session: Session, member_id: int, at: datetime | None = None) -> bool:
    return bool(session.scalar(select(exists().where(
        StudentVerification.member_id == member_id, _valid_approval(at or clock.now())))))


def verified_student_ids(session: Session, member_ids, at: datetime | None = None) -> set[int]:
    """Which of `member_ids` are verified students at `at`, in one query."""
    ids = {int(i) for i in member_ids}
    if not ids:
        return set()
    return set(session.scalars(select(StudentVerification.member_id).where(
        StudentVerification.member_id.in_(ids), _valid_approval(at or clock.now()))))


def may_buy_package(session: Session, package: BenefitPackage, member_id: int | None,
                    at: datetime | None = None) -> bool:
    """A students-only package is for verified students; any other is not our business."""
    if not package.students_only:
        return True
    return member_id is not None and is_verified_student(session, member_id, at)


def student_packages(session: Session) -> list[BenefitPackage]:
    """Paid packages on sale to verified students only (shown on the student page)."""
    return list(session.scalars(select(BenefitPackage).where(
        BenefitPackage.students_only.is_(True), BenefitPackage.status == PackageStatus.ACTIVE)
        .order_by(BenefitPackage.name)))


def package_choices(session: Session) -> list[BenefitPackage]:
    return list(session.scalars(select(BenefitPackage).where(
        BenefitPackage.status != PackageStatus.ARCHIVED).order_by(BenefitPackage.name)))


# --- the member's request -------------------------------------------------------------------

def latest(session: Session, member_id: int) -> StudentVerification | None:
    """The member's newest request: what their status page shows."""
    return session.scalar(select(StudentVerification).where(
        StudentVerification.member_id == member_id)
        .order_by(StudentVerification.id.desc()).limit(1))


def current_approval(session: Session, member_id: int) -> StudentVerification | None:
    return session.scalar(select(StudentVerification).where(
        StudentVerification.member_id == member_id, _valid_approval(clock.now())))


def has_pending(session: Session, member_id: int) -> bool:
    return session.scalar(select(exists().where(
        StudentVerification.pending_member_id == member_id)))


def _pending_error() -> StudentError:
    return StudentError(StudentErrorCode.PENDING,
                        _("Your earlier request is still waiting for review. You can send "
                          "a new one once it has been decided."))


def submit(session: Session, member_id: int, *, school: str, student_number: str,
           graduation_on: date | None, consent: bool, photo) -> StudentVerification:
    """Ask to be verified. Every field error at once; when anything is wrong (a second
    request while one waits too) nothing is stored, the photo included."""
    school = " ".join((school or "").split())
    number = "".join((student_number or "").split())
    errors: dict[str, str] = {}
    if not school or len(school) > SCHOOL_MAX:
        errors["school"] = _("Enter your school (at most %(n)d characters).", n=SCHOOL_MAX)
    if not number or len(number) > NUMBER_MAX or not number.isprintable():
        errors["student_number"] = _("Enter your student number (at most %(n)d characters).",
                                     n=NUMBER_MAX)
    today = clock.today()
    if graduation_on is None:
        errors["graduation_on"] = _("Enter your expected graduation date.")
    elif graduation_on < today:
        errors["graduation_on"] = _("The graduation date has passed.")
    elif graduation_on > add_months(today, 12 * GRADUATION_YEARS_MAX):
        errors["graduation_on"] = _("The graduation date is too far ahead.")
    if not consent:
        errors["consent"] = _("Agree to the use of your student card photo to continue.")
    if photo is None or not getattr(photo, "filename", ""):
        errors["photo"] = _("Add a photo of your student card.")
    if has_pending(session, member_id):
        raise _pending_error()
    name = None
    if "photo" not in errors:
        try:
            name = save_private_image(photo, PHOTO_FOLDER)
        except UploadError as e:
            errors["photo"] = str(e)
    if errors:
        if name:
            delete_private_image(PHOTO_FOLDER, name)
        raise _invalid(errors)
    try:
        with transaction(session):
            now = clock.now()
            verification = StudentVerification(
                member_id=member_id, pending_member_id=member_id, school=school,
                student_number=number, graduation_on=graduation_on, photo=name,
                consented_at=now, submitted_at=now, status=VerificationStatus.PENDING,
                reason="")
            session.add(verification)
            session.flush()
            return verification
    except IntegrityError:  # a parallel submission got there first
        delete_private_image(PHOTO_FOLDER, name)
        raise _pending_error() from None


def member_photo(session: Session, member_id: int, verification_id: int):
    """The photo's path if the request is the member's and the photo still exists."""
    v = session.get(StudentVerification, verification_id)
    if v is None or v.member_id != member_id:
        return None
    return photo_path(v)


def photo_path(verification: StudentVerification | None):
    if verification is None or not verification.photo:
        return None
    path = _photo_file(verification.photo)
    return path if path.is_file() else None


def _photo_file(name: str):
    from portal.web.uploads import private_path

    return private_path(PHOTO_FOLDER, name)


# --- review -------------------------------------------------------------------------------------

def get(session: Session, verification_id: int) -> StudentVerification | None:
    return session.scalar(select(StudentVerification).options(
        joinedload(StudentVerification.member))
        .where(StudentVerification.id == verification_id))


def review_queue(session: Session, status: str = VerificationStatus.PENDING, *,
                 q: str = "", before_id: int | None = None) -> list[StudentVerification]:
    """Requests by status, oldest pending first (first come, first served), decided ones
    newest first; `q` matches the school, student number, name or mobile."""
    query = select(StudentVerification).options(joinedload(StudentVerification.member)) \
        .join(Member, Member.id == StudentVerification.member_id)
    if status in set(VerificationStatus):
        query = query.where(StudentVerification.status == status)
    if q:
        like = f"%{q.strip()}%"
        query = query.where(StudentVerification.school.ilike(like)
                            | StudentVerification.student_number.ilike(like)
                            | Member.full_name.ilike(like) | Member.mobile.ilike(like))
    oldest_first = status == VerificationStatus.PENDING
    if before_id:
        query = query.where(StudentVerification.id > before_id if oldest_first
                            else StudentVerification.id < before_id)
    order = StudentVerification.id if oldest_first else StudentVerification.id.desc()
    return list(session.scalars(query.order_by(order).limit(QUEUE_PAGE)))


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(StudentVerification.status, func.count())
                           .group_by(StudentVerification.status)).all()
    counts = {str(s): 0 for s in VerificationStatus}
    counts.update({s: n for s, n in rows})
    return counts


def _locked(session: Session, verification_id: int) -> StudentVerification:
    v = session.scalar(select(StudentVerification).where(
        StudentVerification.id == verification_id)
        .with_for_update().execution_options(populate_existing=True))
    if v is None:
        raise StudentError(StudentErrorCode.NOT_FOUND, _("There is no such request."))
    if v.status != VerificationStatus.PENDING:
        raise StudentError(StudentErrorCode.ALREADY_DECIDED,
                           _("This request has already been decided."))
    return v


def valid_until(approved_on: date, months: int, graduation_on: date) -> date:
    """The last day of student status: `months` after approval, but not past graduation."""
    return min(add_months(approved_on, months), graduation_on)


def approve(session: Session, verification_id: int, *, operator_id: int | None
            ) -> StudentVerification:
    """Approve a pending request: status until a date, the tag (and so the group), the
    gift per the rule, a message. Twice at once: the row lock lets one through."""
    with transaction(session):
        v = _locked(session, verification_id)
        today = clock.today()
        if v.graduation_on < today:
            raise StudentError(StudentErrorCode.GRADUATED,
                               _("The graduation date has passed: reject the request "
                                 "with that reason instead."))
        conf = settings(session)
        now = clock.now()
        earlier = session.scalar(select(exists().where(
            StudentVerification.member_id == v.member_id,
            StudentVerification.status.in_(EVER_APPROVED))))
        session.execute(update(StudentVerification).where(
            StudentVerification.member_id == v.member_id,
            StudentVerification.status == VerificationStatus.APPROVED)
            .values(status=VerificationStatus.REPLACED))
        v.status, v.pending_member_id = VerificationStatus.APPROVED, None
        v.decided_at, v.decided_by = now, operator_id
        v.valid_until_on = valid_until(today, conf.validity_months, v.graduation_on)
        v.expires_at = clock.start_of_local_day(v.valid_until_on + timedelta(days=1))
        _give_tag(session, v.member_id, conf.tag_id)
        if conf.gift_kind != GiftKind.NONE and (conf.gift_rule == GiftRule.EACH
                                                or not earlier):
            _give_gift(session, v, conf)
        notifications.send(session, MessageKind.STUDENT_APPROVED, v.member_id,
                           {"until": v.valid_until_on.isoformat()},
                           dedupe_key=f"student_approved:{v.id}")
        record(session, operator_id, "student.approve", v,
               before={"status": VerificationStatus.PENDING},
               after={"status": v.status, "valid_until_on": v.valid_until_on,
                      "gift_key": v.gift_key, "gift_error": v.gift_error})
        return v


def _give_gift(session: Session, v: StudentVerification, conf: StudentSettings) -> None:
    key = f"student:{v.id}"
    try:
        # A savepoint: a gift out of stock must not undo the approval itself.
        with session.begin_nested():
            coupons.issue(session, member_id=v.member_id, key=key,
                          source=coupons.Source("student", ref=str(v.id),
                                                reason=_("Student ID verified")),
                          template_id=conf.gift_template_id if
                          conf.gift_kind == GiftKind.COUPON else None,
                          package_id=conf.gift_package_id if
                          conf.gift_kind == GiftKind.PACKAGE else None)
        v.gift_key = key
    except CouponError as e:
        v.gift_error = str(e)[:200]


def reject(session: Session, verification_id: int, reason: str, *,
           operator_id: int | None) -> StudentVerification:
    """Refuse a pending request; the member reads the reason and may send a new one."""
    reason = (reason or "").strip()
    if not reason or len(reason) > REASON_MAX:
        raise _invalid({"reason": _("Tell the member why (at most %(n)d characters).",
                                    n=REASON_MAX)})
    with transaction(session):
        v = _locked(session, verification_id)
        v.status, v.pending_member_id = VerificationStatus.REJECTED, None
        v.decided_at, v.decided_by, v.reason = clock.now(), operator_id, reason
        notifications.send(session, MessageKind.STUDENT_REJECTED, v.member_id,
                           {"reason": reason}, dedupe_key=f"student_rejected:{v.id}")
        record(session, operator_id, "student.reject", v,
               before={"status": VerificationStatus.PENDING},
               after={"status": v.status, "reason": reason})
        return v


# --- sweeps -------------------------------------------------------------------------------------

def _due(session: Session, *conditions, limit: int = 500) -> list[StudentVerification]:
    # SKIP LOCKED: a second sweep running at once takes other rows, not the same ones.
    return list(session.scalars(
        select(StudentVerification).where(*conditions).order_by(StudentVerification.id)
        .limit(limit).with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)))


# Every minute, not daily: status ends at the merchant's midnight, and the tag (and so the
# group that campaigns target) should not outlive it by hours.
@jobs.on_tick("student_expiry")
def expire_lapsed(session: Session) -> int:
    """Approvals past their date become `expired`: the tag goes (and with it the group)
    and the member is told. Safe twice: an expired row is not picked again."""
    with transaction(session):
        lapsed = _due(session, StudentVerification.status == VerificationStatus.APPROVED,
                      StudentVerification.expires_at <= clock.now())
        if not lapsed:
            return 0
        tag_id = settings(session).tag_id
        now = clock.now()
        for v in lapsed:
            v.status, v.expired_at = VerificationStatus.EXPIRED, now
        member_ids = sorted({v.member_id for v in lapsed})
        if tag_id is not None:
            session.execute(delete(member_tags).where(member_tags.c.tag_id == tag_id,
                                                      member_tags.c.member_id.in_(member_ids)))
        notifications.send_each(session, MessageKind.STUDENT_EXPIRED,
                                {v.member_id: {"on": v.valid_until_on.isoformat()}
                                 for v in lapsed},
                                dedupe_key=None)
        return len(lapsed)


@jobs.on_daily("student_reminders")
def remind_expiring(session: Session) -> int:
    """Once per approval, `reminder_days` before its last day, invite re-verification."""
    with transaction(session):
        days = settings(session).reminder_days
        horizon = clock.start_of_local_day(clock.today() + timedelta(days=days + 1))
        due = _due(session, StudentVerification.status == VerificationStatus.APPROVED,
                   StudentVerification.reminded_at.is_(None),
                   StudentVerification.expires_at > clock.now(),
                   StudentVerification.expires_at <= horizon)
        now = clock.now()
        for v in due:
            v.reminded_at = now
            notifications.send(session, MessageKind.STUDENT_EXPIRING, v.member_id,
                               {"on": v.valid_until_on.isoformat()},
                               dedupe_key=f"student_expiring:{v.id}")
        return len(due)


@jobs.on_daily("student_photos")
def delete_old_photos(session: Session) -> int:
    """Card photos go `photo_retention_days` after the decision. The file is removed
    before the row says so: if the commit then fails, the next run finds the row again."""
    with transaction(session):
        cutoff = clock.now() - timedelta(days=settings(session).photo_retention_days)
        due = _due(session, StudentVerification.photo.is_not(None),
                   StudentVerification.decided_at.is_not(None),
                   StudentVerification.decided_at <= cutoff)
        now = clock.now()
        for v in due:
            delete_private_image(PHOTO_FOLDER, v.photo)
            v.photo, v.photo_deleted_at = None, now
        return len(due)


# --- dashboard ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Day:
    on: date
    new: int
    expired: int


@dataclass(frozen=True)
class Dashboard:
    students: int
    members: int
    new_yesterday: int
    expired_yesterday: int
    days: list[Day]

    @property
    def share(self) -> float:
        return self.students / self.members if self.members else 0.0


def dashboard(session: Session) -> Dashboard:
    """Student members now and their share of all members; per local day of the last 30
    (yesterday too) how many were approved and how many lapsed. Two queries."""
    now, today = clock.now(), clock.today()
    starts = [clock.start_of_local_day(today - timedelta(days=i))
              for i in range(CHART_DAYS - 1, -2, -1)]  # 30 day starts, then tomorrow's
    approved = StudentVerification.status.in_(EVER_APPROVED)
    lapsed = StudentVerification.status == VerificationStatus.EXPIRED
    columns = []
    for start, end in zip(starts, starts[1:], strict=False):
        columns.append(func.count(case((and_(approved, StudentVerification.decided_at >= start,
                                             StudentVerification.decided_at < end), 1))))
        columns.append(func.count(case((and_(lapsed, StudentVerification.expires_at >= start,
                                             StudentVerification.expires_at < end), 1))))
    columns.append(func.count(func.distinct(case((_valid_approval(now),
                                                  StudentVerification.member_id)))))
    row = session.execute(select(*columns).select_from(StudentVerification)).one()
    members = session.scalar(select(func.count(Member.id)).where(
        Member.became_member_at.is_not(None)))
    days = [Day(on=clock.local(start).date(), new=row[2 * i], expired=row[2 * i + 1])
            for i, start in enumerate(starts[:-1])]
    yesterday = days[-2]
    return Dashboard(students=row[-1], members=members, new_yesterday=yesterday.new,
                     expired_yesterday=yesterday.expired, days=days)


# --- account closure ----------------------------------------------------------------------------

def forget_member(session: Session, member_id: int) -> int:
    """In the caller's transaction: erase what the member gave (school, number, photo) from
    every request, and refuse one still waiting. Returns how many requests were erased.

    The photo file goes first: if the commit then fails, the row still names a missing
    file, which `photo_path` already treats as gone."""
    rows = list(session.scalars(
        select(StudentVerification).where(StudentVerification.member_id == member_id)
        .with_for_update().execution_options(populate_existing=True)))
    now = clock.now()
    for v in rows:
        if v.photo:
            delete_private_image(PHOTO_FOLDER, v.photo)
            v.photo, v.photo_deleted_at = None, now
        if v.status == VerificationStatus.PENDING:
            v.status, v.pending_member_id, v.decided_at = VerificationStatus.REJECTED, None, now
            v.reason = "account closed"
        v.school, v.student_number = "", ""
    return len(rows)
