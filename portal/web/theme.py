"""The merchant's brand colour as CSS tokens (a stylesheet: the CSP allows no inline style)."""
from __future__ import annotations

from flask import Blueprint, current_app, make_response

bp = Blueprint("theme", __name__)


@bp.get("/theme.css")
def theme_css():
    brand = current_app.config["BRAND_COLOR"]
    shades = {
        "--t-brand": brand,
        "--t-brand-700": brand,
        "--t-brand-600": f"color-mix(in srgb, {brand} 85%, #fff)",
        "--t-brand-800": f"color-mix(in srgb, {brand} 80%, #000)",
        "--t-brand-900": f"color-mix(in srgb, {brand} 65%, #000)",
        "--t-brand-50": f"color-mix(in srgb, {brand} 5%, #fff)",
        "--t-brand-100": f"color-mix(in srgb, {brand} 20%, #fff)",
        "--t-brand-soft": f"color-mix(in srgb, {brand} 12%, #fff)",
    }
    body = ":root {\n" + "".join(f"  {k}: {v};\n" for k, v in shades.items()) + "}\n"
    response = make_response(body)
    response.mimetype = "text/css"
    response.cache_control.public = True
    response.cache_control.max_age = 3600
    return response
