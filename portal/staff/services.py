"""Staff sign-in (Argon2id, failed sign-ins counted in the database) and the audit log."""
from __future__ import annotations

from datetime import date, datetime
from enum import Enum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from portal import clock
from portal.db import transaction
from portal.staff.errors import StaffError, StaffErrorCode
from portal.staff.models import AuditEntry, Role, StaffUser

# OWASP's Argon2id baseline: m=19 MiB, t=2, p=1.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the email is unknown, so timing does not reveal which emails exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")

MAX_FAILED = 5


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def create_staff(session: Session, *, email: str, name: str, password: str, role: Role,
                 store_id: int | None = None, operator_id: int | None = None) -> StaffUser:
    with transaction(session):
        email = email.strip().lower()
        if session.scalar(select(StaffUser.id).where(StaffUser.email == email)):
            raise StaffError(StaffErrorCode.EMAIL_TAKEN, _("This email is already in use."),
                             field="email")
        if role == Role.CLERK and store_id is None:
            raise StaffError(StaffErrorCode.STORE_REQUIRED,
                             _("A clerk works at a store: choose one."), field="store_id")
        user = StaffUser(email=email, name=name, password_hash=hash_password(password),
                         role=role, store_id=store_id if role == Role.CLERK else None)
        session.add(user)
        session.flush()
        record(session, operator_id, "staff.create", user, after=_staff_snapshot(user))
        return user


def authenticate(session: Session, email: str, password: str, *, max_failed: int,
                 lockout) -> StaffUser:
    """The staff user, or StaffError. Locks the account after `max_failed` failures.

    The failure count must survive the refusal, so the error is raised after commit.
    """
    refusal: StaffError | None = None
    with transaction(session):
        user = session.scalar(
            select(StaffUser).where(StaffUser.email == email.strip().lower()))
        now = clock.now()
        if user is None or not user.is_active:
            _verify(_DUMMY_HASH, password)
            refusal = StaffError(StaffErrorCode.BAD_CREDENTIALS,
                                 _("Email or password is not right."))
        elif user.locked_until and user.locked_until > now:
            refusal = StaffError(StaffErrorCode.LOCKED,
                                 _("Too many failed sign-ins. Try again in a few minutes."))
        elif not _verify(user.password_hash, password):
            # Counted with an UPDATE, not read-modify-write: parallel guesses all count.
            session.execute(update(StaffUser).where(StaffUser.id == user.id)
                            .values(failed_signins=StaffUser.failed_signins + 1))
            session.refresh(user)
            if user.failed_signins >= max_failed:
                user.locked_until = now + lockout
                user.failed_signins = 0
            refusal = StaffError(StaffErrorCode.BAD_CREDENTIALS,
                                 _("Email or password is not right."))
        else:
            if _hasher.check_needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
            user.failed_signins = 0
            user.locked_until = None
            user.last_signin_at = now
    if refusal is not None:
        raise refusal
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def sign_out(session: Session, staff_id: int) -> None:
    """End every session of this staff user on the server."""
    with transaction(session):
        session.execute(update(StaffUser).where(StaffUser.id == staff_id)
                        .values(session_version=StaffUser.session_version + 1))


def load_for_session(session: Session, staff_id: int, version: int) -> StaffUser | None:
    user = session.get(StaffUser, staff_id)
    if user is None or not user.is_active or user.session_version != version:
        return None
    return user


def set_role(session: Session, staff_id: int, role: Role, *, store_id: int | None,
             operator_id: int) -> StaffUser:
    """Change a role; the user's sessions end so the new rights apply at once."""
    with transaction(session):
        user = session.get(StaffUser, staff_id)
        before = _staff_snapshot(user)
        if role == Role.CLERK and store_id is None:
            raise StaffError(StaffErrorCode.STORE_REQUIRED,
                             _("A clerk works at a store: choose one."), field="store_id")
        user.role = role
        user.store_id = store_id if role == Role.CLERK else None
        user.session_version += 1
        record(session, operator_id, "staff.role", user, before=before,
               after=_staff_snapshot(user))
        return user


def _staff_snapshot(user: StaffUser) -> dict:
    return {"email": user.email, "name": user.name, "role": user.role,
            "store_id": user.store_id}


# --- audit -----------------------------------------------------------------------------

def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def record(session: Session, staff_id: int | None, action: str, obj, *,
           before: dict | None = None, after: dict | None = None) -> AuditEntry:
    """Write one audit entry in the caller's transaction. `obj` is a model or (type, id)."""
    if isinstance(obj, tuple):
        object_type, object_id = obj
    else:
        object_type, object_id = obj.__tablename__, obj.id
    entry = AuditEntry(staff_id=staff_id, action=action, object_type=object_type,
                       object_id=str(object_id), before=_jsonable(before),
                       after=_jsonable(after))
    session.add(entry)
    return entry


def audit_page(session: Session, *, action: str | None = None, object_type: str | None = None,
               object_id: str | None = None, before_id: int | None = None,
               limit: int = 50) -> list[AuditEntry]:
    q = select(AuditEntry).options(joinedload(AuditEntry.staff)).order_by(
        AuditEntry.id.desc()).limit(limit)
    if action:
        q = q.where(AuditEntry.action.startswith(action))
    if object_type:
        q = q.where(AuditEntry.object_type == object_type)
    if object_id:
        q = q.where(AuditEntry.object_id == object_id)
    if before_id:
        q = q.where(AuditEntry.id < before_id)
    return list(session.scalars(q))


def audit_actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEntry.action).distinct()
                                .order_by(AuditEntry.action)))


def list_staff(session: Session) -> list[StaffUser]:
    return list(session.scalars(select(StaffUser).options(joinedload(StaffUser.store))
                                .order_by(StaffUser.id)))


def set_locale(session: Session, staff_id: int, locale: str) -> None:
    with transaction(session):
        session.get(StaffUser, staff_id).locale = locale
