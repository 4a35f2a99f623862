"""gunicorn settings for Tessera: `gunicorn -c gunicorn.conf.py wsgi:app`.

Everything an operator tunes comes from the environment (docs/operations.md), so one file
serves `make serve`, a systemd unit and a container alike:

- TESSERA_WEB_BIND     where to listen (default 127.0.0.1:8000: a front server proxies to it)
- TESSERA_WEB_WORKERS  worker processes (default 4)
- TESSERA_WEB_TIMEOUT  seconds a request may take before its worker is restarted (default 60)
"""
import os

from portal import gunicorn_hooks


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise SystemExit(f"{name} must be at least 1, not {value}")
    return value


bind = os.environ.get("TESSERA_WEB_BIND", "127.0.0.1:8000")
# Sync workers: every request is short database work, and a process per request in flight
# keeps one slow request from holding up others in the same worker. About 2 per core.
# They close the connection after each response (no keep-alive): the front server buffers
# slow clients, so a worker is never tied up by one.
workers = _positive_int("TESSERA_WEB_WORKERS", 4)
worker_class = "sync"
# Long enough for the biggest Excel export or import upload; a request stuck longer than
# this is killed and its worker replaced, rather than holding the worker forever.
timeout = _positive_int("TESSERA_WEB_TIMEOUT", 60)
# On SIGTERM (deploy, systemctl stop) requests in flight get this long to finish.
graceful_timeout = 30
# No preload: each worker imports the app after the fork, so no database connection or
# Redis pool is ever shared between processes, and `kill -HUP` (systemctl reload) loads
# new code into fresh workers. The cost is a few seconds of start-up and some memory per
# worker, which four workers can afford.
preload_app = False
# The workers' heartbeat file on a RAM disk: a slow or full disk cannot stall them into
# being killed as unresponsive.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# Logs to stdout/stderr, for systemd's journal or the container's log driver, in the app's
# own format (TESSERA_LOG_FORMAT). The app writes the access line itself, with the request
# id and the route, so gunicorn's own access log stays off.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("TESSERA_WEB_LOGLEVEL", "info")
logconfig_dict = gunicorn_hooks.logconfig_dict()

# Metrics across workers (PROMETHEUS_MULTIPROC_DIR, set in gunicorn's environment only):
# emptied at start, a dead worker's gauges dropped.
on_starting = gunicorn_hooks.on_starting
child_exit = gunicorn_hooks.child_exit
