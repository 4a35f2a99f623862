from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from portal.db import db
from portal.extensions import csrf

bp = Blueprint("health", __name__)


@bp.get("/livez")
@csrf.exempt
def livez():
    """The process answers; nothing else is touched (no database, no session). For a
    liveness probe, and the load test's bare route: what any request costs at least."""
    return "ok", 200, {"Content-Type": "text/plain"}


@bp.get("/healthz")
@csrf.exempt
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
    except SQLAlchemyError:
        db.session.rollback()
        return jsonify(status="degraded", db="down"), 503
    return jsonify(status="ok", db="ok")
