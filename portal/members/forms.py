from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import Field, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from portal.members.attributes import GENDER_LABELS, Attribute

MOBILE_KW = {"type": "tel", "autocomplete": "tel", "inputmode": "tel"}


class MobileForm(FlaskForm):
    mobile = StringField(_l("Mobile number"), render_kw=MOBILE_KW)


class CodeForm(FlaskForm):
    code = StringField(_l("6-digit code"), render_kw={
        "inputmode": "numeric", "autocomplete": "one-time-code", "pattern": "[0-9]{6}",
        "maxlength": 6})


def attribute_field(attr: Attribute, required: bool = False) -> Field:
    kw = {"required": True} if required else {}
    if attr.kind == "date":
        return StringField(attr.label, render_kw={"type": "date", **kw})
    if attr.kind == "number":
        return StringField(attr.label, render_kw={"inputmode": "decimal", "maxlength": 24,
                                                  **kw})
    if attr.kind == "email":
        return StringField(attr.label, render_kw={"type": "email", "autocomplete": "email",
                                                   **kw})
    if attr.kind == "choice":
        # The service checks the value and says so next to the field.
        return SelectField(attr.label, choices=[SelectChoice("", _l("Choose…"))] + [
            SelectChoice(k.value, v) for k, v in GENDER_LABELS.items()], render_kw=kw,
            validate_choice=False)
    if attr.name == "address":
        return TextAreaField(attr.label, render_kw={"rows": 2, "autocomplete":
                                                    "street-address", **kw})
    autocomplete = {"full_name": "name"}.get(attr.name, "off")
    return StringField(attr.label, render_kw={"autocomplete": autocomplete,
                                              "maxlength": attr.max_length, **kw})


def registration_form(fields, known: dict[str, Attribute]) -> FlaskForm:
    """The form a registration page asks for: mobile first, then its fields in order."""

    class RegistrationForm(FlaskForm):
        mobile = StringField(_l("Mobile number"), render_kw={**MOBILE_KW, "required": True})

    for field in fields:
        if field.attribute in known:
            setattr(RegistrationForm, field.attribute,
                    attribute_field(known[field.attribute], field.required))
    return RegistrationForm()


def profile_form(editable: dict[str, Attribute], **kwargs) -> FlaskForm:
    """The member's own details: the presets, then the merchant's custom attributes."""

    class ProfileForm(FlaskForm):
        pass

    for name, attr in editable.items():
        if name == "id_number":
            field = StringField(_l("ID number"), render_kw={"autocomplete": "off",
                                                             "maxlength": 32})
        else:
            field = attribute_field(attr)
        setattr(ProfileForm, name, field)
    return ProfileForm(**kwargs)
