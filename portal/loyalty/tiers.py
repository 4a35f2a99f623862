"""Tiers (spec section 2): levels reached by experience, kept for a validity period,
recalculated on release, on a calendar day, at expiry and as experience changes.

Recalculation is set-based. Release runs wholly in the database: per chunk of cards one
UPDATE ... FROM over their experience sums. The other runs read one GROUP BY per window
over the experience entries of the cards concerned, then one executemany UPDATE of the
cards whose tier changes."""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from portal import clock, jobs, ledger
from portal.db import UTCDateTime, transaction
from portal.ledger import AccountKind
from portal.loyalty.errors import LoyaltyError, LoyaltyErrorCode
from portal.loyalty.models import TierSettings
from portal.members.models import MemberCard, Tier

CHUNK = 5000
# Release moves cards in SQL only, so its chunks can be larger: 20,000 cards hold the
# write lock for about 50 ms on SQLite, and progress still moves every few seconds at most.
RELEASE_CHUNK = 20_000
# A release whose recalculation never started (its task refused while Redis was away, or
# lost with its worker) would keep the settings locked for good: once it has waited this
# long with nothing done, the tick runs it (a second run moves no card twice).
RELEASE_STALLED_AFTER = timedelta(minutes=10)
ON_CHANGE = ("realtime", "upgrade_only", "none")
VALIDITY = ("permanent", "months", "month_end")
AFTER_EXPIRY = ("rule", "since_upgrade")


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or that month's last day (31 Jan + 1 = 28/29 Feb)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def tier_until(settings: TierSettings, tier: Tier, since: datetime) -> datetime | None:
    """When a tier reached at `since` lapses; None for good (the lowest tier, an
    accumulated-experience tier, or permanent validity)."""
    if tier.rank == 0 or tier.rule == "accumulated" or settings.validity == "permanent":
        return None
    months = settings.validity_months or 0
    reached_on = clock.local(since).date()
    if settings.validity == "months":
        # "The day after X months": kept through that date, lapsing at the next 0:00.
        return clock.start_of_local_day(add_months(reached_on, months) + timedelta(days=1))
    end = add_months(reached_on, months)
    first_of_next = date(end.year + end.month // 12, end.month % 12 + 1, 1)
    return clock.start_of_local_day(first_of_next)


def window_start(months: int, now: datetime) -> datetime:
    today = clock.local(now).date()
    return clock.start_of_local_day(add_months(today, -months))


def _sums(session: Session, member_ids: list[int], months: set[int],
          since: dict[int, datetime] | None = None) -> tuple[dict, dict, dict]:
    """Per member: all experience, experience per window, and experience since a date."""
    now = clock.now()
    base = (select(ledger.Account.owner_id, func.coalesce(func.sum(ledger.Entry.delta), 0))
            .join(ledger.Entry, ledger.Entry.account_id == ledger.Account.id)
            .where(ledger.Account.kind == AccountKind.EXPERIENCE,
                   ledger.Account.owner_type == "member",
                   ledger.Account.owner_id.in_(member_ids))
            .group_by(ledger.Account.owner_id))
    accumulated = dict(session.execute(
        select(ledger.Account.owner_id, ledger.Account.balance).where(
            ledger.Account.kind == AccountKind.EXPERIENCE,
            ledger.Account.owner_type == "member",
            ledger.Account.owner_id.in_(member_ids))).all())
    windows = {m: dict(session.execute(
        base.where(ledger.Entry.created_at >= window_start(m, now))).all()) for m in months}
    since_sums = {}
    if since:
        for member_id, moment in since.items():
            since_sums[member_id] = session.scalar(
                select(func.coalesce(func.sum(ledger.Entry.delta), 0))
                .join(ledger.Account, ledger.Account.id == ledger.Entry.account_id)
                .where(ledger.Account.kind == AccountKind.EXPERIENCE,
                       ledger.Account.owner_type == "member",
                       ledger.Account.owner_id == member_id,
                       ledger.Entry.created_at > moment))
    return accumulated, windows, since_sums


@dataclass(frozen=True, slots=True)
class Level:
    """A tier as plain data: matching runs per card, so no ORM attribute access there."""

    id: int
    rank: int
    threshold: int | None
    rule: str | None
    window_months: int | None


@dataclass
class PlanTiers:
    settings: TierSettings
    tiers: list[Tier]

    def __post_init__(self) -> None:
        self.levels = sorted((Level(t.id, t.rank, t.threshold, t.rule, t.window_months)
                              for t in self.tiers), key=lambda lv: lv.rank, reverse=True)
        self.level_by_id = {lv.id: lv for lv in self.levels}

    @property
    def windows(self) -> set[int]:
        return {t.window_months for t in self.tiers if t.rule == "window" and t.window_months}


def plan_tiers(session: Session, plan_id: int) -> PlanTiers | None:
    settings = session.scalar(select(TierSettings).where(TierSettings.plan_id == plan_id))
    tiers = list(session.scalars(select(Tier).where(Tier.plan_id == plan_id)
                                 .order_by(Tier.rank)))
    return PlanTiers(settings, tiers) if settings is not None else None


def _best(levels: list[Level], accumulated: int, windows: dict, member_id: int) -> Level:
    """The highest level whose rule the experience meets, matched from high to low;
    window sums are read straight from the per-window dicts (this runs once per card)."""
    for level in levels:  # high to low
        if level.rank == 0:
            return level
        amount = accumulated if level.rule == "accumulated" \
            else windows.get(level.window_months, {}).get(member_id, 0)
        if level.threshold is not None and amount >= level.threshold:
            return level
    return levels[-1]


def _target(pt: PlanTiers, card, accumulated, windows, mode: str, since_sums=None) -> Level:
    current = pt.level_by_id.get(card.tier_id) or pt.levels[-1]
    if mode == "since_upgrade":
        amount = since_sums.get(card.member_id, 0)
        best = _best(pt.levels, amount, {m: {card.member_id: amount} for m in pt.windows},
                     card.member_id)
    else:
        best = _best(pt.levels, accumulated.get(card.member_id, 0), windows, card.member_id)
    if mode == "upgrade_only":
        return best if best.rank > current.rank else current
    if mode == "periodic":
        expired = card.tier_until_at is not None and card.tier_until_at <= clock.now()
        return best if best.rank > current.rank or expired else current
    return best  # release, real time, expiry


def _apply(session: Session, pt: PlanTiers, cards, targets: dict,
           renew: bool = False) -> int:
    """Move cards to their targets: one UPDATE per target tier (every card moving to a
    tier gets the same dates), and tell the members whose tier really changed: one
    message call per new tier and direction. Returns how many moved."""
    now = clock.now()
    moving: dict[int, list[int]] = {}
    changed: dict[tuple[int, bool], list[int]] = {}
    lowest = pt.levels[-1]
    for card in cards:
        target = targets[card.id]
        if target.id != card.tier_id or renew:
            moving.setdefault(target.id, []).append(card.id)
        if target.id != card.tier_id:
            current = pt.level_by_id.get(card.tier_id) or lowest
            changed.setdefault((target.id, target.rank > current.rank), []).append(
                card.member_id)
    by_id = {t.id: t for t in pt.tiers}
    for tier_id, card_ids in moving.items():  # a handful of tiers: one UPDATE each
        session.execute(update(MemberCard).where(MemberCard.id.in_(card_ids))
                        .values(tier_id=tier_id, tier_since_at=now,
                                tier_until_at=tier_until(pt.settings, by_id[tier_id], now)))
    if changed:
        from portal.members.models import CardPlan
        from portal.notifications import services as notifications
        from portal.notifications.models import MessageKind

        plan = session.get(CardPlan, pt.settings.plan_id)
        for (tier_id, up), member_ids in changed.items():
            notifications.send(session, MessageKind.TIER_CHANGED, member_ids,
                               {"tier": by_id[tier_id].name, "plan": plan.name, "up": up})
    return sum(len(ids) for ids in moving.values())


def _plan_sums(session: Session, plan_id: int, months: set[int]) -> tuple[dict, dict]:
    """All experience and experience per window for every member of a plan: one query
    each, joined to the plan's cards (no lists of ids)."""
    now = clock.now()
    members = select(MemberCard.member_id).where(MemberCard.plan_id == plan_id)
    experience = (ledger.Account.kind == AccountKind.EXPERIENCE,
                  ledger.Account.owner_type == "member",
                  ledger.Account.owner_id.in_(members))
    conn = session.connection()  # Core rows: no ORM loading for 200,000 of them
    accumulated = dict(conn.execute(
        select(ledger.Account.owner_id, ledger.Account.balance).where(*experience)).all())
    windows = {m: dict(conn.execute(
        select(ledger.Account.owner_id, func.sum(ledger.Entry.delta))
        .join(ledger.Entry, ledger.Entry.account_id == ledger.Account.id)
        .where(*experience, ledger.Entry.created_at >= window_start(m, now))
        .group_by(ledger.Account.owner_id)).all()) for m in months}
    return accumulated, windows


CARD_COLUMNS = (MemberCard.id, MemberCard.member_id, MemberCard.tier_id,
                MemberCard.tier_until_at, MemberCard.tier_since_at, MemberCard.issued_at)


def _release_in_sql(session: Session, pt: PlanTiers, plan_id: int) -> int:
    """Release mode for a whole plan, in the database: per chunk of cards one UPDATE ...
    FROM over per-card experience sums, the levels matched high to low by a CASE. The
    sums are keyed by card and outer-joined, so a card whose member has no experience
    account (sums NULL, no rule met) falls to the lowest level in the same statement.

    Silent on purpose: the first release sorts a whole plan (200,000 cards at a launch)
    into tiers for the first time; a "tier changed" message (and e-mail) to every member at
    once would be noise, and the release benchmark measures this path without it. Later
    changes, through `_apply`, do tell members."""
    from sqlalchemy import and_, case, literal

    now = clock.now()
    levels = pt.levels  # high to low
    base = levels[-1]
    by_id = {t.id: t for t in pt.tiers}
    ids = session.connection().execute(select(MemberCard.id).where(
        MemberCard.plan_id == plan_id).order_by(MemberCard.id)).scalars().all()
    session.rollback()
    moved = 0
    for start in range(0, len(ids), RELEASE_CHUNK):
        end = min(start + RELEASE_CHUNK, len(ids))
        low, high = ids[start], ids[end - 1]
        window_sums = {
            m: func.sum(case((ledger.Entry.created_at >= window_start(m, now),
                              ledger.Entry.delta), else_=0)).label(f"w{m}")
            for m in pt.windows}
        sums = (select(MemberCard.id.label("card_id"),
                       func.max(ledger.Account.balance).label("acc"), *window_sums.values())
                .join(ledger.Account, and_(ledger.Account.owner_id == MemberCard.member_id,
                                           ledger.Account.kind == AccountKind.EXPERIENCE,
                                           ledger.Account.owner_type == "member"),
                      isouter=True)
                .join(ledger.Entry, ledger.Entry.account_id == ledger.Account.id, isouter=True)
                .where(MemberCard.plan_id == plan_id, MemberCard.id.between(low, high))
                .group_by(MemberCard.id).subquery())
        whens = []
        for level in levels[:-1]:
            amount = sums.c.acc if level.rule == "accumulated" \
                else sums.c[f"w{level.window_months}"]
            whens.append((amount >= level.threshold, literal(level.id)))
        target = case(*whens, else_=literal(base.id))
        until = case(*[(target == lv.id, literal(tier_until(pt.settings, by_id[lv.id], now),
                                                 UTCDateTime()))
                       for lv in levels], else_=None)
        with transaction(session):
            moved += session.execute(
                update(MemberCard).where(MemberCard.id == sums.c.card_id,
                                         MemberCard.tier_id != target)
                .values(tier_id=target, tier_since_at=now, tier_until_at=until)
                .execution_options(synchronize_session=False)).rowcount
            session.execute(update(TierSettings).where(TierSettings.plan_id == plan_id).values(
                recalc_done=TierSettings.recalc_done + (end - start)))
    return moved


def recalculate(session: Session, plan_id: int, *, mode: str = "release",
                card_filter=None) -> int:
    """Recalculate the tiers of a plan's cards (or those `card_filter` picks), recording
    progress. Plan-wide runs read the sums with one GROUP BY per window, then move cards
    in chunks with one UPDATE per target tier."""
    pt = plan_tiers(session, plan_id)
    if pt is None or not pt.settings.enabled:
        return 0
    if mode == "release" and card_filter is None:
        return _release_in_sql(session, pt, plan_id)
    query = select(*CARD_COLUMNS).where(MemberCard.plan_id == plan_id)
    if card_filter is not None:
        query = query.where(card_filter)
    cards = session.connection().execute(query.order_by(MemberCard.id)).all()
    if not cards:
        session.rollback()
        return 0
    since_sums = {}
    if card_filter is None:
        accumulated, windows = _plan_sums(session, plan_id, pt.windows)
    else:
        since = {c.member_id: c.tier_since_at or c.issued_at for c in cards} \
            if mode == "since_upgrade" else None
        accumulated, windows, since_sums = _sums(session, [c.member_id for c in cards],
                                                 pt.windows, since)
    session.rollback()
    renew = mode in ("rule", "since_upgrade")
    moved = 0
    for start in range(0, len(cards), CHUNK):
        chunk = cards[start:start + CHUNK]
        with transaction(session):
            targets = {c.id: _target(pt, c, accumulated, windows, mode, since_sums)
                       for c in chunk}
            moved += _apply(session, pt, chunk, targets, renew=renew)
    return moved


def on_experience_change(session: Session, member_id: int) -> None:
    """Adjust a member's tier as their experience changed, as the settings say. Runs in
    the caller's transaction."""
    for card in session.scalars(select(MemberCard).where(MemberCard.member_id == member_id)):
        pt = plan_tiers(session, card.plan_id)
        if pt is None or not pt.settings.enabled or pt.settings.released_at is None \
                or pt.settings.on_change == "none" or pt.settings.is_running \
                or len(pt.tiers) < 2:
            continue
        accumulated, windows, _since = _sums(session, [member_id], pt.windows)
        target = _target(pt, card, accumulated, windows, pt.settings.on_change)
        _apply(session, pt, [card], {card.id: target})


# --- settings and release ---------------------------------------------------------------

def check_levels(tiers: list[Tier]) -> dict[str, str]:
    errors = {}
    higher = sorted((t for t in tiers if t.rank > 0), key=lambda t: t.rank)
    thresholds = [t.threshold for t in higher]
    if any(t is None or t <= 0 for t in thresholds):
        errors["threshold"] = _("Every level above the lowest needs a threshold above zero.")
    elif len(set(thresholds)) != len(thresholds):
        errors["threshold"] = _("Two levels have the same threshold.")
    elif thresholds != sorted(thresholds):
        errors["threshold"] = _("Higher levels need higher thresholds.")
    if any(t.rule not in ("window", "accumulated") or
           (t.rule == "window" and not (t.window_months or 0) > 0) for t in higher):
        errors["rule"] = _("Choose the upgrade rule; a window needs its months.")
    return errors


def release(session: Session, plan_id: int, *, operator_id: int) -> TierSettings:
    """Turn on computed tiers (for good) and recalculate every card in the background."""
    from portal.staff.services import record

    with transaction(session):
        pt = plan_tiers(session, plan_id)
        if pt is None:
            raise LoyaltyError(LoyaltyErrorCode.INVALID, _("Save the tier settings first."))
        _check_unlocked(pt.settings)
        errors = check_levels(pt.tiers)
        if errors:
            raise LoyaltyError(LoyaltyErrorCode.INVALID, _("Please correct the levels."),
                               errors=errors)
        settings = pt.settings
        settings.enabled = True
        settings.released_at = clock.now()
        settings.recalc_total = session.scalar(select(func.count(MemberCard.id))
                                               .where(MemberCard.plan_id == plan_id))
        settings.recalc_done = 0
        settings.recalc_started_at, settings.recalc_finished_at = clock.now(), None
        record(session, operator_id, "tiers.release", ("card_plans", plan_id),
               after={"levels": [[t.name, t.threshold, t.rule, t.window_months]
                                 for t in pt.tiers]})
        from portal.db import after_commit

        after_commit(session, lambda: jobs.wake(recalculate_task, plan_id))
        return settings


@jobs.task(retries=2)
def recalculate_task(plan_id: int) -> int:
    from portal.db import db

    try:
        return recalculate(db.session, plan_id, mode="release")
    finally:
        # Even when it fails the settings are unlocked; releasing again redoes it all.
        db.session.rollback()
        with transaction(db.session):
            db.session.execute(update(TierSettings).where(TierSettings.plan_id == plan_id)
                               .values(recalc_finished_at=clock.now()))


@jobs.on_tick("tiers")
def daily_tiers(session: Session) -> dict:
    """Expired tiers are recalculated as they lapse; on a plan's calendar day, from 0:00
    local time, everyone is (once). Runs every minute: cheap when there is nothing due."""
    results = {}
    stalled = session.scalars(select(TierSettings.plan_id).where(
        TierSettings.recalc_finished_at.is_(None), TierSettings.recalc_done == 0,
        TierSettings.recalc_started_at < clock.now() - RELEASE_STALLED_AFTER)).all()
    session.rollback()
    for plan_id in stalled:
        results[plan_id] = recalculate_task.call_local(plan_id)
    today = clock.today()
    for settings in session.scalars(select(TierSettings).where(
            TierSettings.enabled, TierSettings.released_at.is_not(None),
            TierSettings.recalc_finished_at.is_not(None))).all():
        plan_id, mode = settings.plan_id, settings.after_expiry
        results[plan_id] = recalculate(
            session, plan_id, mode=mode,
            card_filter=(MemberCard.tier_until_at.is_not(None))
            & (MemberCard.tier_until_at <= clock.now()))
        if settings.recalc_day == today.day and settings.last_periodic_on != today:
            results[plan_id] += recalculate(session, plan_id, mode="periodic")
            with transaction(session):
                session.execute(update(TierSettings).where(TierSettings.plan_id == plan_id)
                                .values(last_periodic_on=today))
    return results


def _check_unlocked(settings: TierSettings) -> None:
    """Settings and levels wait while a release recalculates (spec 2.11)."""
    if settings.is_running:
        raise LoyaltyError(LoyaltyErrorCode.INVALID,
                           _("A recalculation is running: wait for it to finish."))


def settings_for(session: Session, plan_id: int) -> TierSettings:
    """The plan's tier settings, made (off) on first use."""
    settings = session.scalar(select(TierSettings).where(TierSettings.plan_id == plan_id))
    if settings is None:
        settings = TierSettings(plan_id=plan_id)
        session.add(settings)
        session.flush()
    return settings


def save_settings(session: Session, plan_id: int, data: dict, *,
                  operator_id: int) -> TierSettings:
    """Recalculation, validity and the on/off switch, which cannot change once levels
    have been released (spec 2.1, 2.122)."""
    from portal.staff.services import record

    errors = {}
    if data.get("on_change") not in ON_CHANGE:
        errors["on_change"] = _("Choose how experience changes move tiers.")
    if data.get("validity") not in VALIDITY:
        errors["validity"] = _("Choose how long a tier is kept.")
    elif data["validity"] != "permanent" and not 1 <= (data.get("validity_months") or 0) <= 120:
        errors["validity_months"] = _("From 1 to 120 months.")
    if data.get("after_expiry") not in AFTER_EXPIRY:
        errors["after_expiry"] = _("Choose how an expired tier is recalculated.")
    day = data.get("recalc_day")
    if day is not None and not 1 <= day <= 28:
        errors["recalc_day"] = _("A day from 1 to 28, or none.")
    with transaction(session):
        settings = settings_for(session, plan_id)
        _check_unlocked(settings)
        # Spec 2.1/2.122: free to switch until levels are released; never off after.
        if bool(data.get("enabled")) != settings.enabled and settings.released_at is not None:
            errors["enabled"] = _("Computed tiers stay on once released.")
        if errors:
            raise LoyaltyError(LoyaltyErrorCode.INVALID, _("Please correct the marked fields."),
                               errors=errors)
        before = {k: getattr(settings, k) for k in ("enabled", "recalc_day", "on_change",
                                                     "validity", "validity_months",
                                                     "after_expiry")}
        settings.enabled = bool(data.get("enabled"))
        settings.recalc_day = day
        settings.on_change = data["on_change"]
        settings.validity = data["validity"]
        settings.validity_months = data.get("validity_months") \
            if data["validity"] != "permanent" else None
        settings.after_expiry = data["after_expiry"]
        record(session, operator_id, "tiers.settings", ("card_plans", plan_id),
               before=before, after={k: getattr(settings, k) for k in before})
        return settings


def save_level(session: Session, plan_id: int, *, name: str, threshold: int | None,
               rule: str | None, window_months: int | None, tier_id: int | None = None,
               operator_id: int) -> Tier:
    """Add a level above the others, or change one; the order of thresholds is checked
    against every level."""
    from portal.staff.services import record

    name = " ".join((name or "").split())
    errors = {}
    if not name or len(name) > 60:
        errors["name"] = _("Give the level a name of at most 60 characters.")
    with transaction(session):
        settings = settings_for(session, plan_id)
        _check_unlocked(settings)
        tiers = list(session.scalars(select(Tier).where(Tier.plan_id == plan_id)
                                     .order_by(Tier.rank)))
        if tier_id is None:
            tier = Tier(plan_id=plan_id, name=name, rank=(tiers[-1].rank + 1) if tiers else 0)
            candidate = [*tiers, tier]
        else:
            tier = next((t for t in tiers if t.id == tier_id), None)
            if tier is None:
                raise LoyaltyError(LoyaltyErrorCode.INVALID, _("There is no such level."))
            candidate = tiers
        tier.name = name
        if tier.rank > 0:
            tier.threshold, tier.rule = threshold, rule
            tier.window_months = window_months if rule == "window" else None
        errors.update(check_levels(candidate))
        if errors:
            raise LoyaltyError(LoyaltyErrorCode.INVALID, _("Please correct the marked fields."),
                               errors=errors)
        if tier_id is None:
            session.add(tier)
        session.flush()
        record(session, operator_id, "tiers.level", ("tiers", tier.id),
               after={"name": name, "threshold": tier.threshold, "rule": tier.rule,
                      "window_months": tier.window_months})
        return tier


def remove_level(session: Session, tier_id: int, *, operator_id: int) -> None:
    """Remove the top level if no card holds it (never the lowest)."""
    from portal.staff.services import record

    with transaction(session):
        tier = session.get(Tier, tier_id)
        if tier is None or tier.rank == 0:
            raise LoyaltyError(LoyaltyErrorCode.INVALID, _("The lowest level stays."))
        _check_unlocked(settings_for(session, tier.plan_id))
        top = session.scalar(select(func.max(Tier.rank)).where(Tier.plan_id == tier.plan_id))
        if tier.rank != top:
            raise LoyaltyError(LoyaltyErrorCode.INVALID, _("Remove the highest level first."))
        if session.scalar(select(func.count(MemberCard.id))
                          .where(MemberCard.tier_id == tier.id)):
            raise LoyaltyError(LoyaltyErrorCode.INVALID,
                               _("Members hold this level: release lower thresholds first."))
        record(session, operator_id, "tiers.level_remove", ("tiers", tier.id),
               before={"name": tier.name, "threshold": tier.threshold})
        session.delete(tier)


def progress(session: Session, member_id: int):
    """For the member's card: the next level and how much experience it still needs."""
    card = session.scalar(select(MemberCard).where(MemberCard.member_id == member_id)
                          .order_by(MemberCard.id).limit(1))
    if card is None:
        return None
    pt = plan_tiers(session, card.plan_id)
    if pt is None or not pt.settings.enabled:
        return None
    current = next((t for t in pt.tiers if t.id == card.tier_id), pt.tiers[0])
    nxt = next((t for t in pt.tiers if t.rank > current.rank), None)
    # The stored end is exclusive; members are told the last day they keep the tier.
    until = card.tier_until_at - timedelta(microseconds=1) if card.tier_until_at else None
    if nxt is None:
        return {"next": None, "needed": 0, "have": 0, "until": until}
    accumulated, windows, _s = _sums(session, [member_id], pt.windows)
    if nxt.rule == "accumulated":
        have = accumulated.get(member_id, 0)
    else:
        have = windows.get(nxt.window_months, {}).get(member_id, 0)
    return {"next": nxt, "needed": max(nxt.threshold - have, 0), "have": have,
            "until": until}


def record_tier(session: Session, card_id: int, tier_id: int, *, operator_id: int) -> None:
    """Staff set a card's tier by hand: only while the plan's tiers are not computed."""
    from portal.staff.services import record

    with transaction(session):
        card = session.get(MemberCard, card_id)
        tier = session.get(Tier, tier_id)
        if card is None or tier is None or tier.plan_id != card.plan_id:
            raise LoyaltyError(LoyaltyErrorCode.INVALID, _("Choose a level of this card's plan."))
        settings = session.scalar(select(TierSettings)
                                  .where(TierSettings.plan_id == card.plan_id))
        if settings is not None and settings.enabled:
            raise LoyaltyError(LoyaltyErrorCode.INVALID,
                               _("This plan computes tiers from experience: they cannot be "
                                 "set by hand."))
        before = {"tier_id": card.tier_id}
        card.tier_id, card.tier_since_at, card.tier_until_at = tier.id, clock.now(), None
        record(session, operator_id, "card.tier", card, before=before,
               after={"tier_id": tier.id, "tier": tier.name})


def manual_tier_plans(session: Session) -> set[int]:
    """Plans whose tiers are recorded by hand (not computed)."""
    from portal.members.models import CardPlan

    computed = set(session.scalars(select(TierSettings.plan_id).where(TierSettings.enabled)))
    return set(session.scalars(select(CardPlan.id))) - computed
