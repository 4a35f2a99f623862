from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from portal.members.attributes import ATTRIBUTES
from portal.members.forms import MOBILE_KW, attribute_field


class SignInForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(_l("Enter your email."))],
                       render_kw={"autocomplete": "username", "required": True})
    password = PasswordField(_l("Password"),
                             validators=[DataRequired(_l("Enter your password."))],
                             render_kw={"autocomplete": "current-password", "required": True})


class CustomerForm(FlaskForm):
    kind = RadioField(_l("Add as"), choices=[SelectChoice("member", _l("Member (issue a card)")),
                               SelectChoice("customer", _l("Customer (no card yet)"))],
                      default="member")
    plan_id = SelectField(_l("Card plan"), coerce=int, choices=[], validate_choice=False)
    store_id = SelectField(_l("Store"), coerce=int, choices=[])
    mobile = StringField(_l("Mobile number"), render_kw=MOBILE_KW)
    full_name = attribute_field(ATTRIBUTES["full_name"], required=True)
    email = attribute_field(ATTRIBUTES["email"])
    born_on = attribute_field(ATTRIBUTES["born_on"])
    gender = attribute_field(ATTRIBUTES["gender"])
    address = attribute_field(ATTRIBUTES["address"])
    id_number = attribute_field(ATTRIBUTES["id_number"])


class PageForm(FlaskForm):
    name = StringField(_l("Name (for staff)"), validators=[
        DataRequired(_l("Give the page a name.")), Length(max=120)],
        render_kw={"required": True, "maxlength": 120})
    title = StringField(_l("Page title (members see it)"), validators=[
        DataRequired(_l("Give the page a title.")), Length(max=120)],
        render_kw={"required": True, "maxlength": 120})
    slug = StringField(_l("Web address"), render_kw={"required": True, "maxlength": 64,
                                                 "pattern": "[a-z0-9][a-z0-9-]+[a-z0-9]"})
    intro = TextAreaField(_l("Introduction"), validators=[Length(max=2000)],
                          render_kw={"rows": 3})
    plan_id = SelectField(_l("Card plan for new members"), coerce=int, choices=[],
                          validate_choice=False)
    after_submit_url = StringField(_l("After sign-up, go to"), validators=[Length(max=500)])
    existing_member_url = StringField(_l("Members who open the page go to"),
                                      validators=[Length(max=500)])
    share_title = StringField(_l("Sharing title"), validators=[Length(max=120)])
    share_summary = StringField(_l("Sharing summary"), validators=[Length(max=255)])
    banner = FileField(_l("Banner image"), render_kw={"accept": "image/png,image/jpeg"})
    share_image = FileField(_l("Sharing cover image"),
                            render_kw={"accept": "image/png,image/jpeg"})


class FieldAddForm(FlaskForm):
    attribute = SelectField(_l("Member attribute"), choices=[])
    required = BooleanField(_l("Required"))


class AttributeForm(FlaskForm):
    name = StringField(_l("Attribute name"), render_kw={"maxlength": 60, "required": True})
    key = StringField(_l("ID"), render_kw={"maxlength": 32, "required": True,
                                           "pattern": "[a-z][a-z0-9_]{1,31}"})
    kind = SelectField(_l("Type"), choices=[SelectChoice("text", _l("Text")),
                                            SelectChoice("number", _l("Number")),
                                            SelectChoice("date", _l("Date"))],
                       validate_choice=False)


class RenameAttributeForm(FlaskForm):
    name = StringField(_l("Attribute name"), render_kw={"maxlength": 60, "required": True})


class LinkForm(FlaskForm):
    campaign = StringField(_l("Campaign"), render_kw={"maxlength": 64})
    source = StringField(_l("Source"), render_kw={"maxlength": 64})
    content = StringField(_l("Content"), render_kw={"maxlength": 64})
