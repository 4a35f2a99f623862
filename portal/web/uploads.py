"""Image uploads: size-capped, verified and re-encoded with Pillow, stored under random names
outside static/."""
from __future__ import annotations

import secrets
from io import BytesIO
from pathlib import Path

from flask import current_app
from flask_babel import gettext as _
from PIL import Image, UnidentifiedImageError

MAX_BYTES = 4 * 1024 * 1024
MAX_PIXELS = 24_000_000
MAX_SIDE = 2400


class UploadError(ValueError):
    pass


def save_public_image(upload) -> str:
    """Store an image anyone may see (a page banner); returns its name under /media/."""
    return _save(upload, "public")


def save_private_image(upload, folder: str) -> str:
    """Store an image only its owner and staff may see (a student card) under
    UPLOAD_DIR/<folder>, never served by /media/; returns its file name."""
    return _save(upload, folder)


def private_path(folder: str, name: str) -> Path:
    """Where a private image lives; a name that is not one we made finds nothing."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise FileNotFoundError(name)
    return Path(current_app.config["UPLOAD_DIR"]) / folder / name


def delete_private_image(folder: str, name: str) -> None:
    private_path(folder, name).unlink(missing_ok=True)


def _save(upload, folder_name: str) -> str:
    data = upload.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise UploadError(_("The image is larger than 4 MB."))
    try:
        with Image.open(BytesIO(data)) as probe:
            probe.verify()
        image = Image.open(BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise UploadError(_("The image has too many pixels."))
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError):
        raise UploadError(_("This file is not an image we can read (use JPEG or PNG).")) \
            from None
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    # Re-encoding drops metadata and anything hidden after the image data.
    has_alpha = image.mode in ("RGBA", "LA", "P")
    fmt, ext = ("PNG", "png") if has_alpha else ("JPEG", "jpg")
    image = image.convert("RGBA" if has_alpha else "RGB")
    name = f"{secrets.token_urlsafe(16)}.{ext}"
    folder = Path(current_app.config["UPLOAD_DIR"]) / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    image.save(folder / name, fmt, quality=85, optimize=True)
    return name
