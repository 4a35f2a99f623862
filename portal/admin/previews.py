""""Preview as…" from each configurable journey: a chosen member or a synthetic profile,
then that journey's member page, read-only under the preview banner.

A real member's preview reads their own data; a synthetic one is built per request in a
transaction that is never committed (portal/members/preview.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import abort, current_app, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from portal.admin.reading import FormReader
from portal.admin.views import MANAGERS, bp
from portal.benefits.models import BenefitPackage
from portal.campaigns.models import Activity
from portal.db import db
from portal.giftcards.models import GiftCardProduct
from portal.members import preview as previews
from portal.members import services as members
from portal.members.errors import MemberError, MemberErrorCode
from portal.members.models import RegistrationPage
from portal.wallet.models import TopupPlan
from portal.web.auth import current_staff, staff_required
from portal.web.forms import apply_error, shown_status
from portal.web.render import render


@dataclass(frozen=True)
class Journey:
    label: object                 # lazy text
    model: type | None
    endpoint: str                 # the member page
    admin_endpoint: str           # where the preview was started from
    id_arg: str | None = None
    key: str = "id"               # what the member page's URL takes: id, slug or code

    def member_url(self, obj) -> str:
        if obj is None or self.id_arg is None:
            return url_for(self.endpoint)
        return url_for(self.endpoint, **{self.id_arg: getattr(obj, self.key)})


JOURNEYS = {
    "page": Journey(_l("Registration page"), RegistrationPage, "members.register",
                    "admin.page_edit", "slug", "slug"),
    "activity": Journey(_l("Activity"), Activity, "campaigns.profile_gift",
                        "admin.activity_edit", "code", "code"),
    "package": Journey(_l("Paid package"), BenefitPackage, "packages.package",
                       "admin.paid_package_edit", "package_id"),
    # A plan's own page needs the member's card in its URL, and a synthetic card is made
    # afresh each request: the member's top-up page lists the plan with their cards.
    "topup": Journey(_l("Top-up plan"), TopupPlan, "wallet.topup_list", "admin.topup_edit"),
    "giftcard": Journey(_l("Gift card product"), GiftCardProduct, "giftcards.buy",
                        "admin.giftcard_edit", "product_id"),
    "student": Journey(_l("Student ID"), None, "students.verify", "admin.student_settings"),
}
ADMIN_ID_ARGS = {"page": "page_id", "activity": "activity_id", "package": "package_id",
                 "topup": "plan_id", "giftcard": "product_id"}


class PreviewForm(FlaskForm):
    who = RadioField(_l("Preview as"), default="member", choices=[
        SelectChoice("member", _l("A member")),
        SelectChoice("synthetic", _l("A synthetic profile"))])
    lookup = StringField(_l("Mobile or card number"), render_kw={"maxlength": 32,
                                                                 "autocomplete": "off"})
    # Checked by the service: a member preview leaves it empty.
    tier_id = SelectField(_l("Card plan and tier"), coerce=int, default=0, validate_choice=False)
    name = StringField(_l("Name shown"), render_kw={"maxlength": 60})
    born_on = DateField(_l("Birthday"), validators=[Optional()])
    prepaid = StringField(_l("Prepaid balance"), default="0",
                          render_kw={"inputmode": "decimal"})
    points = StringField(_l("Points"), default="0", render_kw={"inputmode": "numeric"})


def _journey_or_404(kind: str, target: int | None):
    journey = JOURNEYS.get(kind)
    if journey is None:
        abort(404)
    obj = None
    if journey.model is not None:
        obj = db.session.get(journey.model, target or 0)
        if obj is None:
            abort(404)
    return journey, obj


def _back_url(kind: str, target: int | None) -> str:
    journey = JOURNEYS[kind]
    if kind in ADMIN_ID_ARGS:
        return url_for(journey.admin_endpoint, **{ADMIN_ID_ARGS[kind]: target})
    return url_for(journey.admin_endpoint)


def _form() -> PreviewForm:
    form = PreviewForm()
    form.tier_id.choices = [SelectChoice(0, _("Choose…"))] + [
        SelectChoice(t.id, f"{p.name} · {t.name}")
        for p in members.plans(db.session) for t in p.tiers]
    return form


FIELD_OF = {"prepaid_minor": "prepaid"}


def _profile(form: PreviewForm) -> previews.Profile:
    """The synthetic profile the form describes, or every field error at once."""
    reader = FormReader(current_app.config["DEFAULT_CURRENCY"])
    values = {"tier_id": form.tier_id.data, "name": form.name.data,
              "born_on": form.born_on.data,
              "prepaid_minor": reader.money(form.prepaid.data, "prepaid_minor"),
              "points": reader.whole(form.points.data, "points")}
    try:
        profile = previews.check_profile(db.session, values)
    except MemberError as e:
        errors = {**e.details["errors"], **reader.errors}
    else:
        if not reader.errors:
            return profile
        errors = reader.errors
    raise MemberError(MemberErrorCode.INVALID_VALUE, _("Please correct the marked fields."),
                      errors={FIELD_OF.get(k, k): v for k, v in errors.items()})


@bp.route("/preview/<kind>/<int:target>", methods=["GET", "POST"])
@bp.route("/preview/<kind>", methods=["GET", "POST"], defaults={"target": None})
@staff_required(*MANAGERS)
def preview_as(kind: str, target: int | None):
    journey, obj = _journey_or_404(kind, target)
    form = _form()
    if form.validate_on_submit():
        staff = current_staff()
        member, profile = None, None
        try:
            if form.who.data == "synthetic":
                profile = _profile(form)
            else:
                member = previews.find_member(db.session, form.lookup.data)
                if member is None:
                    raise MemberError(MemberErrorCode.NOT_FOUND, _(
                        "No member has this mobile or card number."), field="lookup")
        except MemberError as e:
            apply_error(form, e)
            return render("admin/previews/start.html", form=form, journey=journey, obj=obj,
                          kind=kind, target=target, back=_back_url(kind, target), status=422)
        previews.start(db.session, operator_id=staff.id, journey=kind,
                       target=str(target) if target else None,
                       member_id=member.id if member else None, profile=profile)
        session.pop("preview_member_id", None)
        session.pop("preview_profile", None)
        if profile is not None:
            session["preview_profile"] = profile.as_dict()
        else:
            session["preview_member_id"] = member.id
        session["preview_return"] = _back_url(kind, target)
        flash(_("Previewing: nothing you do on these pages is saved."), "info")
        return redirect(journey.member_url(obj), 303)
    return render("admin/previews/start.html", form=form, journey=journey, obj=obj, kind=kind,
                  target=target, back=_back_url(kind, target), status=shown_status())


# Changing the language only touches the viewer's own cookie.
ALLOWED_IN_PREVIEW = {"members.set_locale"}


@bp.before_app_request
def _refuse_writes_while_previewing():
    """Every change on the member side is refused while staff preview, whatever the page
    (some pages check `is_previewing()` themselves; this holds for all of them)."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.blueprint in ("admin", "api") \
            or request.endpoint in ALLOWED_IN_PREVIEW:
        return
    if not ("preview_member_id" in session or "preview_profile" in session):
        return
    staff = current_staff()
    if staff is not None:
        abort(403, description="preview")
