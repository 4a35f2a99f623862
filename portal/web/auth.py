"""Who is signed in: a member (mobile + code) or a staff user (email + password).

Both go through Flask-Login. The session id carries the user's session version, so a
sign-out (which bumps it) or a role change ends every session of that user on the server.
Staff may preview the member portal as a member: read-only, under a banner.
"""
from __future__ import annotations

from functools import wraps

from flask import abort, current_app, g, request, session
from flask_login import UserMixin, current_user
from werkzeug.local import LocalProxy

from portal import clock
from portal.db import db
from portal.extensions import login_manager
from portal.members import services as members
from portal.members.models import Member
from portal.staff import services as staff_services
from portal.staff.models import Role, StaffUser


class MemberUser(UserMixin):
    kind = "member"

    def __init__(self, member: Member):
        self.member = member
        self.id = member.id

    def get_id(self) -> str:
        return f"m:{self.member.id}:{self.member.session_version}"


class StaffPrincipal(UserMixin):
    kind = "staff"

    def __init__(self, user: StaffUser):
        self.user = user
        self.id = user.id

    def get_id(self) -> str:
        return f"s:{self.user.id}:{self.user.session_version}"

    def can(self, *roles: Role) -> bool:
        return self.user.role in roles


@login_manager.user_loader
def load_user(user_id: str):
    try:
        kind, raw_id, raw_version = user_id.split(":")
        ident, version = int(raw_id), int(raw_version)
    except ValueError:
        return None
    if kind == "m":
        member = members.load_for_session(db.session, ident, version)
        return MemberUser(member) if member else None
    if kind == "s":
        user = staff_services.load_for_session(db.session, ident, version)
        return StaffPrincipal(user) if user else None
    return None


def enforce_idle_timeout() -> None:
    """Sign out a session that has been idle longer than its kind allows."""
    if not current_user.is_authenticated:
        return
    limit = current_app.config[
        "STAFF_IDLE_TIMEOUT" if current_user.kind == "staff" else "MEMBER_IDLE_TIMEOUT"]
    now = int(clock.now().timestamp())
    last = session.get("seen")
    if last is not None and now - last > limit.total_seconds():
        from flask_login import logout_user

        logout_user()
        session.clear()
        return
    # Write the cookie at most once a minute, not on every request.
    if last is None or now - last > 60:
        session["seen"] = now
    session.permanent = True


def _current_member() -> Member | None:
    if "member" in g:
        return g.member
    member = None
    g.previewing = False
    if current_user.is_authenticated:
        if current_user.kind == "member":
            member = current_user.member
        elif current_user.kind == "staff" and session.get("preview_profile"):
            # Built only for the member's pages: the admin's own saves must still commit.
            if request.blueprint not in ("admin", "api"):
                from portal.members import preview

                member = preview.open_sandbox(
                    db.session, preview.Profile.from_dict(session["preview_profile"]))
                g.previewing = member is not None
        elif current_user.kind == "staff" and session.get("preview_member_id"):
            member = db.session.get(Member, session["preview_member_id"])
            g.previewing = member is not None
    g.member = member
    return member


current_member: Member = LocalProxy(_current_member)  # type: ignore[assignment]


def is_previewing() -> bool:
    _current_member()
    return g.get("previewing", False)


def member_required(view):
    """A signed-in member, or staff previewing one. A preview never changes anything."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if _current_member() is None:
            return login_manager.unauthorized()
        if is_previewing() and request.method not in ("GET", "HEAD"):
            abort(403, description="preview")
        return view(*args, **kwargs)

    return wrapped


def staff_required(*roles: Role):
    """A signed-in staff user, with one of `roles` if any are given."""

    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated or current_user.kind != "staff":
                from flask import redirect, url_for

                return redirect(url_for("admin.sign_in", next=request.full_path), 303)
            if roles and current_user.user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate


def current_staff() -> StaffUser | None:
    if current_user.is_authenticated and current_user.kind == "staff":
        return current_user.user
    return None
