"""Template filters: money, dates and numbers always through Babel in the viewer's locale."""
from __future__ import annotations

from datetime import datetime as datetime_type
from functools import lru_cache

import segno
from flask_babel import format_date, format_decimal, format_percent, format_time, get_locale
from markupsafe import Markup, escape

from portal import clock
from portal.members.attributes import display_mobile
from portal.money import Money


def money(minor: int | None, currency: str) -> str:
    return Money(minor or 0, currency).format(str(get_locale() or "en"))


def date(value, fmt: str = "medium") -> str:
    """A date, or the merchant's local date of an instant."""
    if not value:
        return ""
    if isinstance(value, datetime_type):
        value = clock.local(value).date()
    return format_date(value, fmt)


def datetime_(value) -> str:
    """Date and time to the minute, in the merchant's time zone and the viewer's locale."""
    if not value:
        return ""
    local = clock.local(value)
    return f"{format_date(local, 'medium')} {format_time(local, 'short')}"


def number(value) -> str:
    return format_decimal(value or 0)


def percent(value) -> str:
    return "—" if value is None else format_percent(value, "#,##0.0%")


def qr_code(data: str) -> segno.QRCode:
    """A full QR symbol: segno would pick Micro QR for short data such as a card number,
    which phone cameras and many till scanners cannot read."""
    return segno.make_qr(data, error="m")


@lru_cache(maxsize=2048)
def qr_svg(data: str, scale: int = 6, title: str = "") -> Markup:
    """An inline SVG QR code (no script, no style attributes: CSP-safe). The same card
    number always gives the same code, so it is made once per process."""
    svg = qr_code(data).svg_inline(scale=scale, border=4, title=title or None,
                                   svgclass="qr", lineclass=None, omitsize=True)
    return Markup(svg)


def gender_label(value: str | None) -> str:
    from portal.members.attributes import GENDER_LABELS

    return str(GENDER_LABELS.get(value, "")) if value else ""


@lru_cache(maxsize=2048)
def barcode_svg(data: str, title: str = "") -> Markup:
    """A Code 128 barcode drawn as SVG rectangles with presentation attributes (the CSP
    forbids the style attributes python-barcode's own writer uses)."""
    import barcode

    modules = barcode.get("code128", data).build()[0]
    quiet = 10
    bars, x = [], quiet
    for bit, run in _runs(modules):
        if bit == "1":
            bars.append(f'<rect x="{x}" y="0" width="{run}" height="50"/>')
        x += run
    width = x + quiet
    label = f"<title>{escape(title)}</title>" if title else ""
    return Markup(f'<svg class="barcode" viewBox="0 0 {width} 50" preserveAspectRatio="none" '
                  f'role="img" xmlns="http://www.w3.org/2000/svg">{label}'
                  f'<rect width="{width}" height="50" fill="#fff"/>'
                  f'<g fill="#000">{"".join(bars)}</g></svg>')


def _runs(bits: str):
    start = 0
    for i in range(1, len(bits) + 1):
        if i == len(bits) or bits[i] != bits[start]:
            yield bits[start], i - start
            start = i


def coupon_value(template) -> str:
    """What a coupon is worth, in words: "¥10.00 off", "15% off", "Free latte"."""
    from flask_babel import gettext as _

    if template.kind == "cash":
        return _("%(amount)s off", amount=money(template.amount_minor, template.currency))
    if template.kind == "discount":
        percent = format_decimal(template.percent_off / 100, format="#,##0.##")
        return _("%(percent)s%% off", percent=percent)
    return template.gift_item or ""


def coupon_conditions(template) -> list[str]:
    from flask_babel import gettext as _

    out = []
    if template.min_spend_minor:
        out.append(_("With a spend of %(amount)s or more",
                     amount=money(template.min_spend_minor, template.currency)))
    if template.kind == "discount" and template.cap_minor:
        out.append(_("Up to %(amount)s off", amount=money(template.cap_minor,
                                                          template.currency)))
    if template.product_ids:
        out.append(_("On selected products only"))
    return out


def register(app) -> None:
    app.add_template_filter(money, "money")
    app.add_template_filter(date, "date")
    app.add_template_filter(datetime_, "datetime")
    app.add_template_filter(number, "number")
    app.add_template_filter(percent, "percent")
    app.add_template_filter(display_mobile, "mobile")
    app.add_template_global(qr_svg, "qr_svg")
    app.add_template_global(barcode_svg, "barcode_svg")
    app.add_template_filter(coupon_value, "coupon_value")
    app.add_template_global(coupon_conditions, "coupon_conditions")
    app.add_template_global(gender_label, "gender_label")


def role_label(value: str) -> str:
    from flask_babel import lazy_gettext as _l

    return str({"owner": _l("Owner"), "manager": _l("Manager"), "clerk": _l("Clerk")}
               .get(value, value))


def status_label(value: str) -> str:
    from flask_babel import lazy_gettext as _l

    return str({"normal": _l("Normal"), "abnormal": _l("Abnormal")}.get(value, value))


def card_status_label(value: str) -> str:
    from flask_babel import lazy_gettext as _l

    return str({"active": _l("Active"), "frozen": _l("Frozen"), "expired": _l("Expired")}
               .get(value, value))


def template_status_label(value: str) -> str:
    from flask_babel import lazy_gettext as _l

    return str({"draft": _l("Draft"), "active": _l("Active"), "inactive": _l("Inactive")}
               .get(value, value))


def coupon_state_label(value: str) -> str:
    from flask_babel import lazy_gettext as _l

    return str({"available": _l("Available"), "used": _l("Used"), "expired": _l("Expired"),
                "not_yet_valid": _l("Not yet valid")}.get(value, value))


def ledger_kind_label(value: str) -> str:
    from flask_babel import lazy_gettext as _l

    return str({"points": _l("Points"), "experience": _l("Experience")}.get(value, value))


def ledger_reason_label(value: str) -> str:
    from flask_babel import lazy_gettext as _l

    return str({"order": _l("Order"), "refund": _l("Refund"), "redeem": _l("Spent"),
                "event": _l("Reward for an activity"), "activity": _l("Gift from a campaign"),
                "adjustment": _l("Adjusted by staff"), "expired": _l("Expired")}
               .get(value, value))


def field_label(name: str) -> str:
    from portal.members.attributes import ATTRIBUTES

    return str(ATTRIBUTES[name].label) if name in ATTRIBUTES else name


def register_labels(app) -> None:
    for fn in (role_label, status_label, card_status_label, template_status_label,
               coupon_state_label, ledger_kind_label, ledger_reason_label, field_label):
        app.add_template_global(fn, fn.__name__)
