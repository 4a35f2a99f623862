"""Template filters: money, dates and numbers always through Babel in the viewer's locale."""
from __future__ import annotations

from functools import lru_cache

import segno
from flask_babel import format_date, format_decimal, format_percent, format_time, get_locale
from markupsafe import Markup

from portal import clock
from portal.members.attributes import display_mobile
from portal.money import Money


def money(minor: int | None, currency: str) -> str:
    return Money(minor or 0, currency).format(str(get_locale() or "en"))


def date(value, fmt: str = "medium") -> str:
    return format_date(value, fmt) if value else ""


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


def register(app) -> None:
    app.add_template_filter(money, "money")
    app.add_template_filter(date, "date")
    app.add_template_filter(datetime_, "datetime")
    app.add_template_filter(number, "number")
    app.add_template_filter(percent, "percent")
    app.add_template_filter(display_mobile, "mobile")
    app.add_template_global(qr_svg, "qr_svg")
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


def register_labels(app) -> None:
    for fn in (role_label, status_label, card_status_label):
        app.add_template_global(fn, fn.__name__)
