"""The member's inbox."""
from __future__ import annotations

from flask import Blueprint

from portal.db import db
from portal.notifications import services as notifications
from portal.notifications.messages import shown
from portal.web.auth import current_member, is_previewing, member_required
from portal.web.render import render

bp = Blueprint("notifications", __name__)


@bp.get("/inbox")
@member_required
def inbox():
    messages = notifications.inbox(db.session, current_member.id)
    unread = {m.id for m in messages if m.read_at is None}
    if unread and not is_previewing():
        # Opening the inbox reads it (a preview looks without touching).
        notifications.mark_read(db.session, current_member.id)
    # Typed messages are worded now, in the reader's language (no queries: params only).
    items = [(m, shown(m)) for m in messages]
    return render("notifications/inbox.html", items=items, unread=unread)
