"""Hooks for gunicorn.conf.py: metrics across worker processes, and gunicorn's own log
lines in the app's format.

Workers count into files under PROMETHEUS_MULTIPROC_DIR, added up at each scrape. The
variable must be set in gunicorn's environment before it starts (the workers read it when
they import the metrics). This module creates no metric: the master imports it.
"""
from __future__ import annotations

import os


def on_starting(_server) -> None:
    """Empty PROMETHEUS_MULTIPROC_DIR before workers start: files of an earlier run would
    be added to this one's counts."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def child_exit(_server, worker) -> None:
    """Drop a dead worker's live gauges; its counters stay in the totals."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def logconfig_dict() -> dict:
    """gunicorn's own lines (worker boots, timeouts) in the app's format. The root logger
    gets no handler here: the app adds its own, and two would double every line."""
    from portal import config
    from portal.logs import make_handler

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "INFO", "handlers": []},
        "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["tessera"],
                                       "propagate": False},
                    "gunicorn.access": {"level": "INFO", "handlers": [],
                                        "propagate": False}},
        "handlers": {"tessera": {"()": make_handler,
                                 "log_format": config.load()["LOG_FORMAT"]}},
        "formatters": {},
    }
