"""Flask extensions, created unbound and initialised in create_app()."""
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf import CSRFProtect
from htmx_flask import Htmx

from portal.db import db

login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
htmx = Htmx()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def limits_are_shared() -> bool:
    """Whether this request's rate limits were counted in the configured store. With
    Redis away, the limiter counts in this process's memory instead (each worker alone),
    which is fine for pages and too weak for what costs money or floods a phone."""
    return limiter.limiter.storage is limiter.storage

__all__ = ["db", "login_manager", "csrf", "babel", "htmx", "limiter"]
