"""One template per page; HTMX requests get one named block of it.

Which block: the one named like the request's HX-Target element (blocks wrap an element
with the block's name as id, swapped outerHTML), else the view's `block`, else the page's
main block ("admin" for admin pages, "content" for the rest). Boosted navigation and
history restores get the whole page.
"""
from __future__ import annotations

from flask import current_app, make_response, render_template, request
from jinja2_fragments.flask import render_block

MAIN_BLOCKS = ("admin", "content")


def render(template_name: str, block: str | None = None, status: int = 200, **context):
    htmx = request.htmx
    body = None
    if htmx and not htmx.boosted and not htmx.history_restore_request:
        own_blocks = current_app.jinja_env.get_template(template_name).blocks
        chosen = next((name for name in (htmx.target, block, *MAIN_BLOCKS)
                       if name and name in own_blocks), None)
        if chosen is not None:
            body = render_block(template_name, chosen, **context)
    if body is None:
        body = render_template(template_name, **context)
    response = make_response(body, status)
    response.vary.add("HX-Request")
    return response
