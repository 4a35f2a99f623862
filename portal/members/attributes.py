"""The preset member attributes a registration form or profile can ask for.

Mobile is not listed: it is on every registration form, required and verified.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l

from portal import clock
from portal.members.errors import MemberError, MemberErrorCode
from portal.members.models import Gender

MAX_AGE_YEARS = 120


CUSTOM_PREFIX = "custom__"
MAX_CUSTOM_ATTRIBUTES = 48


@dataclass(frozen=True)
class Attribute:
    name: str
    label: object  # a lazy string, or the merchant's own name for a custom attribute
    kind: str  # text, email, date, choice, number
    max_length: int = 120
    custom: bool = False

    @property
    def key(self) -> str:
        """Where a custom attribute's value is kept in Member.custom."""
        return self.name.removeprefix(CUSTOM_PREFIX)


ATTRIBUTES: dict[str, Attribute] = {
    a.name: a
    for a in (
        Attribute("full_name", _l("Full name"), "text", 120),
        Attribute("email", _l("Email"), "email", 254),
        Attribute("born_on", _l("Date of birth"), "date"),
        Attribute("gender", _l("Gender"), "choice"),
        Attribute("address", _l("Address"), "text", 255),
        Attribute("id_number", _l("ID number"), "text", 32),
    )
}

GENDER_LABELS = {
    Gender.FEMALE: _l("Female"),
    Gender.MALE: _l("Male"),
    Gender.OTHER: _l("Other"),
    Gender.UNDISCLOSED: _l("Prefer not to say"),
}

def custom_attribute(key: str, name: str, kind: str) -> Attribute:
    return Attribute(CUSTOM_PREFIX + key, name, kind, 255, custom=True)


def catalogue(custom: list) -> dict[str, Attribute]:
    """Every attribute a form can ask for: the presets, then the merchant's own."""
    return {**ATTRIBUTES, **{CUSTOM_PREFIX + c.key: custom_attribute(c.key, c.name, c.kind)
                             for c in custom}}


ID_NUMBER = re.compile(r"^[0-9A-Za-z-]{4,32}$")


def normalize_mobile(raw: str, region: str) -> str:
    """E.164, or MemberError for anything that is not a valid mobile-capable number."""
    if not (raw or "").strip():
        raise MemberError(MemberErrorCode.REQUIRED, str(_l("Enter your mobile number.")),
                          field="mobile")
    try:
        number = phonenumbers.parse((raw or "").strip(), region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number) or \
            phonenumbers.number_type(number) not in (
                phonenumbers.PhoneNumberType.MOBILE,
                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise MemberError(MemberErrorCode.INVALID_MOBILE,
                          str(_l("Enter a valid mobile number.")), field="mobile")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def display_mobile(e164: str | None) -> str:
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return e164
    # Non-breaking spaces: a number must not break across lines.
    return phonenumbers.format_number(
        number, phonenumbers.PhoneNumberFormat.INTERNATIONAL).replace(" ", "\u00a0")


def check_birth_date(value: date | None) -> None:
    if value is None:
        return
    today = clock.today()
    oldest = date(today.year - MAX_AGE_YEARS, today.month, min(today.day, 28))
    if value > today or value < oldest:
        raise MemberError(MemberErrorCode.INVALID_BIRTH_DATE,
                          str(_l("Enter a real date of birth (not in the future, "
                                 "not more than 120 years ago).")), field="born_on")


def clean_value(attr: Attribute, value):
    """Validate and normalise one attribute value; '' and None mean "not given"."""
    name = attr.name
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if attr.kind == "text":
        value = " ".join(str(value).split())
        if attr.custom and not value.isprintable():
            raise MemberError(MemberErrorCode.INVALID_VALUE,
                              str(_l("Use letters, digits and punctuation only.")), field=name)
        if len(value) > attr.max_length:
            raise MemberError(MemberErrorCode.TOO_LONG,
                              str(_l("At most %(n)d characters.", n=attr.max_length)),
                              field=name)
        if name == "id_number" and not ID_NUMBER.match(value):
            raise MemberError(MemberErrorCode.INVALID_VALUE,
                              str(_l("Enter the ID number as printed (letters, digits "
                                     "and dashes).")), field=name)
        return value
    if attr.kind == "email":
        try:
            return validate_email(str(value).strip(), check_deliverability=False).normalized
        except EmailNotValidError:
            raise MemberError(MemberErrorCode.INVALID_EMAIL,
                              str(_l("Enter a valid email address.")), field=name) from None
    if attr.kind == "date":
        if not isinstance(value, date):
            try:
                value = date.fromisoformat(str(value))
            except ValueError:
                raise MemberError(MemberErrorCode.INVALID_VALUE,
                                  str(_l("Enter a date.")), field=name) from None
        if name == "born_on":
            check_birth_date(value)
        return value
    if attr.kind == "number":
        try:
            number = Decimal(str(value).strip().replace(",", ""))
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite() or abs(number) >= Decimal("1e15"):
            raise MemberError(MemberErrorCode.INVALID_VALUE, str(_l("Enter a number.")),
                              field=name)
        return format(number.normalize(), "f")  # "100", "12.5"; never "1E+2"
    if attr.kind == "choice":
        if value not in {g.value for g in Gender}:
            raise MemberError(MemberErrorCode.INVALID_VALUE,
                              str(_l("Choose one of the options.")), field=name)
        return str(value)
    raise AssertionError(attr.kind)


def clean_answers(answers: dict, required: set[str], allowed: dict[str, Attribute]) -> dict:
    """Clean attribute answers; every problem is reported at once, by field."""
    cleaned, errors = {}, {}
    for name, attr in allowed.items():
        try:
            value = clean_value(attr, answers.get(name))
        except MemberError as e:
            errors[name] = str(e)
            continue
        if value is None and name in required:
            errors[name] = str(_l("This field is required."))
        elif value is not None:
            cleaned[name] = value
    if errors:
        raise MemberError(MemberErrorCode.INVALID_VALUE,
                          str(_l("Please correct the marked fields.")), errors=errors)
    return cleaned
