"""Member messages in the merchant area: which kinds go out, by e-mail too, and how many
days ahead members hear of expiring points."""
from __future__ import annotations

import re
from datetime import date

from flask import abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _

from portal import clock
from portal.admin.views import MANAGERS, bp
from portal.db import db
from portal.notifications import services as notifications
from portal.notifications.errors import NotificationError
from portal.notifications.messages import kind_labels, word
from portal.notifications.models import MessageKind
from portal.web.auth import current_staff, staff_required
from portal.web.forms import EmptyForm
from portal.web.render import render

LEAD_FIELD = f"{MessageKind.POINTS_EXPIRING}-lead_days"


@bp.route("/messages", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def message_settings():
    form = EmptyForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        values = {kind: {"enabled": request.form.get(f"{kind}-enabled") == "y",
                         "email": request.form.get(f"{kind}-email") == "y"}
                  for kind in MessageKind}
        raw = (request.form.get(LEAD_FIELD) or "").strip()
        # Not a whole number: handed on as typed, the service refuses it with the field.
        values[MessageKind.POINTS_EXPIRING]["lead_days"] = \
            int(raw) if re.fullmatch(r"-?\d{1,6}", raw) else raw
        try:
            notifications.save_settings(db.session, values, operator_id=current_staff().id)
        except NotificationError as e:
            return _page(form, values, e.details.get("errors", {}), raw, status=422)
        flash(_("The message settings are saved."), "success")
        return redirect(url_for("admin.message_settings"), 303)
    settings = notifications.message_settings(db.session)
    values = {k: {"enabled": s.enabled, "email": s.email} for k, s in settings.items()}
    return _page(form, values, {}, str(settings[MessageKind.POINTS_EXPIRING].lead_days))


def _page(form, values, errors, lead_days, status=200):
    labels = kind_labels()
    rows = [{"kind": kind, "name": labels[kind][0], "when": labels[kind][1],
             "example": word(kind, _example(kind)), **values[kind]} for kind in MessageKind]
    return render("admin/messages.html", form=form, rows=rows, errors=errors,
                  lead_field=LEAD_FIELD, lead_days=lead_days, status=status)


def _example(kind: MessageKind) -> dict:
    """What a member would read, with made-up details, shown beside each switch."""
    coffee = _("Free coffee")
    return {
        MessageKind.COUPON_ARRIVED: {"titles": [coffee]},
        MessageKind.GIFT_DELIVERED: {"activity": _("Complete your profile"), "points": 50,
                                     "titles": [coffee]},
        MessageKind.TIER_CHANGED: {"tier": _("Gold"), "up": True,
                                   "plan": current_app.config["MERCHANT_NAME"]},
        MessageKind.POINTS_EXPIRING: {"points": 120,
                                      "on": date(clock.today().year + 1, 1, 1).isoformat()},
        MessageKind.STUDENT_APPROVED: {"until": date(clock.today().year + 1, 7, 31).isoformat()},
        MessageKind.STUDENT_REJECTED: {"reason": _("The photo is blurred.")},
        MessageKind.STUDENT_EXPIRING: {"on": date(clock.today().year + 1, 7, 31).isoformat()},
        MessageKind.STUDENT_EXPIRED: {"on": date(clock.today().year, 1, 31).isoformat()},
    }[kind]
