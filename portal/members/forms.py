from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import Field, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from portal.members.attributes import ATTRIBUTES, GENDER_LABELS

MOBILE_KW = {"type": "tel", "autocomplete": "tel", "inputmode": "tel"}


class MobileForm(FlaskForm):
    mobile = StringField(_l("Mobile number"), render_kw=MOBILE_KW)


class CodeForm(FlaskForm):
    code = StringField(_l("6-digit code"), render_kw={
        "inputmode": "numeric", "autocomplete": "one-time-code", "pattern": "[0-9]{6}",
        "maxlength": 6})


def attribute_field(name: str, required: bool = False) -> Field:
    attr = ATTRIBUTES[name]
    kw = {"required": True} if required else {}
    if attr.kind == "date":
        return StringField(attr.label, render_kw={"type": "date", **kw})
    if attr.kind == "email":
        return StringField(attr.label, render_kw={"type": "email", "autocomplete": "email",
                                                   **kw})
    if attr.kind == "choice":
        # The service checks the value and says so next to the field.
        return SelectField(attr.label, choices=[SelectChoice("", _l("Choose…"))] + [
            SelectChoice(k.value, v) for k, v in GENDER_LABELS.items()], render_kw=kw,
            validate_choice=False)
    if name == "address":
        return TextAreaField(attr.label, render_kw={"rows": 2, "autocomplete":
                                                    "street-address", **kw})
    autocomplete = {"full_name": "name"}.get(name, "off")
    return StringField(attr.label, render_kw={"autocomplete": autocomplete,
                                              "maxlength": attr.max_length, **kw})


def registration_form(fields) -> FlaskForm:
    """The form a registration page asks for: mobile first, then its fields in order."""

    class RegistrationForm(FlaskForm):
        mobile = StringField(_l("Mobile number"), render_kw={**MOBILE_KW, "required": True})

    for field in fields:
        setattr(RegistrationForm, field.attribute, attribute_field(field.attribute,
                                                                   field.required))
    return RegistrationForm()


class ProfileForm(FlaskForm):
    full_name = attribute_field("full_name")
    email = attribute_field("email")
    born_on = attribute_field("born_on")
    gender = attribute_field("gender")
    address = attribute_field("address")
    id_number = StringField(_l("ID number"), render_kw={"autocomplete": "off",
                                                         "maxlength": 32})
