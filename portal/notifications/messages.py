"""The wording of each kind of member message.

A typed message stores only its `kind` and `params`; the words are made here when the
message is shown (or e-mailed), in the reader's language. So a member who switches to
Chinese reads last month's messages in Chinese, and a better translation reaches every
old message. Params are plain JSON: names as the merchant wrote them, numbers, ISO dates.

    coupon_arrived   {"titles": ["¥10 off × 2", ...]}
    gift_delivered   {"activity": "Complete your profile", "titles": [...], "points": 50}
    tier_changed     {"tier": "Gold", "plan": "Coffee club", "up": true}
    points_expiring  {"points": 120, "on": "2027-01-01"}
    student_approved {"until": "2027-07-31"}
    student_rejected {"reason": "The photo is blurred."}
    student_expiring {"on": "2027-07-31"}
    student_expired  {"on": "2027-07-31"}
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from babel.lists import format_list
from flask_babel import format_date, format_decimal, get_locale, ngettext
from flask_babel import gettext as _

from portal.notifications.models import MessageKind


@dataclass(frozen=True, slots=True)
class Wording:
    title: str
    body: str
    link: str | None = None


def _titles(params: dict) -> str:
    titles = [str(t) for t in params.get("titles") or []]
    # "A, B and C" / "A、B和C": the reader's own way of listing things.
    return format_list(titles, locale=get_locale() or "en") if titles else ""


def _coupon_arrived(params: dict) -> Wording:
    return Wording(_("New coupon in your wallet"),
                   _("You received: %(titles)s.", titles=_titles(params)), "/wallet")


def _gift_delivered(params: dict) -> Wording:
    activity, titles = params.get("activity") or "", _titles(params)
    points = int(params.get("points") or 0)
    if points and titles:
        body = ngettext("%(points)s point and %(titles)s are yours.",
                        "%(points)s points and %(titles)s are yours.", points,
                        points=format_decimal(points), titles=titles)
    elif points:
        body = ngettext("%(points)s point was added to your balance.",
                        "%(points)s points were added to your balance.", points,
                        points=format_decimal(points))
    else:
        body = _("In your wallet now: %(titles)s.", titles=titles)
    return Wording(_("Your gift from “%(activity)s” has arrived", activity=activity), body,
                   "/wallet" if titles else "/points")


def _tier_changed(params: dict) -> Wording:
    tier, plan = params.get("tier") or "", params.get("plan") or ""
    if params.get("up"):
        return Wording(_("Welcome to %(tier)s", tier=tier),
                       _("Your %(plan)s card moved up to %(tier)s.", plan=plan, tier=tier),
                       "/card")
    return Wording(_("Your tier is now %(tier)s", tier=tier),
                   _("Your %(plan)s card is now at %(tier)s.", plan=plan, tier=tier), "/card")


def _points_expiring(params: dict) -> Wording:
    points = int(params.get("points") or 0)
    on = date.fromisoformat(params["on"]) if params.get("on") else None
    return Wording(_("Points expiring soon"),
                   ngettext("%(n)s point expires on %(date)s. Spending uses it first.",
                            "%(n)s points expire on %(date)s. Spending uses them first.",
                            points, n=format_decimal(points),
                            date=format_date(on) if on else ""),
                   "/points")


def _on(params: dict, name: str) -> str:
    return format_date(date.fromisoformat(params[name])) if params.get(name) else ""


def _student_approved(params: dict) -> Wording:
    return Wording(_("Your student ID is verified"),
                   _("You are a verified student until %(date)s. Your student perks are "
                     "ready.", date=_on(params, "until")), "/student")


def _student_rejected(params: dict) -> Wording:
    return Wording(_("We could not verify your student ID"),
                   _("Reason: %(reason)s You can send a new request.",
                     reason=params.get("reason") or ""), "/student")


def _student_expiring(params: dict) -> Wording:
    return Wording(_("Your student status ends soon"),
                   _("Your student status ends after %(date)s. Verify again to keep your "
                     "student perks.", date=_on(params, "on")), "/student")


def _student_expired(params: dict) -> Wording:
    return Wording(_("Your student status has ended"),
                   _("Your student status ended after %(date)s. Verify again to get your "
                     "student perks back.", date=_on(params, "on")), "/student")


WORDINGS = {
    MessageKind.COUPON_ARRIVED: _coupon_arrived,
    MessageKind.GIFT_DELIVERED: _gift_delivered,
    MessageKind.TIER_CHANGED: _tier_changed,
    MessageKind.POINTS_EXPIRING: _points_expiring,
    MessageKind.STUDENT_APPROVED: _student_approved,
    MessageKind.STUDENT_REJECTED: _student_rejected,
    MessageKind.STUDENT_EXPIRING: _student_expiring,
    MessageKind.STUDENT_EXPIRED: _student_expired,
}


def word(kind: str, params: dict) -> Wording:
    """The title, body and link of a message of `kind`, in the current locale."""
    return WORDINGS[MessageKind(kind)](params or {})


def shown(message) -> Wording:
    """How an inbox message reads now: typed ones worded afresh, the rest as stored."""
    if message.kind in WORDINGS:
        return word(message.kind, message.params)
    return Wording(message.title, message.body, message.link)


def kind_labels() -> dict[MessageKind, tuple[str, str]]:
    """Each kind's name and what sets it off, for the merchant's settings page."""
    return {
        MessageKind.COUPON_ARRIVED: (
            _("Coupon arrived"),
            _("A coupon lands in the member's wallet: given by staff, claimed, or a gift.")),
        MessageKind.GIFT_DELIVERED: (
            _("Gift delivered"),
            _("An activity's gift (points, coupons) is delivered to the member.")),
        MessageKind.TIER_CHANGED: (
            _("Tier changed"),
            _("The member's card moves up or down a tier. Releasing tiers for the first "
              "time sends nothing.")),
        MessageKind.POINTS_EXPIRING: (
            _("Points expiring"),
            _("Points will expire soon: the member is told once per expiry date.")),
        MessageKind.STUDENT_APPROVED: (
            _("Student ID approved"),
            _("Staff approve the member's student ID: until when, and that perks are "
              "ready.")),
        MessageKind.STUDENT_REJECTED: (
            _("Student ID rejected"),
            _("Staff reject the member's student ID: the reason they gave.")),
        MessageKind.STUDENT_EXPIRING: (
            _("Student status ending"),
            _("Once per approval, the days before it ends that Students settings give: "
              "an invitation to verify again.")),
        MessageKind.STUDENT_EXPIRED: (
            _("Student status ended"),
            _("The student status has ended: the tag is removed, perks stop.")),
    }
