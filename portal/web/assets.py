"""Static files' addresses carry a version, a hash of the file's content
(`/static/css/tessera.css?v=…`), so a front server can let browsers keep them for a year:
a changed file gets a new address. Hashed once per file and modification time."""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache


def register(app) -> None:
    @app.url_defaults
    def _static_version(endpoint: str, values: dict) -> None:
        if endpoint == "static" and "filename" in values and "v" not in values:
            if version := static_version(app.static_folder, values["filename"]):
                values["v"] = version


def static_version(folder: str, filename: str) -> str | None:
    path = os.path.join(folder, filename)
    try:
        modified = os.stat(path).st_mtime_ns
    except OSError:
        return None
    return _digest(path, modified)


@lru_cache(maxsize=512)
def _digest(path: str, _modified: int) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12]
