"""Registration pages and their tracking links (owners and managers)."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms.fields.choices import SelectChoice

from portal.admin.forms import (
    AttributeForm,
    FieldAddForm,
    LinkForm,
    PageForm,
    RenameAttributeForm,
)
from portal.admin.views import MANAGERS, bp
from portal.db import db
from portal.members import services as members
from portal.members.attributes import ATTRIBUTES, MAX_CUSTOM_ATTRIBUTES
from portal.members.errors import MemberError
from portal.web.auth import current_staff, staff_required
from portal.web.forms import EmptyForm, apply_error, shown_status
from portal.web.render import render
from portal.web.uploads import UploadError, save_public_image


def _page_form(page=None) -> PageForm:
    form = PageForm(obj=page if request.method == "GET" else None)
    form.plan_id.choices = [SelectChoice(p.id, p.name) for p in members.plans(db.session)]
    return form


def _page_data(form: PageForm) -> dict:
    return {name: form[name].data for name in members.PAGE_FIELDS}


@bp.get("/pages")
@staff_required(*MANAGERS)
def page_list():
    return render("admin/pages/list.html", rows=members.page_list(db.session))


@bp.route("/pages/new", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def page_new():
    form = _page_form()
    if form.validate_on_submit():
        try:
            page = members.create_page(db.session, _page_data(form),
                                       operator_id=current_staff().id)
        except MemberError as e:
            apply_error(form, e)
            return render("admin/pages/new.html", form=form, status=422)
        flash(_("The page is created as a draft. Choose its fields, then publish it."),
              "success")
        return redirect(url_for("admin.page_edit", page_id=page.id), 303)
    return render("admin/pages/new.html", form=form, status=shown_status())


def _edit_context(page, form=None, field_form=None, link_form=None):
    used = {f.attribute for f in page.fields}
    known = members.attribute_catalogue(db.session)
    field_form = field_form or FieldAddForm()
    field_form.attribute.choices = [SelectChoice(n, a.label) for n, a in known.items()
                                    if n not in used]
    return {"page": page, "form": form or _page_form(page), "field_form": field_form,
            "link_form": link_form or LinkForm(), "action_form": EmptyForm(),
            "attributes": known,
            "funnels": members.link_funnels(db.session, page.id)}


def _load(page_id: int):
    page = members.page_for_edit(db.session, page_id)
    if page is None:
        abort(404)
    return page


@bp.route("/pages/<int:page_id>", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def page_edit(page_id: int):
    page = _load(page_id)
    form = _page_form(page)
    if form.validate_on_submit():
        images = {}
        try:
            for name, field in (("banner_path", form.banner), ("share_image_path",
                                                              form.share_image)):
                if field.data and getattr(field.data, "filename", ""):
                    images[name] = save_public_image(field.data)
        except UploadError as e:
            form[("banner" if "banner_path" not in images else "share_image")].errors = [str(e)]
            return render("admin/pages/edit.html", status=422, **_edit_context(page, form))
        try:
            members.update_page(db.session, page.id, _page_data(form),
                                operator_id=current_staff().id, **images)
        except MemberError as e:
            apply_error(form, e)
            return render("admin/pages/edit.html", status=422, **_edit_context(page, form))
        flash(_("The page is saved."), "success")
        return redirect(url_for("admin.page_edit", page_id=page.id), 303)
    return render("admin/pages/edit.html", status=shown_status(), **_edit_context(page, form))


@bp.post("/pages/<int:page_id>/publish")
@staff_required(*MANAGERS)
def page_publish(page_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    publish = request.form.get("publish") == "1"
    try:
        members.set_published(db.session, page_id, publish, operator_id=current_staff().id)
    except MemberError:
        abort(404)
    flash(_("The page is published.") if publish else _("The page is unpublished."),
          "success")
    return redirect(request.form.get("back") == "list" and url_for("admin.page_list")
                    or url_for("admin.page_edit", page_id=page_id), 303)


@bp.post("/pages/<int:page_id>/fields")
@staff_required(*MANAGERS)
def field_add(page_id: int):
    page = _load(page_id)
    form = FieldAddForm()
    form.attribute.choices = [SelectChoice(n, a.label)
                              for n, a in members.attribute_catalogue(db.session).items()]
    if not form.validate_on_submit():
        abort(400)
    try:
        members.add_field(db.session, page.id, form.attribute.data, form.required.data,
                          operator_id=current_staff().id)
    except MemberError as e:
        apply_error(form, e)
        return render("admin/pages/edit.html", block="fields", status=422,
                      **_edit_context(page, field_form=form))
    return redirect(url_for("admin.page_edit", page_id=page.id), 303)


@bp.post("/pages/<int:page_id>/fields/<attribute>")
@staff_required(*MANAGERS)
def field_change(page_id: int, attribute: str):
    if not EmptyForm().validate_on_submit():
        abort(400)
    action = request.form.get("action", "")
    changes = {"up": {"move": -1}, "down": {"move": 1}, "remove": {"remove": True},
               "required": {"required": True}, "optional": {"required": False}}
    if action not in changes:
        abort(400)
    try:
        members.change_field(db.session, page_id, attribute, operator_id=current_staff().id,
                             **changes[action])
    except MemberError:
        abort(404)
    return redirect(url_for("admin.page_edit", page_id=page_id), 303)


@bp.post("/pages/<int:page_id>/fields-order")
@staff_required(*MANAGERS)
def field_order(page_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        members.reorder_fields(db.session, page_id, request.form.getlist("order"),
                               operator_id=current_staff().id)
    except MemberError as e:
        flash(str(e), "error")
    return redirect(url_for("admin.page_edit", page_id=page_id), 303)


@bp.post("/pages/<int:page_id>/links")
@staff_required(*MANAGERS)
def link_add(page_id: int):
    page = _load(page_id)
    form = LinkForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        members.create_link(db.session, page.id, form.data, operator_id=current_staff().id)
    except MemberError as e:
        apply_error(form, e)
        return render("admin/pages/edit.html", block="links", status=422,
                      **_edit_context(page, link_form=form))
    flash(_("The tracking link is ready."), "success")
    return redirect(url_for("admin.page_edit", page_id=page.id), 303)


@bp.route("/links/<int:link_id>", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def link_edit(link_id: int):
    link = members.link_by_id(db.session, link_id)
    if link is None:
        abort(404)
    form = LinkForm(obj=link if request.method == "GET" else None)
    if form.validate_on_submit():
        try:
            members.update_link(db.session, link.id, form.data, operator_id=current_staff().id)
        except MemberError as e:
            apply_error(form, e)
            return render("admin/pages/link.html", link=link, form=form, status=422)
        flash(_("The tracking link is saved."), "success")
        return redirect(url_for("admin.page_edit", page_id=link.page_id), 303)
    return render("admin/pages/link.html", link=link, form=form, status=shown_status())


@bp.get("/links/<int:link_id>/print")
@staff_required(*MANAGERS)
def link_print(link_id: int):
    link = members.link_by_id(db.session, link_id)
    if link is None:
        abort(404)
    return render("admin/pages/link_print.html", link=link)


# --- custom member attributes -----------------------------------------------------------

KIND_LABELS = {"text": _l("Text"), "number": _l("Number"), "date": _l("Date")}
SYSTEM_KIND_LABELS = {**KIND_LABELS, "email": _l("Email"), "choice": _l("Choice"),
                      "mobile": _l("Mobile number")}


def _attributes_page(form, status=200):
    return render("admin/attributes/list.html", form=form, status=status,
                  custom=members.custom_attributes(db.session), presets=ATTRIBUTES,
                  kind_labels=KIND_LABELS, system_kind_labels=SYSTEM_KIND_LABELS,
                  max_custom=MAX_CUSTOM_ATTRIBUTES)


@bp.route("/attributes", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def attribute_list():
    form = AttributeForm()
    if form.validate_on_submit():
        try:
            attribute = members.create_custom_attribute(
                db.session, name=form.name.data, key=form.key.data, kind=form.kind.data,
                operator_id=current_staff().id)
        except MemberError as e:
            apply_error(form, e)
            return _attributes_page(form, 422)
        flash(_("“%(name)s” can now be added to registration forms.", name=attribute.name),
              "success")
        return redirect(url_for("admin.attribute_list"), 303)
    return _attributes_page(form, shown_status())


@bp.post("/attributes/<int:attribute_id>")
@staff_required(*MANAGERS)
def attribute_rename(attribute_id: int):
    form = RenameAttributeForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        members.rename_custom_attribute(db.session, attribute_id, form.name.data,
                                        operator_id=current_staff().id)
    except MemberError as e:
        flash(next(iter(e.details.get("errors", {}).values()), str(e)), "error")
    return redirect(url_for("admin.attribute_list"), 303)


@bp.post("/attributes/<int:attribute_id>/delete")
@staff_required(*MANAGERS)
def attribute_delete(attribute_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        members.delete_custom_attribute(db.session, attribute_id,
                                        operator_id=current_staff().id)
    except MemberError as e:
        flash(str(e), "error")
    else:
        flash(_("The attribute is deleted."), "success")
    return redirect(url_for("admin.attribute_list"), 303)
