"""Previewing a member journey as a synthetic profile, with no side effects.

The member pages read the member, their cards and balances from the database through
many services. Rather than teach each of them about a pretend member, a preview request
builds the profile as real rows inside a transaction that is never committed: every page
then behaves exactly as it would for such a member, and the rows vanish when the request
ends (the session's teardown rolls back). Two guards make that hold: services join this
transaction instead of starting their own (`info["writing"]`), and any commit while it is
open raises. PostgreSQL sequences do move on; nothing else is left behind.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

from flask_babel import gettext as _
from sqlalchemy import event, select
from sqlalchemy.orm import Session, scoped_session

from portal import clock, ledger
from portal.db import transaction
from portal.ledger import AccountKind
from portal.members.errors import MemberError, MemberErrorCode
from portal.members.models import CardPlan, CardStatus, Member, MemberCard, Tier
from portal.members.services import member_by_mobile, new_card_number
from portal.staff.services import record

SANDBOX = "synthetic_preview"
MAX_BALANCE = 10**9


@dataclass(frozen=True)
class Profile:
    """What the merchant chose for a pretend member; kept in the staff session."""
    plan_id: int
    tier_id: int
    name: str = ""
    born_on: date | None = None
    prepaid_minor: int = 0
    points: int = 0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["born_on"] = self.born_on.isoformat() if self.born_on else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Profile:
        return cls(**{**d, "born_on": date.fromisoformat(d["born_on"]) if d.get("born_on")
                      else None})


@event.listens_for(Session, "before_commit")
def _never_commit_a_sandbox(session: Session) -> None:
    # Releasing a savepoint (ledger.account() makes one) is not a commit.
    if session.info.get(SANDBOX) and not session.in_nested_transaction():
        raise RuntimeError("a synthetic preview never commits")


def check_profile(session: Session, values: dict) -> Profile:
    """A profile from the form's values, every field error at once."""
    errors: dict[str, str] = {}
    tier = session.get(Tier, values.get("tier_id") or 0)
    if tier is None:
        errors["tier_id"] = _("Choose a card plan and tier.")
    amounts = {}
    for name in ("prepaid_minor", "points"):
        raw = values.get(name) or 0
        if not 0 <= raw <= MAX_BALANCE:
            errors[name] = _("Enter a smaller amount.")
        amounts[name] = raw
    born_on = values.get("born_on")
    if born_on is not None and born_on > clock.today():
        errors["born_on"] = _("A birthday cannot be in the future.")
    if errors:
        raise MemberError(MemberErrorCode.INVALID_VALUE, _("Please correct the marked fields."),
                          errors=errors)
    return Profile(plan_id=tier.plan_id, tier_id=tier.id, name=(values.get("name") or "")[:60],
                   born_on=born_on, **amounts)


def find_member(session: Session, query: str) -> Member | None:
    """A member by mobile number or card number, for "preview as" a real member."""
    query = (query or "").strip()
    if not query:
        return None
    card = session.scalar(select(MemberCard).where(MemberCard.number == query.replace(" ", "")))
    if card is not None:
        return session.get(Member, card.member_id)
    try:
        return member_by_mobile(session, query)
    except MemberError:
        return None


def start(session: Session, *, operator_id: int, journey: str, target: str | None,
          member_id: int | None = None, profile: Profile | None = None) -> None:
    """Audit the start of a preview: whose view of which journey."""
    with transaction(session):
        after = {"journey": journey, "target": target}
        if profile is not None:
            after["profile"] = profile.as_dict()
            record(session, operator_id, "member.preview_synthetic", ("journeys", journey),
                   after=after)
        else:
            record(session, operator_id, "member.preview", (Member.__tablename__,
                                                              member_id), after=after)


def open_sandbox(session: Session, profile: Profile) -> Member | None:
    """The profile as a member, in a transaction that the request's end rolls back."""
    tier = session.get(Tier, profile.tier_id)
    plan = session.get(CardPlan, profile.plan_id)
    if tier is None or plan is None or tier.plan_id != plan.id:
        return None
    if isinstance(session, scoped_session):
        session = session()
    if session.in_transaction():
        session.commit()   # only reads so far
    session.info["writing"] = True
    session.info[SANDBOX] = True
    session.connection(execution_options={"tessera_write": True})
    now = clock.now()
    member = Member(full_name=profile.name or _("Preview member"), born_on=profile.born_on,
                    mobile=None, mobile_verified=False, became_member_at=now, custom={},
                    created_at=now)
    session.add(member)
    session.flush()
    card = MemberCard(number=new_card_number(), member_id=member.id, plan_id=plan.id,
                      tier_id=tier.id, status=CardStatus.ACTIVE, issued_at=now,
                      tier_since_at=now)
    session.add(card)
    session.flush()
    if profile.points:
        ledger.post(session, ledger.account(session, AccountKind.POINTS, "member", member.id),
                    profile.points, reason="preview", key="preview")
    if profile.prepaid_minor:
        ledger.post(session, ledger.account(session, AccountKind.PREPAID_PRINCIPAL, "card",
                                            card.id, plan.currency),
                    profile.prepaid_minor, reason="preview", key="preview")
    return member
