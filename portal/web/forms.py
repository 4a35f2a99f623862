"""Form helpers shared by member and admin views."""
from __future__ import annotations

from flask_wtf import FlaskForm


def apply_error(form: FlaskForm, error) -> None:
    """Put a domain error's messages next to the fields they concern."""
    errors = getattr(error, "details", {}).get("errors") or {getattr(error, "field", None):
                                                               str(error)}
    for name, message in errors.items():
        field = form._fields.get(name) if name else None
        if field is not None:
            field.errors = [*field.errors, message] if isinstance(field.errors, list) \
                else [message]
        else:
            form.form_errors.append(message)


def shown_status() -> int:
    """The status of a form page: 422 when it is shown again after a refused submission."""
    from flask import request

    return 422 if request.method == "POST" else 200


class EmptyForm(FlaskForm):
    """A form that carries only the CSRF token (buttons that post)."""
