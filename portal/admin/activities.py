"""Marketing activities in the merchant area: the filtered list, create and edit (profile
completion gift, re-engagement gift), pause / resume / archive, performance."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from portal import clock
from portal.admin.forms import ActivityForm
from portal.admin.views import MANAGERS, bp
from portal.campaigns import manage
from portal.campaigns.errors import CampaignError
from portal.campaigns.models import ActivityKind
from portal.db import db
from portal.members import services as members
from portal.members.attributes import ATTRIBUTES
from portal.members.models import Segment, Tag
from portal.web.auth import current_staff, staff_required
from portal.web.forms import EmptyForm, apply_error, shown_status
from portal.web.render import render

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
GIFT_FIELDS = ("offer", "quantity", "delay", "delay_amount", "validity", "valid_days",
               "valid_from", "valid_until", "title")


def kind_label(kind: str) -> str:
    return {ActivityKind.PROFILE_COMPLETION: _("Profile completion gift"),
            ActivityKind.REENGAGEMENT: _("Re-engagement gift")}.get(kind, kind)


def state_label(state: str) -> str:
    return {"draft": _("Draft"), "scheduled": _("Scheduled"), "active": _("Active"),
            "paused": _("Paused"), "ended": _("Ended"), "archived": _("Archived")}[state]


@bp.app_context_processor
def _activity_labels():
    return {"activity_kind_label": kind_label, "activity_state_label": state_label}


@bp.get("/activities")
@staff_required(*MANAGERS)
def activity_list():
    kind = request.args.get("kind", "")
    state = request.args.get("state", "")
    rows = manage.activity_list(db.session, kind or None, state or None)
    return render("admin/activities/list.html", block="results", rows=rows, kind=kind,
                  state=state, kinds=list(ActivityKind), states=manage.STATES)


# --- the form ------------------------------------------------------------------------------

def _local(value: datetime | None) -> str:
    return clock.local(value).strftime(LOCAL_FORMAT) if value else ""


def _parse_moment(raw: str | None) -> datetime | None:
    """A datetime-local value, read in the merchant's time zone."""
    naive = datetime.strptime((raw or "").strip(), LOCAL_FORMAT)
    return naive.replace(tzinfo=clock.timezone())


def _whole(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    if not raw.lstrip("-").isdecimal():
        raise ValueError(raw)
    return int(raw)


def _gift_rows(form_data) -> tuple[list[dict], dict[str, str], list[dict]]:
    """The gift rows the merchant filled in (an empty offer skips a row): parsed gifts,
    errors keyed like the service's (`gift-<i>-<field>`), and the rows as typed."""
    gifts, errors, typed = [], {}, []
    for i in range(manage.MAX_GIFTS):
        raw = {name: form_data.get(f"gift-{i}-{name}", "") for name in GIFT_FIELDS}
        if not raw["offer"]:
            continue
        n = len(gifts)
        typed.append(raw)
        gift = {"delay": raw["delay"] or "instant", "validity": raw["validity"] or "template"}
        kind, _sep, ident = raw["offer"].partition(":")
        if kind in ("t", "p") and ident.isdecimal():
            gift["template_id" if kind == "t" else "package_id"] = int(ident)
        else:
            errors[f"gift-{n}-offer"] = _("Choose a coupon or a package.")
        for name in ("quantity", "delay_amount", "valid_days"):
            try:
                gift[name] = _whole(raw[name])
            except ValueError:
                errors[f"gift-{n}-{name}"] = _("Enter a whole number.")
        for name in ("valid_from", "valid_until"):
            if raw[name]:
                try:
                    day = date.fromisoformat(raw[name])
                    gift[name] = clock.start_of_local_day(day) if name == "valid_from" \
                        else clock.start_of_local_day(day.fromordinal(day.toordinal() + 1))
                except ValueError:
                    errors[f"gift-{n}-{name}"] = _("Enter a date.")
        gifts.append(gift)
    return gifts, errors, typed


def _typed_gifts(activity) -> list[dict]:
    """An activity's gifts as the form shows them."""
    rows = []
    titles = manage.offer_titles(db.session, [activity])
    for g in activity.gifts:
        until = clock.local(g.valid_until).date().fromordinal(
            clock.local(g.valid_until).date().toordinal() - 1) if g.valid_until else None
        rows.append({"offer": f"t:{g.template_id}" if g.template_id else f"p:{g.package_id}",
                     "quantity": str(g.quantity), "delay": g.delay,
                     "delay_amount": str(g.delay_amount or ""), "validity": g.validity,
                     "valid_days": str(g.valid_days or ""),
                     "valid_from": clock.local(g.valid_from).date().isoformat()
                     if g.valid_from else "",
                     "valid_until": until.isoformat() if until else "",
                     "title": titles.get(g.id, "")})
    return rows


def _choices(form: ActivityForm) -> None:
    plans = members.plans(db.session)
    labels = {n: a.label for n, a in ATTRIBUTES.items()}
    labels["mobile"] = _("Mobile number (verified by a code)")
    form.required_fields.choices = [SelectChoice(n, labels[n]) for n in manage.PROFILE_FIELDS]
    form.plan_ids.choices = [SelectChoice(str(p.id), p.name) for p in plans]
    form.tier_ids.choices = [SelectChoice(str(t.id), f"{p.name} · {t.name}")
                             for p in plans for t in p.tiers]
    form.segment_ids.choices = [SelectChoice(str(i), n) for i, n in db.session.execute(
        select(Segment.id, Segment.name).order_by(Segment.name))]
    form.tag_ids.choices = [SelectChoice(str(i), n) for i, n in db.session.execute(
        select(Tag.id, Tag.name).order_by(Tag.name))]


def _input(form: ActivityForm) -> manage.ActivityInput:
    data = manage.ActivityInput(name=form.name.data or "", code=form.code.data or "",
                                description=form.description.data or "",
                                required_fields=list(form.required_fields.data or []),
                                notify=bool(form.notify.data))
    for name in ("starts_at", "ends_at"):
        try:
            setattr(data, name, _parse_moment(form[name].data))
        except ValueError:
            data.errors[name] = _("Enter a date and time.")
    for name in ("plan_ids", "tier_ids", "segment_ids", "tag_ids"):
        setattr(data, name, [int(v) for v in form[name].data or [] if str(v).isdecimal()])
    for name in ("points", "lapse_days"):
        try:
            setattr(data, name, _whole(form[name].data))
        except ValueError:
            data.errors[name] = _("Enter a whole number.")
    data.points = data.points or 0
    data.gifts, gift_errors, _typed = _gift_rows(request.form)
    data.errors.update(gift_errors)
    return data


def _fill(form: ActivityForm, a) -> None:
    form.name.data, form.code.data, form.description.data = a.name, a.code, a.description
    form.starts_at.data, form.ends_at.data = _local(a.starts_at), _local(a.ends_at)
    form.required_fields.data = list(a.required_fields)
    for name in ("plan_ids", "tier_ids", "segment_ids", "tag_ids"):
        form[name].data = [str(v) for v in getattr(a, name)]
    form.points.data = str(a.points)
    form.lapse_days.data = "" if a.lapse_days is None else str(a.lapse_days)
    form.notify.data = a.notify


def _page(form, kind, activity=None, gifts=None, status=200, errors=None):
    templates, packages = manage.offers(db.session)
    gift_rows = list(gifts if gifts is not None else
                     (_typed_gifts(activity) if activity else []))
    locked = activity is not None and manage.started(activity)
    # Room for one more gift (at least two rows), unless the gifts are locked.
    wanted = len(gift_rows) if locked else min(manage.MAX_GIFTS, max(2, len(gift_rows) + 1))
    gift_rows += [dict.fromkeys(GIFT_FIELDS, "") for _ in range(wanted - len(gift_rows))]
    offer_values = {f"t:{t.id}" for t in templates} | {f"p:{p.id}" for p in packages}
    return render("admin/activities/edit.html", form=form, kind=kind, activity=activity,
                  offer_values=offer_values,
                  gift_rows=gift_rows, gift_errors=errors or {}, templates=templates,
                  packages=packages, status_form=EmptyForm(),
                  locked=locked,
                  editable=manage.EDITABLE_WHEN_STARTED, status=status)


def _refused(form, kind, e: CampaignError, activity=None):
    errors = e.details.get("errors", {})
    apply_error(form, e)
    if not errors:
        form.form_errors.append(str(e))
    if "gifts" in errors:
        form.form_errors.append(errors["gifts"])
    _typed = _gift_rows(request.form)[2]
    return _page(form, kind, activity, gifts=_typed, status=422,
                 errors={k: v for k, v in errors.items() if k.startswith("gift-")})


@bp.route("/activities/new/<kind>", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def activity_new(kind: str):
    if kind not in set(ActivityKind):
        abort(404)
    form = ActivityForm()
    _choices(form)
    if request.method == "GET":
        now = clock.local().replace(second=0, microsecond=0)
        form.starts_at.data = now.strftime(LOCAL_FORMAT)
        form.ends_at.data = (now + timedelta(days=365)).strftime(LOCAL_FORMAT)
    if form.validate_on_submit():
        try:
            activity = manage.create(db.session, kind, _input(form),
                                     operator_id=current_staff().id,
                                     launch=request.form.get("action") == "launch")
        except CampaignError as e:
            return _refused(form, kind, e)
        flash(_("The activity is launched.") if activity.status == "active"
              else _("The activity is saved as a draft."), "success")
        return redirect(url_for("admin.activity_edit", activity_id=activity.id), 303)
    return _page(form, kind, status=shown_status())


@bp.route("/activities/<int:activity_id>", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def activity_edit(activity_id: int):
    activity = manage.get(db.session, activity_id)
    if activity is None:
        abort(404)
    form = ActivityForm()
    _choices(form)
    if request.method == "GET":
        _fill(form, activity)
    if form.validate_on_submit():
        try:
            manage.update(db.session, activity_id, _input(form),
                          operator_id=current_staff().id)
        except CampaignError as e:
            db.session.rollback()
            return _refused(form, activity.kind, e, manage.get(db.session, activity_id))
        flash(_("The activity is saved."), "success")
        return redirect(url_for("admin.activity_edit", activity_id=activity_id), 303)
    return _page(form, activity.kind, activity, status=shown_status())


@bp.post("/activities/<int:activity_id>/status")
@staff_required(*MANAGERS)
def activity_status(activity_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    action = request.form.get("action", "")
    try:
        manage.set_status(db.session, activity_id, action, operator_id=current_staff().id)
    except CampaignError as e:
        flash(str(e), "error")
    else:
        flash({"launch": _("The activity is launched."), "pause": _("The activity is paused."),
               "resume": _("The activity runs again."),
               "archive": _("The activity is archived.")}[action], "success")
    return redirect(url_for("admin.activity_edit", activity_id=activity_id), 303)


@bp.get("/activities/<int:activity_id>/performance")
@staff_required(*MANAGERS)
def activity_performance(activity_id: int):
    activity = manage.get(db.session, activity_id)
    if activity is None:
        abort(404)
    return render("admin/activities/performance.html", activity=activity,
                  figures=manage.performance(db.session, activity),
                  titles=manage.offer_titles(db.session, [activity]))
