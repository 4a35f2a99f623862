"""Segments: saved rules over member attributes, compiled to one SQL condition over Member.

A rule is `{"field": ..., "op": ..., "value": ...}`:

| field                 | op            | value                                            |
|-----------------------|---------------|--------------------------------------------------|
| `plan`                | `in`          | card plan ids: the member has a card of one      |
| `tier`                | `in`          | tier ids: the member has a card in one           |
| `tag`                 | `in`          | tag ids: the member has any of them              |
| `days_since_purchase` | `gte` / `lte` | whole days since the last purchase (or joining)  |
| `birthday_month`      | `in`          | months 1-12 of `born_on`                         |
| `points`              | `between`     | `{"min": int or None, "max": int or None}`       |
| `enroll_source`       | `in`          | enrolment sources (as recorded on the member)    |
| `custom`              | by kind       | `{"key", "kind", "text" / "min"/"max" / "day"}`  |

A `custom` rule tests one of the merchant's own attributes (Member.custom[key]): text
`eq` / `contains` (case-insensitive), number `between` (min and/or max), date `before` /
`after` (ISO days compare as text). A member without a value never matches.

`op` may be left out where the field has only one. A segment matches "all" or "any" of
its rules, and only ever members (customers without a card are never in a segment).
Every condition is an EXISTS subquery or a column test, so a segment never duplicates a
member row, and a count, a list of ids or a bulk tag is one statement.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal

from babel.dates import get_month_names
from babel.lists import format_list
from flask_babel import format_number, get_locale, ngettext
from flask_babel import gettext as _
from sqlalchemy import (
    ColumnElement,
    Numeric,
    Select,
    and_,
    case,
    cast,
    exists,
    extract,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import clock
from portal.db import transaction
from portal.ledger import Account, AccountKind
from portal.members.errors import MemberError, MemberErrorCode
from portal.members.models import (
    CardPlan,
    CustomAttribute,
    Member,
    MemberCard,
    Segment,
    Tag,
    Tier,
    member_tags,
)
from portal.members.services import TAG_MAX, tag_named
from portal.staff.services import record

MATCHES = ("all", "any")
ID_FIELDS = ("plan", "tier", "tag")
FIELDS = ("plan", "tier", "tag", "days_since_purchase", "birthday_month", "points",
          "enroll_source", "custom")
OPS = {"plan": ("in",), "tier": ("in",), "tag": ("in",), "birthday_month": ("in",),
       "enroll_source": ("in",), "points": ("between",), "days_since_purchase": ("gte", "lte"),
       "custom": ("eq", "contains", "between", "before", "after")}
CUSTOM_OPS = {"text": ("eq", "contains"), "number": ("between",), "date": ("before", "after")}
CUSTOM_TEXT_MAX = 255
NAME_MAX = 80
MAX_DAYS = 36_500           # a hundred years: anything longer is a typing slip
MAX_POINTS = 2_000_000_000  # fits the balance column on every backend
MAX_VALUES = 500
SOURCE_MAX = 64

# A closed account is no one any more: no segment, campaign or count takes it in.
IS_MEMBER = and_(Member.became_member_at.is_not(None), Member.closed_at.is_(None))


# --- the catalogue: checking rules ----------------------------------------------------------

def _op(rule: dict) -> object:
    ops = OPS[rule["field"]]
    return rule.get("op", ops[0] if len(ops) == 1 else None)


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _rule_error(rule: dict) -> str | None:
    field, value = rule["field"], rule.get("value")
    if _op(rule) not in OPS[field]:
        return _("Choose how to compare.")
    if field in ID_FIELDS:
        if not isinstance(value, list) or not value:
            return {"plan": _("Choose at least one card plan."),
                    "tier": _("Choose at least one tier."),
                    "tag": _("Choose at least one tag.")}[field]
        if len(value) > MAX_VALUES or not all(_whole(v, 1, 2**31 - 1) for v in value):
            return _("Choose from the list.")
    elif field == "birthday_month":
        if not isinstance(value, list) or not value:
            return _("Choose at least one month.")
        if not all(_whole(v, 1, 12) for v in value):
            return _("Months are 1 to 12.")
    elif field == "enroll_source":
        if not isinstance(value, list) or not value:
            return _("Choose at least one source.")
        if len(value) > MAX_VALUES or not all(
                isinstance(v, str) and v.strip() and len(v) <= SOURCE_MAX for v in value):
            return _("Sources are at most %(n)d characters.", n=SOURCE_MAX)
    elif field == "custom":
        return _custom_error(_op(rule), value)
    elif field == "days_since_purchase":
        if not _whole(value, 0, MAX_DAYS):
            return _("Enter a whole number of days from 0 to %(max)s.",
                     max=format_number(MAX_DAYS))
    elif field == "points":
        if not isinstance(value, dict) or set(value) - {"min", "max"}:
            return _("Enter at least or at most a number of points.")
        low, high = value.get("min"), value.get("max")
        if low is None and high is None:
            return _("Enter at least or at most a number of points.")
        if any(v is not None and not _whole(v, 0, MAX_POINTS) for v in (low, high)):
            return _("Points are a whole number from 0 to %(max)s.",
                     max=format_number(MAX_POINTS))
        if low is not None and high is not None and low > high:
            return _("“At most” cannot be below “at least”.")
    return None


def _custom_error(op, value) -> str | None:
    from datetime import date
    from decimal import Decimal, InvalidOperation

    if not isinstance(value, dict) or not isinstance(value.get("key"), str) or \
            value.get("kind") not in CUSTOM_OPS:
        return _("Choose one of your attributes.")
    if op not in CUSTOM_OPS[value["kind"]]:
        return _("Choose how to compare.")
    if value["kind"] == "text":
        text = value.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > CUSTOM_TEXT_MAX:
            return _("Enter the text to look for.")
    elif value["kind"] == "number":
        bounds = [value.get("min"), value.get("max")]
        if all(b is None for b in bounds):
            return _("Enter at least or at most a number.")
        try:
            low, high = (None if b is None else Decimal(str(b)) for b in bounds)
        except InvalidOperation:
            return _("Enter a number.")
        if any(b is not None and not b.is_finite() for b in (low, high)):
            return _("Enter a number.")
        if low is not None and high is not None and low > high:
            return _("“At most” cannot be below “at least”.")
    else:
        try:
            date.fromisoformat(str(value.get("day")))
        except ValueError:
            return _("Enter a date.")
    return None


def validate(match: str, rules: list) -> dict[str, str]:
    """What is wrong, by rule field ("match", "rules" for the list as a whole); empty if
    the rules can be saved and compiled."""
    errors: dict[str, str] = {}
    if match not in MATCHES:
        errors["match"] = _("Choose whether members match all or any of the rules.")
    if not isinstance(rules, list) or not rules:
        errors["rules"] = _("Add at least one rule.")
        return errors
    for rule in rules:
        if not isinstance(rule, dict) or rule.get("field") not in FIELDS:
            errors["rules"] = _("A rule is not one Tessera knows.")
            continue
        if (message := _rule_error(rule)) is not None:
            errors.setdefault(rule["field"], message)
    return errors


def clean(rules: list) -> list[dict]:
    """Valid rules in their stored form: explicit op, values sorted and without repeats."""
    out = []
    for rule in rules:
        field, value = rule["field"], rule["value"]
        if isinstance(value, list):
            value = sorted({v.strip() if isinstance(v, str) else v for v in value})
        elif field == "custom":
            value = {k: v.strip() if isinstance(v, str) and k == "text" else v
                     for k, v in value.items()
                     if k in ("key", "kind", "text", "min", "max", "day")}
        elif isinstance(value, dict):
            value = {"min": value.get("min"), "max": value.get("max")}
        out.append({"field": field, "op": _op(rule), "value": value})
    return out


# --- the compiler -------------------------------------------------------------------------

def _has_points(*conditions) -> ColumnElement[bool]:
    return exists().where(Account.kind == AccountKind.POINTS.value,
                          Account.owner_type == "member", Account.owner_id == Member.id,
                          Account.currency == "", *conditions)


def _rule_condition(rule: dict) -> ColumnElement[bool]:
    field, op, value = rule["field"], _op(rule), rule["value"]
    if field == "plan":
        return exists().where(MemberCard.member_id == Member.id, MemberCard.plan_id.in_(value))
    if field == "tier":
        return exists().where(MemberCard.member_id == Member.id, MemberCard.tier_id.in_(value))
    if field == "tag":
        return exists().where(member_tags.c.member_id == Member.id,
                              member_tags.c.tag_id.in_(value))
    if field == "birthday_month":
        return extract("month", Member.born_on).in_(value)
    if field == "enroll_source":
        return Member.enroll_source.in_(value)
    if field == "days_since_purchase":
        # Whole local days: bought at 23:00 yesterday is 1 day ago at 08:00 today.
        since = func.coalesce(Member.last_purchase_at, Member.became_member_at)
        today = clock.today()
        if op == "gte":
            return since < clock.start_of_local_day(today - timedelta(days=value - 1))
        return since >= clock.start_of_local_day(today - timedelta(days=value))
    if field == "points":
        low, high = value.get("min"), value.get("max")
        if low:  # members without an account have 0 points: not in the range
            return _has_points(Account.balance >= low,
                               *([Account.balance <= high] if high is not None else []))
        # 0 is in the range: everyone but those with more than `high`.
        return ~_has_points(Account.balance > high) if high is not None else true()
    if field == "custom":
        return _custom_condition(op, value)
    raise ValueError(f"unknown segment rule field {field!r}")


def _custom_condition(op: str, value: dict) -> ColumnElement[bool]:
    stored = Member.custom[value["key"]].as_string()
    if op == "eq":
        return func.lower(stored) == value["text"].strip().lower()
    if op == "contains":
        return func.lower(stored).contains(value["text"].strip().lower(), autoescape=True)
    if op == "before":
        return stored < value["day"]
    if op == "after":
        return stored > value["day"]
    # Numbers are kept as text; an empty value is no number (and must not break the cast).
    number = cast(func.nullif(stored, ""), Numeric(20, 6))
    parts = []
    if value.get("min") is not None:
        parts.append(number >= Decimal(str(value["min"])))
    if value.get("max") is not None:
        parts.append(number <= Decimal(str(value["max"])))
    return and_(number.is_not(None), *parts)


def _rules_condition(match: str, rules: list) -> ColumnElement[bool]:
    if errors := validate(match, rules):
        raise ValueError(f"invalid segment rules: {errors}")
    parts = [_rule_condition(rule) for rule in rules]
    return and_(*parts) if match == "all" else or_(*parts)


def condition(match: str, rules: list) -> ColumnElement[bool]:
    """The rules as one boolean over Member (members only). Raises ValueError on rules that
    `validate` refuses."""
    return and_(IS_MEMBER, _rules_condition(match, rules))


def condition_for_ids(session: Session, segment_ids: Iterable[int]) -> ColumnElement[bool]:
    """"The member is in any of these segments", loading their rules in one query.
    Ids of segments that no longer exist match no one; no segments at all: false."""
    ids = sorted({int(i) for i in segment_ids})
    if not ids:
        return false()
    rows = session.execute(select(Segment.match, Segment.rules)
                           .where(Segment.id.in_(ids)).order_by(Segment.id)).all()
    if not rows:
        return false()
    return and_(IS_MEMBER, or_(*(_rules_condition(m, r) for m, r in rows)))


def _segment(session: Session, segment: Segment | int) -> Segment:
    if isinstance(segment, Segment):
        return segment
    found = session.get(Segment, segment)
    if found is None:
        raise MemberError(MemberErrorCode.NOT_FOUND, _("No such segment."))
    return found


def member_ids(session: Session, segment: Segment | int) -> Select:
    """SELECT of the ids of the segment's members (run it, or use it in IN / INSERT)."""
    segment = _segment(session, segment)
    return select(Member.id).where(condition(segment.match, segment.rules))


def count(session: Session, match: str, rules: list) -> int:
    """How many members match, in one statement."""
    return session.scalar(select(func.count()).select_from(Member)
                          .where(condition(match, rules)))


def counts(session: Session, segments: list[Segment]) -> dict[int, int]:
    """Member counts of several segments in one statement (one pass over members)."""
    if not segments:
        return {}
    columns = [func.count(case((_rules_condition(s.match, s.rules), 1))).label(f"s{s.id}")
               for s in segments]
    row = session.execute(select(*columns).select_from(Member).where(IS_MEMBER)).one()
    return {s.id: n for s, n in zip(segments, row, strict=True)}


# --- rules in words ---------------------------------------------------------------------------

def _either(items: list[str]) -> str:
    return format_list(items, style="or", locale=get_locale() or "en")


def month_names() -> dict[int, str]:
    return dict(get_month_names("wide", "stand-alone", locale=get_locale() or "en"))


def describe(session: Session, segments: list[Segment]) -> dict[int, list[str]]:
    """Each segment's rules as short sentences, names looked up once for all of them."""
    wanted = {f: set() for f in ID_FIELDS}
    for s in segments:
        for rule in s.rules:
            if rule.get("field") in wanted:
                wanted[rule["field"]].update(rule.get("value") or [])
    plans = {i: n for i, n in session.execute(
        select(CardPlan.id, CardPlan.name).where(CardPlan.id.in_(wanted["plan"])))} \
        if wanted["plan"] else {}
    tiers = {i: f"{t} ({p})" for i, t, p in session.execute(
        select(Tier.id, Tier.name, CardPlan.name).join(CardPlan)
        .where(Tier.id.in_(wanted["tier"])))} if wanted["tier"] else {}
    tags = {i: n for i, n in session.execute(
        select(Tag.id, Tag.name).where(Tag.id.in_(wanted["tag"])))} if wanted["tag"] else {}
    months = month_names()
    attributes = {a.key: a.name for a in session.scalars(select(CustomAttribute))} \
        if any(r.get("field") == "custom" for s in segments for r in s.rules) else {}

    def names(lookup, ids):
        return _either([lookup.get(i, f"#{i}") for i in ids])

    def words(rule: dict) -> str:
        field, op, value = rule.get("field"), _op(rule), rule.get("value")
        if field == "plan":
            return _("Card plan is %(names)s", names=names(plans, value))
        if field == "tier":
            return _("Tier is %(names)s", names=names(tiers, value))
        if field == "tag":
            return _("Tagged %(names)s", names=names(tags, value))
        if field == "birthday_month":
            return _("Birthday in %(months)s", months=names(months, value))
        if field == "enroll_source":
            return _("Came from %(sources)s", sources=_either(value))
        if field == "days_since_purchase" and op == "gte":
            return ngettext("No purchase for %(num)d day or more",
                            "No purchase for %(num)d days or more", value)
        if field == "days_since_purchase":
            return ngettext("Bought within the last %(num)d day",
                            "Bought within the last %(num)d days", value)
        if field == "points":
            low, high = value.get("min"), value.get("max")
            if low is not None and high is not None:
                return _("%(low)s to %(high)s points", low=format_number(low),
                         high=format_number(high))
            if low is not None:
                return _("At least %(low)s points", low=format_number(low))
            return _("At most %(high)s points", high=format_number(high))
        if field == "custom":
            return _custom_words(op, value, attributes.get(value.get("key"), value.get("key")))
        return _("Unknown rule")

    return {s.id: [words(r) for r in s.rules] for s in segments}


def _custom_words(op: str, value: dict, name: str) -> str:
    from datetime import date

    from flask_babel import format_date

    if op == "eq":
        return _("%(name)s is “%(text)s”", name=name, text=value["text"])
    if op == "contains":
        return _("%(name)s contains “%(text)s”", name=name, text=value["text"])
    if op in ("before", "after"):
        day = format_date(date.fromisoformat(value["day"]))
        return _("%(name)s before %(day)s", name=name, day=day) if op == "before" else \
            _("%(name)s after %(day)s", name=name, day=day)
    low, high = value.get("min"), value.get("max")
    if low is not None and high is not None:
        return _("%(name)s from %(low)s to %(high)s", name=name, low=format_number(low),
                 high=format_number(high))
    if low is not None:
        return _("%(name)s at least %(low)s", name=name, low=format_number(low))
    return _("%(name)s at most %(high)s", name=name, high=format_number(high))


# --- services ---------------------------------------------------------------------------------

def segment_list(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(Segment.name)))


def get(session: Session, segment_id: int) -> Segment | None:
    return session.get(Segment, segment_id)


def _snapshot(segment: Segment) -> dict:
    return {"name": segment.name, "match": segment.match, "rules": segment.rules}


def _checked(session: Session, name: str, match: str, rules: list,
             segment_id: int | None) -> tuple[str, list[dict]]:
    name = " ".join((name or "").split())
    errors = validate(match, rules)
    if not name:
        errors["name"] = _("Give the segment a name.")
    elif len(name) > NAME_MAX:
        errors["name"] = _("Names are at most %(n)d characters.", n=NAME_MAX)
    elif session.scalar(select(Segment.id).where(
            func.lower(Segment.name) == name.lower(),
            Segment.id != (segment_id or 0))) is not None:
        errors["name"] = _("Another segment has this name.")
    if errors:
        raise MemberError(MemberErrorCode.INVALID_VALUE, _("Please correct the marked fields."),
                          errors=errors)
    return name, clean(rules)


def _flush_name(session: Session) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # the same name saved meanwhile by another request
        raise MemberError(MemberErrorCode.INVALID_VALUE, _("Please correct the marked fields."),
                          errors={"name": _("Another segment has this name.")}) from None


def create_segment(session: Session, *, name: str, match: str, rules: list,
                   operator_id: int | None) -> Segment:
    with transaction(session):
        name, rules = _checked(session, name, match, rules, None)
        segment = Segment(name=name, match=match, rules=rules)
        session.add(segment)
        _flush_name(session)
        record(session, operator_id, "segment.create", segment, after=_snapshot(segment))
        return segment


def update_segment(session: Session, segment_id: int, *, name: str, match: str, rules: list,
                   operator_id: int | None) -> Segment:
    with transaction(session):
        segment = _segment(session, segment_id)
        name, rules = _checked(session, name, match, rules, segment.id)
        before = _snapshot(segment)
        segment.name, segment.match, segment.rules = name, match, rules
        segment.updated_at = clock.now()
        _flush_name(session)
        record(session, operator_id, "segment.update", segment, before=before,
               after=_snapshot(segment))
        return segment


def delete_segment(session: Session, segment_id: int, *, operator_id: int | None) -> None:
    """Remove the segment; its members and their tags are not touched. A segment that an
    activity not yet archived targets is kept: deleting it would silently empty (or, by
    another reading, widen) that activity's audience."""
    from portal.campaigns.models import Activity, ActivityStatus

    with transaction(session):
        segment = _segment(session, segment_id)
        users = [a.name for a in session.scalars(select(Activity).where(
            Activity.status != ActivityStatus.ARCHIVED)) if segment.id in a.segment_ids]
        if users:
            raise MemberError(MemberErrorCode.IN_USE,
                              _("Activities use this segment: %(names)s. Take it out of "
                                "them, or archive them, first.", names=", ".join(users)))
        record(session, operator_id, "segment.delete", segment, before=_snapshot(segment))
        session.delete(segment)


def tag_segment(session: Session, segment_id: int, tag_name: str, operator_id: int | None) -> int:
    """Give the tag (created if new) to every member of the segment who lacks it, in one
    INSERT ... SELECT; returns how many members got it (0 the second time)."""
    name = " ".join((tag_name or "").split())
    if not name or len(name) > TAG_MAX or not name.isprintable():
        message = _("Tags are 1 to %(n)d characters.", n=TAG_MAX)
        raise MemberError(MemberErrorCode.INVALID_VALUE, message, errors={"tag": message})
    with transaction(session):
        segment = _segment(session, segment_id)
        tag = tag_named(session, name)
        lacking = ~exists().where(member_tags.c.member_id == Member.id,
                                  member_tags.c.tag_id == tag.id)
        rows = select(Member.id, literal(tag.id)).where(
            condition(segment.match, segment.rules), lacking)
        dialect = {"postgresql": postgresql, "sqlite": sqlite}[session.get_bind().dialect.name]
        # NOT EXISTS skips who has it; ON CONFLICT covers a concurrent run tagging them too.
        # An INSERT ... SELECT has no row count unless asked for (psycopg gives -1).
        added = session.execute(
            dialect.insert(member_tags).from_select(["member_id", "tag_id"], rows)
            .on_conflict_do_nothing().execution_options(preserve_rowcount=True)).rowcount
        record(session, operator_id, "segment.tag", segment,
               after={"tag": name, "tag_id": tag.id, "added": added})
        return added
