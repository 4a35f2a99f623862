"""Importing customers and members from Excel (spec: member information 2.1.2–2.1.3).

Staff download the template (preset columns, then one per custom attribute), fill it in
and upload it with a policy for numbers already on file: skip them or update them. The
upload is checked at once (type, size, a zip that inflates far beyond itself, formulas) and
stored; a background job then reads it row by row. Every row is checked on its own and a
bad row never stops the good ones: good rows are imported or update the customer on
file, bad rows are kept with their values and why, for a file staff fix and upload again.

Rows go in chunks: per chunk one SELECT of the numbers already on file and bulk INSERTs,
committed together with the run's counts and `progress`, so memory stays flat and a run
whose worker died is resumed by the minute sweep exactly where it stopped. Chunks are
checked a column at a time, and written in order by a thread of the job's own while the
next chunk is checked (`_ChunkWriter`).
"""
from __future__ import annotations

import contextvars
import gc
import logging
import queue
import re
import secrets
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from itertools import chain, islice, repeat
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session, scoped_session

from portal import clock, jobs
from portal.db import after_commit, transaction
from portal.imports import xlsx
from portal.imports.models import CustomerImport, CustomerImportFailure, RunStatus
from portal.members.attributes import (
    GENDER_LABELS,
    ID_NUMBER,
    check_birth_date,
    clean_value,
    custom_attribute,
    normalize_mobile,
)
from portal.members.errors import MemberError
from portal.members.models import (
    CardPlan,
    CardStatus,
    CustomAttribute,
    Gender,
    Member,
    MemberCard,
    MemberStatus,
    Tier,
)
from portal.members.services import new_card_numbers
from portal.staff.models import StaffUser

log = logging.getLogger(__name__)

MAX_ROWS = 100_000
CHUNK = 10_000
MAX_BYTES = 20 * 1024 * 1024       # 100,000 rows of a dozen columns is about 5 MB
MAX_UNZIPPED = 300 * 1024 * 1024
# A running import whose heartbeat is older than this lost its worker: the sweep resumes it.
STALE_AFTER = timedelta(minutes=5)
POLICIES = ("skip", "update")
LANGUAGES = ("en", "zh_Hans")      # a template downloaded in either language reads back

COLUMNS = (
    ("mobile", _l("Mobile")),
    ("full_name", _l("Name")),
    ("kind", _l("Type")),
    ("plan", _l("Card plan")),
    ("tier", _l("Tier")),
    ("email", _l("Email")),
    ("born_on", _l("Date of birth")),
    ("gender", _l("Gender")),
    ("address", _l("Address")),
    ("id_number", _l("ID number")),
)
# The failed-rows file adds these after the template's columns; a re-import ignores them.
EXTRA = (_l("Error"), _l("Row"))
KIND_MEMBER, KIND_CUSTOMER = _l("Member"), _l("Customer")
TEXT_LIMITS = {"full_name": 120, "address": 255}
PROFILE = ("full_name", "email", "born_on", "gender", "address", "id_number")


class ImportRefused(ValueError):
    """The upload as a whole cannot be imported; the message is for people."""


@dataclass
class Run:
    """One import in the history, with its operator's name."""

    run: CustomerImport
    operator: str | None


# --- columns -------------------------------------------------------------------------------

def custom_attributes(session: Session) -> list[CustomAttribute]:
    return list(session.scalars(select(CustomAttribute).order_by(CustomAttribute.id)))


def header(attributes: Iterable[CustomAttribute]) -> list[str]:
    return [str(label) for _name, label in COLUMNS] + [a.name for a in attributes]


def _words(*labels) -> set[str]:
    """The labels as staff may type them, in every language the template comes in."""
    found = set()
    for language in LANGUAGES:
        with force_locale(language):
            found.update(str(label).strip().casefold() for label in labels)
    return found


def _columns(cells: list[str], attributes: list[CustomAttribute]) -> tuple[dict, list]:
    """Where each column is: ({field: index}, [(index, attribute)]); ImportRefused names
    the missing and unknown columns."""
    presets = {}
    for name, label in COLUMNS:
        for word in _words(label):
            presets[word] = name
    customs = {}
    for attribute in attributes:
        customs[attribute.name.strip().casefold()] = attribute
        customs[attribute.key.casefold()] = attribute
    ignored = _words(*EXTRA)
    index, custom, unknown = {}, [], []
    for i, cell in enumerate(cells):
        word = cell.strip().casefold()
        if not word or word in ignored:
            continue
        if word in presets and presets[word] not in index:
            index[presets[word]] = i
        elif word in customs and customs[word] not in [a for _i, a in custom]:
            custom.append((i, customs[word]))
        else:
            unknown.append(cell)
    missing = [str(label) for name, label in COLUMNS if name not in index]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(_("missing columns: %(names)s", names=", ".join(missing)))
        if unknown:
            problems.append(_("columns we do not know: %(names)s", names=", ".join(unknown)))
        raise ImportRefused(_("The first row must be the template's header (%(problems)s). "
                              "Download the template again and copy your data into it.",
                              problems="; ".join(problems)))
    return index, custom


# --- fast, exact checks --------------------------------------------------------------------

_PUNCTUATION = re.compile(r"[\s\-().]")


_SPECIAL_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
                  "pager", "uan", "voicemail")


def _desc(desc) -> tuple | None:
    """A PhoneNumberDesc as (possible lengths, pattern); None when it matches nothing."""
    if desc is None or not desc.national_number_pattern:
        return None
    return desc.possible_length, desc.national_number_pattern


def _length_rules(metadata) -> list[str]:
    """phonenumbers' typing of a national number (`_number_type_helper`) reduced to the one
    question asked here, per length of number: it must match the general pattern, none of
    the special-purpose ones (premium rate to voicemail) and the mobile one (the fixed-line
    one where a region's are the same), which makes it MOBILE or FIXED_LINE_OR_MOBILE. A
    pattern counts for a length as in `_is_number_matching_desc`: no possible lengths, or
    that length among them. One pattern per length, the general and mobile patterns as
    lookaheads and the specials as one negative lookahead: one match per number instead
    of a dozen pattern look-ups."""
    general = _desc(metadata.general_desc)
    target = _desc(metadata.fixed_line if metadata.same_mobile_and_fixed_line_pattern
                   else metadata.mobile)
    specials = [_desc(getattr(metadata, name)) for name in _SPECIAL_TYPES]

    def fits(desc, length: int) -> bool:
        return desc is not None and (not desc[0] or length in desc[0])

    rules = []
    for length in range(1, 18):          # a national number has at most 17 digits
        if not (fits(general, length) and fits(target, length)):
            continue
        others = "|".join(f"(?:{d[1]})" for d in specials if fits(d, length))
        rules.append(rf"(?=[0-9]{{{length}}}\Z)(?=(?:{general[1]})\Z)(?=(?:{target[1]})\Z)"
                     + (rf"(?!(?:{others})\Z)" if others else ""))
    return rules


@lru_cache(maxsize=8)
def _region_rules(region: str):
    """(the region's +country code, the `match` of a pattern taking the numbers `mobile`
    types without a parse), or None for a region it leaves to the parse. The pattern reads
    an optional +country code, then ASCII digits that start with no prefix to strip and fit
    one of the length rules; its group "national" is the national number."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(
            metadata.country_code) != (region,):
        return None
    rules = _length_rules(metadata)
    if not rules:
        return None
    prefixes = [p for p in (metadata.national_prefix_for_parsing,
                            metadata.international_prefix) if p]
    no_prefix = rf"(?!{'|'.join(f'(?:{p})' for p in prefixes)})" if prefixes else ""
    plus_code = f"+{metadata.country_code}"
    return plus_code, re.compile(
        rf"(?:{re.escape(plus_code)})?{no_prefix}(?=(?P<national>[0-9]+)\Z)"
        rf"(?:{'|'.join(rules)})").match


def mobile(raw: str, region: str) -> str:
    """`normalize_mobile`, without parsing the common case: a national number of the
    merchant's region (or one with its +country code) that needs no prefix stripped is
    typed straight from the region's own patterns. Anything else takes the full parse."""
    rules = _region_rules(region)
    if rules is not None:
        plus_code, fast = rules
        if found := fast(raw if raw.isdecimal() else _PUNCTUATION.sub("", raw)):
            return plus_code + found["national"]
    return normalize_mobile(raw, region)


_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


@lru_cache(maxsize=4096)
def _domain(domain: str) -> str | None:
    try:
        return validate_email("x@" + domain, check_deliverability=False).domain
    except EmailNotValidError:
        return None


def email(raw: str) -> str:
    """email_validator's normalised address; a plain ASCII local part is checked here and
    only the domain (a few hundred distinct ones in a file) by the validator."""
    local, at, domain = raw.strip().rpartition("@")
    if at and len(local) <= 64 and _LOCAL_PART.fullmatch(local) and len(raw) <= 254:
        normal = _domain(domain)
        if normal is not None and len(local) + 1 + len(normal) <= 254:
            return f"{local}@{normal}"
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise MemberError("invalid_email", _("Enter a valid email address.")) from None


def _date(raw: str) -> date:
    value = raw.strip().replace("/", "-")
    if len(value) > 10 and value[10:] in ("T00:00:00", " 00:00:00"):
        value = value[:10]        # a date cell calamine read as a datetime
    return date.fromisoformat(value)


# --- one row -------------------------------------------------------------------------------

class _Plan(NamedTuple):
    id: int
    name: str


@dataclass
class _Context:
    """What every row of one file is checked against, worked out once for the file."""

    index: dict
    custom: list
    region: str
    policy: str
    plans: dict
    default_plan: _Plan | None
    tiers: dict
    lowest: dict
    members: set
    customers: set
    genders: dict
    labels: dict
    # The preset columns' indices in COLUMNS order, and how wide a row must be to hold them.
    at: tuple = ()
    width: int = 0
    # (index, key, name, Attribute, is a date) per custom attribute column.
    attributes: list = field(default_factory=list)
    seen: dict = field(default_factory=dict)
    # Outcomes of values that repeat down a file (card columns, dates of birth, custom
    # attributes), by value.
    cards: dict = field(default_factory=dict)
    births: dict = field(default_factory=dict)
    customs: dict = field(default_factory=dict)


class _Bad(str):
    """A cell's error, "Label: why", where its value would be: a column of checked cells
    holds values, None for cells not given, and these."""

    __slots__ = ()


def _bad(label: str, message: str) -> _Bad:
    return _Bad(f"{label}: {message}")


class _Chunk(NamedTuple):
    """One chunk of rows, checked: the good rows by column (field name → values in row
    order, None where a cell was not given), and the failed rows as (row number, cells,
    errors)."""

    size: int
    good: dict[str, list]
    failed: list[tuple[int, list, list[str]]]


# A file's distinct card columns and dates are few; past this many, stop remembering more.
_REMEMBER = 50_000


def _context(session: Session, run: CustomerImport, index: dict, custom: list) -> _Context:
    # Plain values, not ORM objects: the commits between chunks expire those, and the
    # checks of 100,000 rows must not reach the database.
    plans = [_Plan(p.id, p.name) for p in session.scalars(
        select(CardPlan).order_by(CardPlan.id))]
    tiers = list(session.scalars(select(Tier).order_by(Tier.plan_id, Tier.rank)))
    by_name, lowest = {}, {}
    for tier in tiers:
        by_name.setdefault((tier.plan_id, tier.name.strip().casefold()), tier.id)
        lowest.setdefault(tier.plan_id, tier.id)
    genders = {}
    for gender, label in GENDER_LABELS.items():
        for word in _words(label) | {gender.value}:
            genders[word] = gender.value
    at = tuple(index[name] for name, _label in COLUMNS)
    return _Context(
        index=index, custom=custom, region=current_app.config["DEFAULT_REGION"],
        policy=run.policy,
        plans={p.name.strip().casefold(): p for p in reversed(plans)},
        default_plan=plans[0] if len(plans) == 1 else None, tiers=by_name, lowest=lowest,
        members=_words(KIND_MEMBER), customers=_words(KIND_CUSTOMER), genders=genders,
        labels={name: str(label) for name, label in COLUMNS},
        at=at, width=max([*at, *(i for i, _a in custom)]) + 1,
        attributes=[(i, a.key, a.name, custom_attribute(a.key, a.name, a.kind),
                     a.kind == "date") for i, a in custom])


def _born(label: str, value: str) -> date | _Bad:
    """A date of birth as typed."""
    try:
        born = _date(value)
        check_birth_date(born)
    except ValueError:
        return _bad(label, _("write the date as YYYY-MM-DD, such as 1990-05-31."))
    except MemberError as e:
        return _bad(label, str(e))
    return born


def _each_distinct(column: tuple, outcome, remembered: dict | None = None) -> list:
    """`outcome` of every cell of a column, worked out once per distinct cell: card columns,
    dates of birth, genders and custom attributes repeat down a file. `remembered` keeps
    outcomes from one chunk to the next, up to _REMEMBER of them."""
    known = {}
    for value in set(column):
        if remembered is None:
            known[value] = outcome(value)
        elif (found := remembered.get(value)) is not None:
            known[value] = found
        else:
            known[value] = found = outcome(value)
            if len(remembered) < _REMEMBER:
                remembered[value] = found
    return list(map(known.__getitem__, column))


def _check(ctx: _Context, batch: list[tuple[int, list]]) -> _Chunk:
    """Every rule for a chunk of rows, a column at a time. It runs over up to 100,000 rows,
    so a column's cells are checked by one function each (unique ones such as mobiles) or
    once per distinct cell (repeated ones), and rows are only looked at one by one where
    a cell failed."""
    labels = ctx.labels
    numbers = [number for number, _values in batch]
    rows = [values for _number, values in batch]
    width = ctx.width
    padded = [v if len(v) >= width else v + [""] * (width - len(v)) for v in rows]
    pick = itemgetter(*ctx.at, *(i for i, *_rest in ctx.attributes))
    (mobiles, names, kinds, plans, tiers, emails, births, genders, addresses, ids,
     *customs) = zip(*map(pick, padded), strict=True)

    def mobile_cell(raw: str) -> str | _Bad:
        if isinstance(raw, xlsx.InexactNumber):
            return _bad(labels["mobile"], _(
                "the number was saved as a number and lost digits: format the column as "
                "text and type it again."))
        if not raw.strip():
            return _bad(labels["mobile"], _("required."))
        try:
            return mobile(raw, ctx.region)
        except MemberError as e:
            return _bad(labels["mobile"], str(e))

    def text_column(name: str, column: tuple) -> list[str | _Bad | None]:
        """Runs of spaces made one, None for a blank cell."""
        limit = TEXT_LIMITS[name]
        values = list(map(" ".join, map(str.split, column)))
        if max(map(len, values), default=0) <= limit:
            return [value or None for value in values]
        too_long = _bad(labels[name], _("at most %(n)d characters.", n=limit))
        return [too_long if len(value) > limit else value or None for value in values]

    def email_cell(raw: str) -> str | _Bad | None:
        if not (value := raw.strip()):
            return None
        try:
            return email(value)
        except MemberError as e:
            return _bad(labels["email"], str(e))

    def born_cell(raw: str) -> date | _Bad | None:
        return _born(labels["born_on"], value) if (value := raw.strip()) else None

    def gender_cell(raw: str) -> str | _Bad | None:
        if not (value := raw.strip()):
            return None
        if (gender := ctx.genders.get(value.casefold())) is None:
            return _bad(labels["gender"], _("one of %(options)s.", options=", ".join(
                str(x) for x in GENDER_LABELS.values())))
        return gender

    def id_column(column: tuple) -> list[str | _Bad | None]:
        wrong = _bad(labels["id_number"], _("letters, digits and dashes, 4 to 32 of them."))
        match = ID_NUMBER.match
        return [value if match(value) else wrong if value else None
                for value in map(" ".join, map(str.split, column))]

    # Most numbers are typed as the region's own, digits only: one match each.
    plus_code, typed = _region_rules(ctx.region) or ("", lambda _raw: None)
    checked = {
        "mobile": [plus_code + found["national"] if type(raw) is str and (found := typed(raw))
                   else mobile_cell(raw) for raw in mobiles],
        "full_name": text_column("full_name", names),
        "address": text_column("address", addresses),
        "email": list(map(email_cell, emails)),
        "born_on": _each_distinct(births, born_cell, ctx.births),
        "gender": _each_distinct(genders, gender_cell),
        "id_number": id_column(ids),
        "card": _each_distinct(list(zip(kinds, plans, tiers, strict=True)),
                               lambda key: _card(ctx, *key), ctx.cards),
    }
    for (i, _key, name, attribute, is_date), column in zip(ctx.attributes, customs,
                                                           strict=True):
        checked[i] = _each_distinct(
            column, lambda raw, name=name, attribute=attribute, is_date=is_date:
            _custom(name, attribute, is_date, raw), ctx.customs.setdefault(i, {}))

    failing = sorted({i for column in checked.values() if _Bad in map(type, column)
                      for i, value in enumerate(column) if type(value) is _Bad})
    failed = [(numbers[i], rows[i], [value for column in checked.values()
                                     if type(value := column[i]) is _Bad]) for i in failing]
    if failing:
        left_out = set(failing)
        good = [i for i in range(len(rows)) if i not in left_out]
    else:
        good = None
    # A number twice in the file: its first good row is imported, later ones fail.
    mobiles = checked["mobile"]
    good_numbers = numbers if good is None else [numbers[i] for i in good]
    firsts = list(map(ctx.seen.setdefault,
                      mobiles if good is None else [mobiles[i] for i in good], good_numbers))
    if firsts != good_numbers:
        positions = range(len(rows)) if good is None else good
        repeated = [(i, first) for i, first, number in zip(positions, firsts, good_numbers,
                                                                 strict=True)
                    if first != number]
        failed += [(numbers[i], rows[i], [_bad(labels["mobile"], _(
            "this number is already in row %(row)d of the file; only that row is imported.",
            row=first))]) for i, first in repeated]
        failed.sort(key=itemgetter(0))
        left_out = {i for i, _first in repeated}
        good = [i for i in positions if i not in left_out]

    def column(values: list) -> list:
        return values if good is None else [values[i] for i in good]

    cards = column(checked.pop("card"))
    keys = [key for _i, key, *_rest in ctx.attributes]
    by_index = [checked.pop(i) for i, *_rest in ctx.attributes]
    combos = list(zip(*map(column, by_index), strict=True)) if keys else None
    return _Chunk(size=len(rows), failed=failed, good={
        **{name: column(values) for name, values in checked.items()},
        "plan_id": list(map(itemgetter(0), cards)),
        "tier_id": list(map(itemgetter(1), cards)),
        # One dict per distinct combination of values, shared by its rows.
        "custom": _each_distinct(combos, lambda combo: {
            key: value for key, value in zip(keys, combo, strict=True) if value is not None})
        if keys else [{}] * len(cards)})


def _custom(name: str, attribute, is_date: bool, raw: str):
    """The value as stored of one custom attribute cell; None for a blank one."""
    if raw.isspace() or not raw:
        return None
    try:
        value = clean_value(attribute, _date(raw) if is_date else raw)
    except ValueError:
        return _bad(name, _("write the date as YYYY-MM-DD, such as 1990-05-31."))
    except MemberError as e:
        return _bad(name, str(e))
    return value.isoformat() if isinstance(value, date) else value


def _card(ctx: _Context, kind: str, plan_name: str, tier_name: str) -> tuple | _Bad:
    """(plan id, tier id) of a row's card columns as typed; (None, None) for a customer."""
    kind, plan_name, tier_name = kind.strip().casefold(), plan_name.strip(), tier_name.strip()
    labels = ctx.labels
    if kind and kind not in ctx.members and kind not in ctx.customers:
        return _bad(labels["kind"], _("%(member)s or %(customer)s.", member=KIND_MEMBER,
                                      customer=KIND_CUSTOMER))
    as_member = kind in ctx.members or (not kind and bool(plan_name))
    if not as_member:
        if plan_name or tier_name:
            return _bad(labels["plan"], _(
                "a customer has no card: leave the card plan and tier empty, or make the "
                "row a member."))
        return None, None
    if plan_name:
        plan = ctx.plans.get(plan_name.casefold())
        if plan is None:
            return _bad(labels["plan"], _("there is no card plan called “%(name)s”.",
                                          name=plan_name))
    elif (plan := ctx.default_plan) is None:
        return _bad(labels["plan"], _("required for a member."))
    if tier_name:
        tier_id = ctx.tiers.get((plan.id, tier_name.casefold()))
        if tier_id is None:
            return _bad(labels["tier"], _("the card plan %(plan)s has no tier called "
                                          "“%(name)s”.", plan=plan.name, name=tier_name))
    else:
        tier_id = ctx.lowest.get(plan.id)
        if tier_id is None:
            return _bad(labels["plan"], _("the card plan %(plan)s has no tiers yet.",
                                          plan=plan.name))
    return plan.id, tier_id


# --- starting a run ------------------------------------------------------------------------

def _folder() -> Path:
    folder = Path(current_app.config["UPLOAD_DIR"]) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start(session: Session, upload, *, filename: str, policy: str,
          operator_id: int | None) -> CustomerImport:
    """Check the uploaded workbook, store it and queue its import.

    ImportRefused, with nothing stored, when the policy is unknown or the file is not a
    workbook we read safely (not a zip, too large, a zip bomb, formulas)."""
    if policy not in POLICIES:
        raise ImportRefused(_("Choose what to do with numbers already on file."))
    filename = (filename or "").strip()[-200:] or "import.xlsx"
    if not filename.lower().endswith(".xlsx"):
        raise ImportRefused(_("Upload an Excel workbook (.xlsx), such as the template."))
    stored = secrets.token_hex(16) + ".xlsx"
    path = _folder() / stored
    try:
        with path.open("wb") as out:
            written = 0
            while chunk := upload.read(1024 * 1024):
                written += len(chunk)
                if written > MAX_BYTES:
                    raise ImportRefused(_("The file is larger than %(mb)d MB.",
                                          mb=MAX_BYTES // 2 ** 20))
                out.write(chunk)
        xlsx.check_file(path, max_bytes=MAX_BYTES, max_unzipped=MAX_UNZIPPED,
                        refuse_formulas=True)
    except xlsx.XlsxError as e:
        path.unlink(missing_ok=True)
        raise ImportRefused(str(e)) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    from portal.staff.services import record

    with transaction(session):
        run = CustomerImport(filename=filename, stored_name=stored, policy=policy,
                             status=RunStatus.QUEUED, operator_id=operator_id, columns=[])
        session.add(run)
        session.flush()
        record(session, operator_id, "customers.import", run,
               after={"filename": filename, "policy": policy})
        run_id = run.id
        # Queue down: resume_stalled starts the run on a tick once STALE_AFTER has passed.
        after_commit(session, lambda: jobs.wake(process_task, run_id))
    return run


# --- the job -------------------------------------------------------------------------------

def _claim(session: Session, run_id: int) -> bool:
    """Take the run if it waits, or if its worker stopped beating; one worker at a time."""
    now = clock.now()
    with transaction(session):
        taken = session.execute(
            update(CustomerImport).where(
                CustomerImport.id == run_id,
                or_(CustomerImport.status == RunStatus.QUEUED,
                    (CustomerImport.status == RunStatus.RUNNING)
                    & (CustomerImport.heartbeat_at < now - STALE_AFTER)))
            .values(status=RunStatus.RUNNING, heartbeat_at=now)).rowcount
    return taken == 1


def process(session: Session, run_id: int, *, chunk: int | None = None) -> bool:
    """Import (or resume importing) the run's rows; False when another worker has it."""
    if not _claim(session, run_id):
        return False
    run = session.get(CustomerImport, run_id)
    path = _folder() / (run.stored_name or "-")
    try:
        rows = xlsx.open_rows(path, max_rows=MAX_ROWS)
        attributes = custom_attributes(session)
        index, custom = _columns(rows.header, attributes)
    except (xlsx.XlsxError, ImportRefused) as e:
        _finish(session, run_id, path, status=RunStatus.FAILED, message=str(e))
        return True
    except FileNotFoundError:
        _finish(session, run_id, path, status=RunStatus.FAILED,
                message=_("The uploaded file is gone: upload it again."))
        return True
    ctx = _context(session, run, index, custom)
    done = run.progress
    if not run.columns:
        with transaction(session):
            run.columns = list(rows.header)
            run.rows_total = rows.size
    session.rollback()
    # Rows of chunks already committed: only the numbers of those that did not fail, for
    # duplicates in the file (a failed row's number is free for a later row, as in a run
    # that was never stopped).
    failed_rows = set(session.scalars(select(CustomerImportFailure.row).where(
        CustomerImportFailure.import_id == run_id))) if done else set()
    for number, values in islice(rows.rows, done):
        if number in failed_rows:
            continue
        raw = values[index["mobile"]] if index["mobile"] < len(values) else ""
        try:
            ctx.seen.setdefault(mobile(raw, ctx.region), number)
        except MemberError:
            pass
    size = chunk or CHUNK
    writer = _ChunkWriter(session, run_id, done, ctx.policy)
    with _app_objects_frozen(), writer:
        while batch := list(islice(rows.rows, size)):
            if not writer.put(_check(ctx, batch)):
                break
    if writer.lost:
        return False
    _finish(session, run_id, path, status=RunStatus.DONE, rows_total=writer.done)
    return True


class _ChunkWriter:
    """Writes checked chunks in order on a thread of its own while the next chunk is being
    checked. The checks are Python and hold the interpreter; the database driver lets go of
    it while the database works (SQLite inserting into the members' indexes and committing,
    PostgreSQL over the wire), so the two overlap on a second core: a third of a 100,000-row
    import's time.

    The session is handed over, not shared: between `with` and its end only this thread
    uses it. The first failure stops the writing; the chunks queued after it are dropped,
    and the `with` block re-raises it once the thread has ended. When the block raises its
    own exception, the chunks already queued are written first, and a failure of the
    writer's is logged, the block's exception going on. `lost`: another worker took the
    run over and nothing more was written."""

    def __init__(self, session: Session, run_id: int, done: int, policy: str):
        self._session = session() if isinstance(session, scoped_session) else session
        self._run_id, self._policy = run_id, policy
        self.done, self.lost = done, False
        self._failure: BaseException | None = None
        # One chunk waiting beside the one being written: memory stays at a few chunks.
        self._chunks: queue.Queue[_Chunk | None] = queue.Queue(maxsize=1)
        # In the job's context: its log fields and app context go with it.
        self._thread = threading.Thread(target=contextvars.copy_context().run,
                                        args=(self._write_all,), daemon=True,
                                        name=f"customer-import-{run_id}")

    def __enter__(self) -> _ChunkWriter:
        self._thread.start()
        return self

    def put(self, chunk: _Chunk) -> bool:
        """Queue a chunk; False when writing has stopped and the run must not go on."""
        if self.lost or self._failure is not None:
            return False
        self._chunks.put(chunk)
        return True

    def __exit__(self, kind, _value, _traceback) -> None:
        self._chunks.put(None)
        self._thread.join()
        if self._failure is not None:
            if kind is None:
                raise self._failure
            log.error("customer import %s: writing failed too", self._run_id,
                      exc_info=self._failure)

    def _write_all(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self.lost or self._failure is not None:
                continue
            try:
                if _write(self._session, self._run_id, self.done, chunk, self._policy):
                    self.done += chunk.size
                else:
                    self.lost = True
            except BaseException as e:  # noqa: BLE001 - re-raised by the thread that waits
                self._failure = e


@contextmanager
def _app_objects_frozen():
    """Keep the objects that exist now (the app's modules, metadata, caches: several
    hundred thousand) out of the cyclic collector's passes while rows are imported. Each
    chunk's rows live long enough to be promoted, which sets off full passes every few
    thousand rows, and each pass walked all of the app: a fifth of a 100,000-row import's
    time. The rows themselves are still collected; a thread running beside the import only
    has its older garbage collected a few seconds later."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _finish(session: Session, run_id: int, path: Path, *, status: str,
            message: str | None = None, rows_total: int | None = None) -> None:
    with transaction(session):
        values = {"status": status, "message": message, "finished_at": clock.now(),
                  "stored_name": None}
        if rows_total is not None:
            values["rows_total"] = rows_total
        session.execute(update(CustomerImport).where(CustomerImport.id == run_id)
                        .values(**values))
    path.unlink(missing_ok=True)


def _write(session: Session, run_id: int, done: int, chunk: _Chunk, policy: str) -> bool:
    """One chunk: its inserts, updates and failed rows, with the run's counts and progress,
    in one transaction. False (nothing written) when another worker took the run over."""
    good, now = chunk.good, clock.now()
    counts = {"imported": 0, "updated": 0, "skipped": 0, "failed": len(chunk.failed)}
    with transaction(session):
        moved = session.execute(
            update(CustomerImport).where(CustomerImport.id == run_id,
                                         CustomerImport.progress == done,
                                         CustomerImport.status == RunStatus.RUNNING)
            .values(progress=done + chunk.size, heartbeat_at=now)).rowcount
        if moved != 1:
            session.rollback()
            return False
        on_file_ids = dict(_where_in(session, (Member.mobile, Member.id), Member.mobile,
                                     good["mobile"]))
        new, on_file = good, []
        if on_file_ids:
            on_file = [i for i, m in enumerate(good["mobile"]) if m in on_file_ids]
            kept = [i for i, m in enumerate(good["mobile"]) if m not in on_file_ids]
            new = {name: [values[i] for i in kept] for name, values in good.items()}
        cards = []
        if new["mobile"]:
            names = new["full_name"]
            _bulk_insert(
                session, Member.__table__,
                {"mobile_verified": False, "status": MemberStatus.NORMAL.value,
                 "created_at": now, "enroll_source": "import", "session_version": 1},
                {**{name: new[name] for name in ("mobile", "email", "born_on", "gender",
                                                 "address", "id_number", "custom")},
                 "full_name": ["" if n is None else n for n in names] if None in names
                 else names,
                 "became_member_at": [None if p is None else now for p in new["plan_id"]]})
            counts["imported"] = len(new["mobile"])
            cards = [card for card in zip(new["mobile"], new["plan_id"], new["tier_id"],
                                          strict=True) if card[1] is not None]
        if on_file and policy == "update":
            cards += _update(session, on_file_ids, good, on_file, now)
            counts["updated"] = len(on_file)
        else:
            counts["skipped"] = len(on_file)
        if cards:
            _insert_cards(session, cards, now)
        if chunk.failed:
            session.execute(insert(CustomerImportFailure.__table__), [
                {"import_id": run_id, "row": row, "values": [str(v) for v in values],
                 "error": "; ".join(errors)} for row, values, errors in chunk.failed])
        session.execute(update(CustomerImport).where(CustomerImport.id == run_id).values(
            **{k: getattr(CustomerImport, k) + v for k, v in counts.items() if v}))
    return True


def _update(session: Session, ids_by_mobile: dict, good: dict, rows: list[int], now) -> list:
    """Given values replace those on file (empty cells leave them); a member row gives the
    customer a card of its plan unless they hold one already."""
    mobiles = good["mobile"]
    ids = [ids_by_mobile[mobiles[i]] for i in rows]
    existing = {m.mobile: m for m in session.execute(
        select(Member.id, Member.mobile, Member.became_member_at, Member.custom,
               *(getattr(Member, n) for n in PROFILE)).where(Member.id.in_(ids)))}
    holding = {(m, p) for m, p in session.execute(
        select(MemberCard.member_id, MemberCard.plan_id).where(MemberCard.member_id.in_(ids)))}
    changes, cards = [], []
    for i in rows:
        old = existing[mobiles[i]]
        change = {"id": old.id, "became_member_at": old.became_member_at,
                  "custom": {**(old.custom or {}), **good["custom"][i]}}
        for name in PROFILE:
            given = good[name][i]
            change[name] = getattr(old, name) if given is None else given
        plan_id = good["plan_id"][i]
        if plan_id is not None and (old.id, plan_id) not in holding:
            cards.append((mobiles[i], plan_id, good["tier_id"][i]))
            holding.add((old.id, plan_id))
            change["became_member_at"] = old.became_member_at or now
        changes.append(change)
    session.execute(update(Member), changes)
    return cards


def _insert_cards(session: Session, cards: list[tuple[str, int, int]], now) -> None:
    """Cards for (member's mobile, plan id, tier id)."""
    numbers = new_card_numbers(len(cards))
    # 15 random digits make a clash unlikely, not impossible: draw again for any taken.
    while taken := {n for n, in _where_in(session, (MemberCard.number,), MemberCard.number,
                                          numbers)} | \
            {n for n, times in Counter(numbers).items() if times > 1}:
        redraw = [i for i, n in enumerate(numbers) if n in taken]
        for i, number in zip(redraw, new_card_numbers(len(redraw)), strict=True):
            numbers[i] = number
    mobiles, plan_ids, tier_ids = map(list, zip(*cards, strict=True))
    plans = {p.id: p for p in session.scalars(select(CardPlan).where(
        CardPlan.id.in_(set(plan_ids))))}
    expiry = {p.id: now + timedelta(days=p.validity_days) if p.validity_days else None
              for p in plans.values()}
    _bulk_insert(
        session, MemberCard.__table__,
        {"status": CardStatus.ACTIVE.value, "issued_at": now, "tier_since_at": now},
        {"number": numbers, "member_id": mobiles, "plan_id": plan_ids, "tier_id": tier_ids,
         "expires_at": list(map(expiry.__getitem__, plan_ids))},
        by_key={"member_id": Member.mobile})


def _where_in(session: Session, columns: tuple, key, values: list) -> list[tuple]:
    """The `columns` (plain text and integer columns of one table) of the rows whose `key`
    is among `values`. SQLAlchemy renders an IN list at a microsecond or two per value; a
    chunk's thousands of numbers are bound here as plain placeholders instead."""
    if not values:
        return []
    connection = session.connection()
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(
        connection.dialect.paramstyle)
    if mark is None:
        return [tuple(row) for row in connection.execute(select(*columns)
                                                         .where(key.in_(values)))]
    quote = connection.dialect.identifier_preparer.quote
    names = ", ".join(quote(c.name) for c in columns)
    return connection.exec_driver_sql(
        f"SELECT {names} FROM {quote(key.table.name)} WHERE {quote(key.name)} "
        f"IN ({', '.join(repeat(mark, len(values)))})", tuple(values)).all()


def _bulk_insert(session: Session, table, constants: dict, columns: dict[str, list], *,
                 by_key: dict | None = None) -> None:
    """INSERT rows given by column (`columns`: name → the rows' values; `constants` the same
    for every row). SQLAlchemy's own executemany builds and converts a parameter dict per
    row, half of a 100,000-row import's time; here values are converted by the processors
    SQLAlchemy itself would use (dates, times, JSON) once per distinct object, and rows are
    made from the columns by zip, with no loop per row here.

    `by_key` (column → a unique key column of another table, such as a member's mobile):
    that column is given as keys, and takes the id of the row holding each."""
    size = len(next(iter(columns.values())))
    if not size:
        return
    connection = session.connection()
    dialect = connection.dialect
    if by_key and dialect.name != "sqlite":
        for name, key in by_key.items():
            ids = dict(_where_in(session, (key, key.table.c.id), key, list(set(columns[name]))))
            # A key not on file gives None, refused by the column, as on SQLite.
            columns = {**columns, name: list(map(ids.get, columns[name]))}
        by_key = None

    def processor(name: str):
        return table.c[name].type.dialect_impl(dialect).bind_processor(dialect)

    values = {name: column if by_key and name in by_key else
              _converted(convert, column) if (convert := processor(name)) else column
              for name, column in columns.items()}
    fixed = {name: convert(value) if (convert := processor(name)) else value
             for name, value in constants.items()}
    if dialect.name == "sqlite":
        _insert_on_sqlite(connection, table, values, fixed, by_key or {})
        return
    values |= {name: repeat(value, size) for name, value in fixed.items()}
    compiled = insert(table).compile(dialect=dialect, column_keys=list(values))
    if compiled.positional:
        params = list(zip(*(values[name] for name in compiled.positiontup), strict=True))
    else:
        params = [dict(zip(values, row, strict=True))
                  for row in zip(*values.values(), strict=True)]
    # One executemany of the driver (psycopg sends it as a pipeline).
    connection.exec_driver_sql(compiled.string, params)


def _insert_on_sqlite(connection, table, values: dict[str, list], fixed: dict,
                      by_key: dict) -> None:
    """INSERT … SELECT from the rows as a VALUES table. SQLite's executemany binds and steps
    row by row; here one statement takes as many rows as SQLite binds variables in one
    (Debian's build: 250,000), the constants are bound once per statement, not per row,
    and keys are joined to their table for its ids (read back row by row, each row would
    let go of the interpreter and wait to take it back from the thread checking the next
    chunk)."""
    quote = connection.dialect.identifier_preparer.quote
    picked, joins = [], []
    for n, name in enumerate(values, start=1):
        if (key := by_key.get(name)) is None:
            picked.append(f"v.column{n}")
            continue
        alias = f"k{len(joins)}"
        picked.append(f"{alias}.{quote(key.table.c.id.name)}")
        # LEFT: a key not on file gives NULL, refused by the column, not a row dropped.
        joins.append(f" LEFT JOIN {quote(key.table.name)} AS {alias} "
                     f"ON {alias}.{quote(key.name)} = v.column{n}")
    picked += repeat("?", len(fixed))
    names = ", ".join(quote(table.c[name].name) for name in (*values, *fixed))
    head = f"INSERT INTO {quote(table.name)} ({names}) SELECT {', '.join(picked)} FROM (VALUES "
    tail = ") AS v" + "".join(joins)
    group = f"({', '.join(repeat('?', len(values)))})"
    rows = list(zip(*values.values(), strict=True))
    per_statement = max(1, (_sqlite_variables(connection) - len(fixed)) // len(values))
    for start in range(0, len(rows), per_statement):
        batch = rows[start:start + per_statement]
        connection.exec_driver_sql(f"{head}{', '.join(repeat(group, len(batch)))}{tail}",
                                   (*fixed.values(), *chain.from_iterable(batch)))


def _sqlite_variables(connection) -> int:
    """How many values SQLite binds in one statement: 32,766 unless built otherwise (Debian's
    takes 250,000)."""
    return connection.connection.dbapi_connection.getlimit(
        sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def _converted(convert, column: list) -> list:
    """`convert` of every value of a column, run once per distinct object: converted values
    repeat down a file as the same objects (the import's own time, a date of birth typed
    the same way, the custom attributes of a row), and a JSON or datetime conversion costs
    microseconds each. Objects are told apart by identity, which the column keeps alive
    meanwhile: equal values of different types (1, 1.0, True) convert differently."""
    ids = list(map(id, column))
    done = {key: convert(value) for key, value in dict(zip(ids, column, strict=True)).items()}
    return list(map(done.__getitem__, ids))


@jobs.task(retries=0)
def process_task(run_id: int) -> bool:
    from portal.db import db

    try:
        return process(db.session, run_id)
    finally:
        db.session.rollback()


@jobs.on_tick("customer_imports")
def resume_stalled(session: Session) -> int:
    """Queue again the runs whose task was lost or whose worker died mid-way."""
    cutoff = clock.now() - STALE_AFTER
    stalled = list(session.scalars(select(CustomerImport.id).where(or_(
        (CustomerImport.status == RunStatus.QUEUED) & (CustomerImport.created_at < cutoff),
        (CustomerImport.status == RunStatus.RUNNING)
        & (CustomerImport.heartbeat_at < cutoff)))))
    session.rollback()
    for run_id in stalled:
        process_task(run_id)
    return len(stalled)


# --- reading back --------------------------------------------------------------------------

def get(session: Session, run_id: int) -> CustomerImport | None:
    return session.get(CustomerImport, run_id)


def history(session: Session, *, limit: int = 50) -> list[Run]:
    """The newest runs first with their operators' names, in one query."""
    found = session.execute(select(CustomerImport, StaffUser.name)
                            .outerjoin(StaffUser, StaffUser.id == CustomerImport.operator_id)
                            .order_by(CustomerImport.id.desc()).limit(limit))
    return [Run(run=run, operator=operator) for run, operator in found]


def failures(session: Session, run_id: int) -> Iterator[CustomerImportFailure]:
    return session.scalars(select(CustomerImportFailure)
                           .where(CustomerImportFailure.import_id == run_id)
                           .order_by(CustomerImportFailure.row)
                           .execution_options(yield_per=1000))


# --- the files staff download --------------------------------------------------------------

def template_sheets(attributes: list[CustomAttribute]) -> list[xlsx.SheetSpec]:
    """The template in the current language: an empty first sheet (columns as text, so
    numbers keep their digits) and the instructions with an example on a second one."""
    kinds = {"text": _("text"), "number": _("a number"), "date": _("a date, YYYY-MM-DD")}
    genders = ", ".join(str(label) for label in GENDER_LABELS.values())
    notes = [
        [_("One customer or member per row on the first sheet, below its header. Keep the "
           "header as it is; columns may be in any order.")],
        [_("Mobile: required, a mobile number; numbers of other countries start with + "
           "and the country code. It identifies the customer: a number already on file is "
           "skipped or updated, as chosen when uploading.")],
        [_("Name, Address: optional text (at most 120 and 255 characters).")],
        [_("Type: %(member)s (with a card) or %(customer)s (no card). Empty: a member when "
           "a card plan is given, else a customer.", member=KIND_MEMBER,
           customer=KIND_CUSTOMER)],
        [_("Card plan: for members, the name of one of your card plans (may be empty when "
           "there is only one). Tier: a tier of that plan; empty for its lowest tier.")],
        [_("Email: optional, a valid address. Date of birth: optional, YYYY-MM-DD.")],
        [_("Gender: optional, one of %(options)s.", options=genders)],
        [_("ID number: optional, letters, digits and dashes.")],
        *([_("%(name)s: optional, %(kind)s.", name=a.name, kind=kinds.get(a.kind, a.kind))]
          for a in attributes),
        [_("Rows with a problem are not imported and the others are: download the failed "
           "rows after the import, fix them and upload that file.")],
        [_("At most %(n)s rows per file.", n=f"{MAX_ROWS:,}")],
        [],
        [_("Example")],
        header(attributes),
        ["13800138000", "Li Wei", str(KIND_MEMBER), "", "", "li.wei@example.com",
         "1990-05-31", str(GENDER_LABELS[Gender.FEMALE]), "", "",
         *("" for _a in attributes)],
        ["+8613900139000", "Zhang Min", str(KIND_CUSTOMER), "", "", "", "", "", "", "",
         *("" for _a in attributes)],
    ]
    columns = header(attributes)
    return [xlsx.SheetSpec(name=_("Customers"), header=columns, rows=[],
                           widths=[18, 20, 10, 16, 12, 26, 14, 12, 30, 20]
                           + [16] * len(attributes),
                           text_columns=tuple(range(len(columns)))),
            xlsx.SheetSpec(name=_("Instructions"), header=[_("How to fill in the template")],
                           rows=notes, widths=(110,))]


def failed_sheet(session: Session, run: CustomerImport) -> xlsx.SheetSpec:
    """The failed rows as given, under the header as uploaded, then why and where."""
    width = len(run.columns)
    return xlsx.SheetSpec(
        name=_("Failed rows"), header=[*run.columns, str(EXTRA[0]), str(EXTRA[1])],
        rows=([*(list(f.values) + [""] * width)[:width], f.error, f.row]
              for f in failures(session, run.id)),
        widths=[18] * width + [70, 8], text_columns=tuple(range(width)))
