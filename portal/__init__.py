"""Tessera: the membership-marketing portal."""
from __future__ import annotations

from flask import Flask, g, request, session

from portal import clock
from portal import config as config_module
from portal.db import db as database
from portal.extensions import babel, csrf, htmx, limiter, login_manager


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__, template_folder="../templates", static_folder="../static",
                instance_path=str(config_module.INSTANCE))
    app.config.update(config_module.load(config))
    clock.set_timezone(app.config["TIMEZONE"])
    if app.config["PROXY_COUNT"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)

    database.init_app(app)
    # Imported here: gunicorn's master imports `portal` and must not create metrics.
    from portal import observability

    observability.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    login_manager.login_view = "members.sign_in"
    login_manager.login_message = None

    from portal import jobs
    from portal.jobs import huey

    if app.config["HUEY_IMMEDIATE"]:
        huey.immediate = True
    jobs._app = jobs._app or app

    _register_blueprints(app)
    _register_hooks(app)

    from portal import cli
    from portal.web import assets, errors, filters

    assets.register(app)
    errors.register(app)
    filters.register(app)
    filters.register_labels(app)
    cli.register(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from portal.admin.views import bp as admin_bp
    from portal.api.views import bp as api_bp
    from portal.benefits.package_views import bp as packages_bp
    from portal.benefits.views import bp as benefits_bp
    from portal.campaigns.views import bp as campaigns_bp
    from portal.coupons.views import bp as coupons_bp
    from portal.giftcards.views import bp as giftcards_bp
    from portal.loyalty.views import bp as loyalty_bp
    from portal.members.views import bp as members_bp
    from portal.notifications.views import bp as notifications_bp
    from portal.payments.views import bp as payments_bp
    from portal.rights.views import bp as rights_bp
    from portal.students.views import bp as students_bp
    from portal.wallet.views import bp as wallet_bp
    from portal.web.health import bp as health_bp
    from portal.web.theme import bp as theme_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(theme_bp)
    app.register_blueprint(members_bp)
    app.register_blueprint(coupons_bp)
    app.register_blueprint(campaigns_bp)
    app.register_blueprint(loyalty_bp)
    app.register_blueprint(notifications_bp)
    app.register_blueprint(wallet_bp)
    app.register_blueprint(payments_bp)
    app.register_blueprint(giftcards_bp)
    app.register_blueprint(students_bp)
    app.register_blueprint(rights_bp)
    app.register_blueprint(benefits_bp)
    app.register_blueprint(packages_bp)
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(api_bp)


def select_locale() -> str:
    from flask import has_request_context

    from portal.web.auth import current_member, current_staff

    languages = app_languages()
    if "locale_override" in g:
        return g.locale_override
    if not has_request_context():
        return "en"
    member = current_member._get_current_object()
    if member is not None and member.locale in languages:
        return member.locale
    staff = current_staff()
    if staff is not None and staff.locale in languages:
        return staff.locale
    if session.get("locale") in languages:
        return session["locale"]
    for lang, _quality in request.accept_languages:
        lang = lang.lower()
        if lang.startswith("zh"):
            return "zh_Hans"
        if lang.startswith("en"):
            return "en"
    return "en"


def app_languages() -> dict:
    from flask import current_app

    return current_app.config["LANGUAGES"]


def _unread(member) -> int:
    if member is None:
        return 0
    from portal.notifications.services import unread_count

    return unread_count(database.session, member.id)


def _register_hooks(app: Flask) -> None:
    from portal.web import security
    from portal.web.auth import current_member, enforce_idle_timeout, is_previewing

    app.before_request(enforce_idle_timeout)
    app.after_request(security.add_security_headers)
    if app.config["SESSION_COOKIE_SECURE"]:
        app.after_request(security.add_hsts)

    @app.context_processor
    def _globals():
        from flask_babel import get_locale

        from portal.web.auth import current_staff

        macros = app.jinja_env.get_template("_macros/forms.html").module
        member = current_member._get_current_object()
        return {
            "unread_messages": _unread(member),
            # Form macros for every template and every fragment: a block rendered alone
            # does not run its template's top-level imports.
            "field": macros.field,
            "form_errors": macros.form_errors,
            "csrf": macros.csrf,
            "code_sent": macros.code_sent,
            "load_more_row": app.jinja_env.get_template("_macros/lists.html").module
            .load_more_row,
            "current_member": current_member,
            "current_staff": current_staff(),
            "previewing": is_previewing(),
            "languages": app.config["LANGUAGES"],
            "current_locale": str(get_locale()),
            "merchant_name": app.config["MERCHANT_NAME"],
        }
