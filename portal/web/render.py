"""One template per page; HTMX requests get one named block of it.

Which block: the one named like the request's HX-Target element (blocks wrap an element
with the block's name as id, swapped outerHTML), else `block`. Boosted navigation and
history restores get the whole page.
"""
from __future__ import annotations

from flask import current_app, make_response, render_template, request
from jinja2_fragments.flask import render_block


def render(template: str, block: str = "content", status: int = 200, **context):
    htmx = request.htmx
    if htmx and not htmx.boosted and not htmx.history_restore_request:
        blocks = current_app.jinja_env.get_template(template).blocks
        chosen = htmx.target if htmx.target in blocks else block
        body = render_block(template, chosen, **context)
    else:
        body = render_template(template, **context)
    response = make_response(body, status)
    response.vary.add("HX-Request")
    return response
