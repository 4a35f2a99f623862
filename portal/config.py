"""Settings from TESSERA_* environment variables, with safe development defaults."""
from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"

DEV_SECRET = "dev-only-secret-key-not-for-production"


class ConfigError(RuntimeError):
    """The environment is not safe to start in."""


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"TESSERA_{name}", default)


def _flag(name: str, default: bool) -> bool:
    value = _env(name)
    return default if value is None else value.lower() in {"1", "true", "yes", "on"}


def _networks(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(n.strip(), strict=False) for n in value.split(",")
                if n.strip()]
    except ValueError as e:
        raise ConfigError(f"TESSERA_METRICS_ALLOW: {e}") from None


def load(overrides: dict | None = None) -> dict:
    """Build the Flask config. `overrides` (tests, bench) win over the environment."""
    env = (overrides or {}).get("ENV") or _env("ENV", "development")
    dev_like = env in {"development", "test"}
    secret = _env("SECRET_KEY")
    if not secret:
        if not dev_like:
            raise ConfigError("TESSERA_SECRET_KEY must be set outside development and test.")
        secret = DEV_SECRET
    redis_url = _env("REDIS_URL")
    cfg = {
        "ENV": env,
        "TESTING": env == "test",
        "SECRET_KEY": secret,
        "DATABASE_URL": _env("DATABASE_URL", f"sqlite:///{INSTANCE / 'tessera.db'}"),
        "REDIS_URL": redis_url,
        "UPLOAD_DIR": _env("UPLOAD_DIR", str(INSTANCE / "uploads")),
        "MAX_CONTENT_LENGTH": 8 * 1024 * 1024,
        # The merchant's local time decides "today", birthdays and member days.
        "TIMEZONE": _env("TIMEZONE", "Asia/Shanghai"),
        "DEFAULT_REGION": _env("DEFAULT_REGION", "CN"),
        "DEFAULT_CURRENCY": _env("DEFAULT_CURRENCY", "CNY"),
        "MERCHANT_NAME": _env("MERCHANT_NAME", "Tessera"),
        "BRAND_COLOR": _env("BRAND_COLOR", "#0f766e"),
        "BABEL_DEFAULT_LOCALE": "en",
        "BABEL_TRANSLATION_DIRECTORIES": str(ROOT / "translations"),
        "LANGUAGES": {"en": "English", "zh_Hans": "简体中文"},
        # Sessions: server-revocable through a version on the user; idle expiry per kind.
        "SESSION_COOKIE_SECURE": not dev_like,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": timedelta(days=30),
        "MEMBER_IDLE_TIMEOUT": timedelta(days=30),
        "STAFF_IDLE_TIMEOUT": timedelta(hours=8),
        "REMEMBER_COOKIE_DURATION": timedelta(seconds=0),
        "WTF_CSRF_TIME_LIMIT": None,
        "WTF_CSRF_SSL_STRICT": not dev_like,
        # One-time codes and their limits.
        "OTP_TTL": timedelta(minutes=5),
        "OTP_RESEND_AFTER": timedelta(seconds=60),
        "OTP_MAX_ATTEMPTS": 5,
        "OTP_SEND_LIMIT_PER_NUMBER": _env("OTP_SEND_LIMIT_PER_NUMBER", "5 per hour"),
        "OTP_SEND_LIMIT_PER_IP": _env("OTP_SEND_LIMIT_PER_IP", "30 per hour"),
        "STAFF_MAX_FAILED_SIGNINS": 5,
        "STAFF_LOCKOUT": timedelta(minutes=15),
        # Outbox senders: "log" writes messages to the log (development); "smtp" sends mail.
        "SMS_SENDER": _env("SMS_SENDER", "log"),
        "EMAIL_SENDER": _env("EMAIL_SENDER", "log"),
        "SMTP_URL": _env("SMTP_URL"),
        "MAIL_FROM": _env("MAIL_FROM"),
        # Member messages are e-mailed as the merchant's message settings say (per kind,
        # /admin/messages); EMAIL_SENDER decides how mail leaves ("log": it does not).
        # Proxies in front of the app whose X-Forwarded-* headers are trusted (0: none).
        "PROXY_COUNT": int(_env("PROXY_COUNT", "0")),
        # The dev banner shows the last code sent to a number; never on in production.
        "SHOW_DEV_CODES": dev_like and _flag("SHOW_DEV_CODES", True),
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        # Redis away: limits are counted in this process's memory instead, so pages keep
        # working; sending codes stops (members.views), and the limiter goes back to
        # Redis within a minute of its return. A Redis that does not answer fails fast.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_STORAGE_OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2}
        if redis_url else {},
        "RATELIMIT_HEADERS_ENABLED": True,
        "HUEY_IMMEDIATE": env == "test",
        # Payments: Stripe when a secret key is set, else the demo provider (a local page
        # that confirms or cancels; refused outside development and test).
        "STRIPE_SECRET_KEY": _env("STRIPE_SECRET_KEY"),
        "STRIPE_WEBHOOK_SECRET": _env("STRIPE_WEBHOOK_SECRET"),
        # Only for tests and local stubs: where the Stripe SDK sends API calls.
        "STRIPE_API_BASE": _env("STRIPE_API_BASE"),
        # The public address Stripe sends members back to (e.g. https://members.example.com).
        "PUBLIC_URL": _env("PUBLIC_URL", "http://127.0.0.1:5000" if dev_like else None),
        # Stripe wants a checkout to expire at least 30 minutes after it is created; 35
        # leaves room for the time between our row and Stripe's call.
        "PAYMENT_TTL": timedelta(minutes=35),
        # Logs: one JSON object a line for log collectors in production, readable text on a
        # developer's terminal and under tests.
        "LOG_FORMAT": _env("LOG_FORMAT", "text" if dev_like else "json"),
        "LOG_LEVEL": _env("LOG_LEVEL", "INFO").upper(),
        # Statements slower than this are logged (without their parameters) and counted.
        "SLOW_QUERY_MS": int(_env("SLOW_QUERY_MS", "200")),
        # /metrics answers a bearer token or these networks; in production, nobody by default.
        "METRICS_TOKEN": _env("METRICS_TOKEN"),
        "METRICS_ALLOW": _networks(_env("METRICS_ALLOW",
                                        "127.0.0.1/32,::1/128" if dev_like else "")),
    }
    if overrides:
        cfg.update(overrides)
    cfg["PAYMENT_PROVIDER"] = "stripe" if cfg["STRIPE_SECRET_KEY"] else "demo"
    if cfg["ENV"] not in {"development", "test"}:
        if cfg["PAYMENT_PROVIDER"] == "demo":
            raise ConfigError("Set TESSERA_STRIPE_SECRET_KEY: the demo payment provider only "
                              "runs in development and test.")
        if not cfg["STRIPE_WEBHOOK_SECRET"] or not cfg["PUBLIC_URL"]:
            raise ConfigError("Set TESSERA_STRIPE_WEBHOOK_SECRET and TESSERA_PUBLIC_URL with "
                              "the Stripe key.")
    if cfg["LOG_FORMAT"] not in {"json", "text"}:
        raise ConfigError("TESSERA_LOG_FORMAT must be json or text.")
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", cfg["BRAND_COLOR"]):
        raise ConfigError("TESSERA_BRAND_COLOR must be a colour like #0f766e.")
    return cfg
