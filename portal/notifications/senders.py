"""Pluggable senders for the outbox.

TESSERA_SMS_SENDER / TESSERA_EMAIL_SENDER name one: "log" (development: the message goes
to the application log), "smtp" (email through TESSERA_SMTP_URL), or "package.module:Class"
for a provider's adapter (a class with `send(message) -> None` that raises on failure).
"""
from __future__ import annotations

import importlib
import logging
import smtplib
from email.message import EmailMessage
from urllib.parse import unquote, urlparse

log = logging.getLogger("tessera.outbox")


class LogSender:
    """Writes messages to the log. Sign-in codes are secrets: shown only in development."""

    def __init__(self, app):
        self.show_codes = app.config["SHOW_DEV_CODES"]

    def send(self, message) -> None:
        body = message.body if self.show_codes or message.template != "otp" else "[code]"
        log.warning("[%s to %s] %s %s", message.channel, message.recipient,
                    message.subject, body)


class SmtpSender:
    """smtp://user:password@host:587 (STARTTLS) or smtps://... (TLS)."""

    def __init__(self, app):
        url = app.config.get("SMTP_URL")
        if not url:
            raise RuntimeError("TESSERA_SMTP_URL must be set for the smtp sender")
        self.url = urlparse(url)
        self.sender = app.config.get("MAIL_FROM") or f"no-reply@{self.url.hostname}"
        self.port = self.url.port or (465 if self.url.scheme == "smtps" else 587)

    def send(self, message) -> None:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.recipient
        mail["Subject"] = message.subject
        mail.set_content(message.body)
        cls = smtplib.SMTP_SSL if self.url.scheme == "smtps" else smtplib.SMTP
        with cls(self.url.hostname, self.port, timeout=20) as smtp:
            if self.url.scheme == "smtp":
                smtp.starttls()
            if self.url.username:
                smtp.login(unquote(self.url.username), unquote(self.url.password or ""))
            smtp.send_message(mail)


BUILTIN = {"log": LogSender, "smtp": SmtpSender}


def load_sender(name: str, app):
    if name in BUILTIN:
        return BUILTIN[name](app)
    module, _, cls = name.partition(":")
    return getattr(importlib.import_module(module), cls)(app)
