"""Member segments (owners and managers): rules with a live count, bulk tagging."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import RadioField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import CheckboxInput, ListWidget

from portal.admin.views import MANAGERS, bp
from portal.db import db
from portal.members import segments
from portal.members import services as members
from portal.members.errors import MemberError, MemberErrorCode
from portal.members.models import Tag
from portal.web.auth import current_staff, staff_required
from portal.web.forms import EmptyForm, apply_error, shown_status
from portal.web.render import render


def _checkboxes(label):
    return SelectMultipleField(label, choices=[], validate_choice=False,
                               widget=ListWidget(prefix_label=False),
                               option_widget=CheckboxInput())


class SegmentForm(FlaskForm):
    name = StringField(_l("Segment name"), render_kw={"maxlength": segments.NAME_MAX,
                                                      "required": True})
    match = RadioField(_l("Members who match"), default="all", validate_choice=False,
                       choices=[SelectChoice("all", _l("All of the rules below")),
                                SelectChoice("any", _l("Any of the rules below"))])
    plan = _checkboxes(_l("Card plan"))
    tier = _checkboxes(_l("Tier"))
    tag = _checkboxes(_l("Tags (any of them)"))
    days_since_purchase_op = SelectField(
        _l("Last purchase (or joining)"), default="gte", validate_choice=False,
        choices=[SelectChoice("gte", _l("At least this many days ago")),
                 SelectChoice("lte", _l("At most this many days ago"))])
    days_since_purchase = StringField(_l("Days"), render_kw={"inputmode": "numeric"})
    birthday_month = _checkboxes(_l("Birthday month"))
    points_min = StringField(_l("At least"), render_kw={"inputmode": "numeric"})
    points_max = StringField(_l("At most"), render_kw={"inputmode": "numeric"})
    enroll_source = _checkboxes(_l("Came from (source)"))
    custom_key = SelectField(_l("Your attribute"), choices=[], validate_choice=False)
    custom_op = SelectField(_l("Compare"), default="eq", validate_choice=False, choices=[
        SelectChoice("eq", _l("Text is")), SelectChoice("contains", _l("Text contains")),
        SelectChoice("min", _l("Number is at least")),
        SelectChoice("max", _l("Number is at most")),
        SelectChoice("before", _l("Date is before")),
        SelectChoice("after", _l("Date is after"))])
    custom_value = StringField(_l("Value"), render_kw={"maxlength": segments.CUSTOM_TEXT_MAX})


class TagForm(FlaskForm):
    tag = StringField(_l("Tag"), render_kw={"maxlength": members.TAG_MAX, "required": True,
                                             "autocomplete": "off"})


# The service names errors by rule; the form by input.
FORM_NAMES = {"points": "points_max", "custom": "custom_value"}


def _form(segment=None, *, stored: bool = False) -> SegmentForm:
    """The segment form: as posted, or (GET, or `stored`) as the segment is saved."""
    form = SegmentForm(formdata=None) if stored else SegmentForm()
    plans = members.plans(db.session)
    form.plan.choices = [SelectChoice(str(p.id), p.name) for p in plans]
    form.tier.choices = [SelectChoice(str(t.id), f"{t.name} ({p.name})" if len(plans) > 1
                                      else t.name) for p in plans for t in p.tiers]
    form.tag.choices = [SelectChoice(str(i), n) for i, n in db.session.execute(
        select(Tag.id, Tag.name).order_by(Tag.name))]
    form.birthday_month.choices = [SelectChoice(str(n), name)
                                   for n, name in segments.month_names().items()]
    form.custom_key.choices = [SelectChoice("", _("Choose…"))] + [
        SelectChoice(a.key, a.name) for a in members.custom_attributes(db.session)]
    sources = set(members.tracking_values(db.session)["source"])
    if segment is not None and (stored or request.method == "GET"):
        _fill(form, segment)
    sources.update(form.enroll_source.data or [])
    form.enroll_source.choices = [SelectChoice(s, s) for s in sorted(sources)]
    return form


def _fill(form: SegmentForm, segment) -> None:
    form.name.data, form.match.data = segment.name, segment.match
    for rule in segment.rules:
        field, value = rule["field"], rule["value"]
        if field == "days_since_purchase":
            form.days_since_purchase_op.data = rule["op"]
            form.days_since_purchase.data = str(value)
        elif field == "custom":
            form.custom_key.data = value["key"]
            if rule["op"] == "between":
                form.custom_op.data = "min" if value.get("min") is not None else "max"
                form.custom_value.data = str(value.get(form.custom_op.data))
            else:
                form.custom_op.data = rule["op"]
                form.custom_value.data = value.get("text") or value.get("day") or ""
        elif field == "points":
            form.points_min.data = "" if value.get("min") is None else str(value["min"])
            form.points_max.data = "" if value.get("max") is None else str(value["max"])
        else:
            form[field].data = [str(v) for v in value]


def _rules(form: SegmentForm) -> tuple[list[dict], dict[str, str]]:
    """The filled-in parts of the form as rules; an empty part is not a rule."""
    errors: dict[str, str] = {}
    rules: list[dict] = []

    def whole(name):
        raw = (form[name].data or "").strip().replace(",", "")
        if not raw:
            return None
        if not raw.isdecimal():
            errors[name] = _("Enter a whole number (0 or more).")
            return None
        return int(raw)

    for name in ("plan", "tier", "tag", "birthday_month"):
        raw = form[name].data or []
        if any(not str(v).isdecimal() for v in raw):
            errors[name] = _("Choose from the list.")
        elif raw:
            rules.append({"field": name, "op": "in", "value": [int(v) for v in raw]})
    days = whole("days_since_purchase")
    if days is not None:
        rules.append({"field": "days_since_purchase", "op": form.days_since_purchase_op.data,
                      "value": days})
    low, high = whole("points_min"), whole("points_max")
    if low is not None or high is not None:
        rules.append({"field": "points", "op": "between", "value": {"min": low, "max": high}})
    if sources := [s for s in (form.enroll_source.data or []) if s.strip()]:
        rules.append({"field": "enroll_source", "op": "in", "value": sources})
    if form.custom_key.data:
        rule = _custom_rule(form, errors)
        if rule is not None:
            rules.append(rule)
    return rules, errors


# What each kind of attribute can be compared by (the form's "compare" choices).
CUSTOM_FORM_OPS = {"text": ("eq", "contains"), "number": ("min", "max"),
                   "date": ("before", "after")}


def _custom_rule(form: SegmentForm, errors: dict) -> dict | None:
    from decimal import Decimal, InvalidOperation

    kinds = {a.key: a.kind for a in members.custom_attributes(db.session)}
    key, op = form.custom_key.data, form.custom_op.data
    raw = (form.custom_value.data or "").strip()
    if key not in kinds:
        errors["custom_key"] = _("Choose one of your attributes.")
        return None
    kind = kinds[key]
    if op not in CUSTOM_FORM_OPS[kind]:
        errors["custom_op"] = _("Choose how to compare.")
        return None
    if not raw:
        errors["custom_value"] = _("Enter the value to compare with.")
        return None
    value: dict = {"key": key, "kind": kind}
    if kind == "text":
        value["text"] = raw
    elif kind == "date":
        value["day"] = raw
    else:
        try:
            number = Decimal(raw.replace(",", ""))
        except InvalidOperation:
            errors["custom_value"] = _("Enter a number.")
            return None
        value[op] = int(number) if number == number.to_integral_value() else float(number)
        value["min" if op == "max" else "max"] = None
        op = "between"
    return {"field": "custom", "op": op, "value": value}


def _refuse(form: SegmentForm, errors: dict[str, str]) -> None:
    apply_error(form, MemberError(MemberErrorCode.INVALID_VALUE, "",
                                  errors={FORM_NAMES.get(k, k): v for k, v in errors.items()}))


def _live(match: str, rules: list, errors: dict | None = None) -> dict:
    """What the live count shows: a number, or why there is none."""
    if errors or (rules and segments.validate(match, rules)):
        return {"count": None, "message": _("Correct the marked rules to see a count.")}
    if not rules:
        return {"count": None, "message": _("Add a rule to see how many members match.")}
    return {"count": segments.count(db.session, match, rules), "message": None}


def _edit_page(form, segment=None, *, live=None, tag_form=None, status=200):
    if live is None:
        live = ({"count": segments.count(db.session, segment.match, segment.rules),
                 "message": None} if segment is not None else _live(form.match.data, []))
    return render("admin/segments/edit.html", form=form, segment=segment, live=live,
                  tag_form=tag_form or TagForm(formdata=None), delete_form=EmptyForm(),
                  status=status)


@bp.get("/segments")
@staff_required(*MANAGERS)
def segment_list():
    rows = segments.segment_list(db.session)
    # One statement counts every segment (one pass over members), not one per segment.
    return render("admin/segments/list.html", rows=rows,
                  counts=segments.counts(db.session, rows),
                  summaries=segments.describe(db.session, rows))


@bp.route("/segments/new", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def segment_new():
    form = _form()
    if form.validate_on_submit():
        rules, errors = _rules(form)
        if not errors:
            try:
                segment = segments.create_segment(
                    db.session, name=form.name.data, match=form.match.data, rules=rules,
                    operator_id=current_staff().id)
            except MemberError as e:
                errors = e.details.get("errors", {})
            else:
                flash(_("The segment “%(name)s” is saved.", name=segment.name), "success")
                return redirect(url_for("admin.segment_edit", segment_id=segment.id), 303)
        _refuse(form, errors)
        return _edit_page(form, live=_live(form.match.data, rules, errors), status=422)
    return _edit_page(form, status=shown_status())


@bp.route("/segments/<int:segment_id>", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def segment_edit(segment_id: int):
    segment = segments.get(db.session, segment_id)
    if segment is None:
        abort(404)
    form = _form(segment)
    if form.validate_on_submit():
        rules, errors = _rules(form)
        if not errors:
            try:
                segments.update_segment(db.session, segment_id, name=form.name.data,
                                        match=form.match.data, rules=rules,
                                        operator_id=current_staff().id)
            except MemberError as e:
                errors = e.details.get("errors", {})
            else:
                flash(_("The segment is saved."), "success")
                return redirect(url_for("admin.segment_edit", segment_id=segment_id), 303)
        _refuse(form, errors)
        return _edit_page(form, segment, live=_live(form.match.data, rules, errors),
                          status=422)
    return _edit_page(form, segment, status=shown_status())


@bp.post("/segments/count")
@staff_required(*MANAGERS)
def segment_count():
    """The live count while editing: HTMX gets the count element, a plain post the page."""
    segment = None
    if (raw_id := request.args.get("segment_id", "")).isdecimal():
        segment = segments.get(db.session, int(raw_id))
    form = _form(segment)
    if not form.validate_on_submit():
        abort(400)
    rules, errors = _rules(form)
    if errors:
        _refuse(form, errors)
    return _edit_page(form, segment, live=_live(form.match.data, rules, errors))


@bp.post("/segments/<int:segment_id>/tag")
@staff_required(*MANAGERS)
def segment_tag(segment_id: int):
    segment = segments.get(db.session, segment_id)
    if segment is None:
        abort(404)
    tag_form = TagForm()
    if not tag_form.validate_on_submit():
        abort(400)
    try:
        added = segments.tag_segment(db.session, segment_id, tag_form.tag.data,
                                     current_staff().id)
    except MemberError as e:
        apply_error(tag_form, e)
        return _edit_page(_form(segment, stored=True), segment, tag_form=tag_form,
                          status=422)
    name = " ".join(tag_form.tag.data.split())
    flash(ngettext("%(num)d member now has the tag “%(tag)s”.",
                   "%(num)d members now have the tag “%(tag)s”.", added, tag=name)
          if added else _("Every member of the segment already has the tag “%(tag)s”.",
                          tag=name), "success")
    return redirect(url_for("admin.segment_edit", segment_id=segment_id), 303)


@bp.post("/segments/<int:segment_id>/delete")
@staff_required(*MANAGERS)
def segment_delete(segment_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        segments.delete_segment(db.session, segment_id, operator_id=current_staff().id)
    except MemberError as e:
        if e.code == MemberErrorCode.NOT_FOUND:
            abort(404)
        flash(str(e), "error")
        return redirect(url_for("admin.segment_edit", segment_id=segment_id), 303)
    flash(_("The segment is deleted. Its members and their tags are unchanged."), "success")
    return redirect(url_for("admin.segment_list"), 303)
