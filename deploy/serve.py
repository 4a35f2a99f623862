"""`make serve`: the production set-up on this machine, to try it.

gunicorn (gunicorn.conf.py, 4 workers) on PostgreSQL, Redis for the queue and rate limits,
one job consumer with the periodic schedule and one without, all stopped together on
Ctrl-C. It runs in development mode with the demo payment provider unless the environment
says otherwise (TESSERA_ENV, TESSERA_STRIPE_*); secrets come from the environment only,
and without TESSERA_SECRET_KEY an ephemeral one is made for this run.

Settings (environment): TESSERA_WEB_BIND (127.0.0.1:8000), TESSERA_WEB_WORKERS (4),
TESSERA_REDIS_URL (redis://127.0.0.1:6379/0), TESSERA_DATABASE_URL, or else PGHOST
(127.0.0.1), PGPORT (5432), PGUSER (postgres), PGPASSWORD and TESSERA_SERVE_DB
(tessera_serve) for a database created when missing.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Where `make serve`'s two consumers serve their job metrics (docs/operations.md).
JOB_METRICS_PORTS = (9101, 9102)


@dataclass
class Settings:
    env: dict[str, str]            # the environment every process of the stack gets
    database_url: str
    admin_url: str | None          # libpq URL of the server's `postgres` database, to create ours
    database: str | None           # the database to create when missing
    bind: str
    ephemeral_secret: bool
    notes: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{self.bind}"


def settings(environ: dict[str, str], *, database: str | None = None,
             bind: str | None = None) -> Settings:
    """What the stack runs with, from `environ` (never modified); `database` and `bind`
    override the defaults (the load test uses its own)."""
    env = dict(environ)
    env["FLASK_APP"] = "wsgi:app"
    env.setdefault("TESSERA_ENV", "development")
    env.setdefault("TESSERA_REDIS_URL", "redis://127.0.0.1:6379/0")
    env.setdefault("TESSERA_WEB_WORKERS", "4")
    env["TESSERA_WEB_BIND"] = bind or env.get("TESSERA_WEB_BIND", "127.0.0.1:8000")
    env.setdefault("TESSERA_PUBLIC_URL", f"http://{env['TESSERA_WEB_BIND']}")
    notes = []
    ephemeral = not env.get("TESSERA_SECRET_KEY")
    if ephemeral:
        env["TESSERA_SECRET_KEY"] = secrets.token_urlsafe(48)
        notes.append("TESSERA_SECRET_KEY is not set: using an ephemeral key made for this "
                     "run (sessions end when it stops).")
    if env.get("TESSERA_STRIPE_SECRET_KEY"):
        notes.append("Payments: Stripe (TESSERA_STRIPE_SECRET_KEY is set).")
    else:
        notes.append("Payments: the DEMO provider (no money moves); set "
                     "TESSERA_STRIPE_SECRET_KEY, _WEBHOOK_SECRET and TESSERA_PUBLIC_URL "
                     "for Stripe.")
    if env["TESSERA_ENV"] in {"development", "test"}:
        notes.append(f"Mode: {env['TESSERA_ENV']} (sign-in codes are shown on the page; "
                     "cookies work over plain http).")
    admin_url = None
    if url := env.get("TESSERA_DATABASE_URL"):
        database = None  # the operator's own database: used as it is
    else:
        database = database or env.get("TESSERA_SERVE_DB", "tessera_serve")
        user = quote(env.get("PGUSER", "postgres"), safe="")
        password = env.get("PGPASSWORD")
        auth = f"{user}:{quote(password, safe='')}" if password else user
        server = f"{env.get('PGHOST', '127.0.0.1')}:{env.get('PGPORT', '5432')}"
        url = f"postgresql+psycopg://{auth}@{server}/{database}"
        admin_url = f"postgresql://{auth}@{server}/postgres"
        env["TESSERA_DATABASE_URL"] = url
    return Settings(env=env, database_url=url, admin_url=admin_url, database=database,
                    bind=env["TESSERA_WEB_BIND"], ephemeral_secret=ephemeral, notes=notes)


def ensure_database(cfg: Settings, *, fresh: bool = False) -> bool:
    """Create the database when missing (`fresh`: drop it first). True if it was created."""
    if cfg.database is None:
        return False
    import psycopg
    from psycopg import sql

    with psycopg.connect(cfg.admin_url, autocommit=True) as conn:
        name = sql.Identifier(cfg.database)
        if fresh:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                        (cfg.database,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
        return True


def check_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as e:
        raise SystemExit(f"Redis at {url} does not answer ({e}); start it or set "
                         "TESSERA_REDIS_URL.") from None


def _flask(cfg: Settings, *args: str) -> None:
    subprocess.run([str(BIN / "flask"), *args], env=cfg.env, cwd=ROOT, check=True)


def _is_empty(cfg: Settings) -> bool:
    import psycopg

    libpq = cfg.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq) as conn:
        return conn.execute("SELECT NOT EXISTS (SELECT 1 FROM stores)").fetchone()[0]


def prepare(cfg: Settings, *, fresh: bool = False) -> None:
    """Database, migrations and (development only, empty database only) the demo data."""
    if not cfg.database_url.startswith("postgresql"):
        raise SystemExit("make serve runs on PostgreSQL: TESSERA_DATABASE_URL must be a "
                         "postgresql+psycopg:// URL.")
    if ensure_database(cfg, fresh=fresh):
        print(f"Created database {cfg.database}.")
    check_redis(cfg.env["TESSERA_REDIS_URL"])
    _flask(cfg, "db", "upgrade")
    if not _is_empty(cfg):
        return
    if cfg.env["TESSERA_ENV"] in {"development", "test"}:
        print("Empty database: adding the demo merchant (flask seed).")
        _flask(cfg, "seed")
    else:
        print("Empty database: set it up with flask stores/plans/staff create "
              "(docs/operations.md); no demo data outside development.")


class Stack:
    """gunicorn and two consumers, each in its own session so that a Ctrl-C reaches only
    us and we stop them in order: web first (no new work), then the consumers."""

    def __init__(self, cfg: Settings, output=None, job_metrics_ports: tuple[int, int] = ()):
        self.cfg = cfg
        self.output = output  # a file for the processes' output (default: ours)
        # Each consumer serves its own job metrics (they are not gunicorn's workers).
        self.job_metrics_ports = job_metrics_ports
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self) -> None:
        flask = str(BIN / "flask")
        commands = {
            "web": [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"],
            "jobs (schedule)": [flask, "jobs", "run", "--workers", "2"],
            "jobs (--no-periodic)": [flask, "jobs", "run", "--workers", "2", "--no-periodic"],
        }
        consumers = [command for name, command in commands.items() if name != "web"]
        for command, port in zip(consumers, self.job_metrics_ports, strict=False):
            command += ["--metrics-port", str(port)]
        for name, command in commands.items():
            env = self.cfg.env
            if name == "web":
                # Only gunicorn's workers share a metrics directory (docs/operations.md).
                env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(
                    ROOT / "instance" / f"metrics-{self.cfg.bind.replace(':', '-')}")}
            self.procs[name] = subprocess.Popen(command, env=env, cwd=ROOT,
                                                start_new_session=True, stdout=self.output,
                                                stderr=self.output)

    def wait_ready(self, timeout: float = 60, stopping=lambda: False) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stopping():
            self.check_alive()
            try:
                with urllib.request.urlopen(f"{self.cfg.base_url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        if stopping():
            return
        raise RuntimeError(f"{self.cfg.base_url}/healthz did not answer in {timeout:.0f} s")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with status {proc.returncode}")

    def stop(self, grace: float = 35) -> None:
        """SIGTERM to gunicorn (finishes requests in flight), SIGINT to the consumers
        (Huey's graceful stop: running tasks finish); SIGKILL what is left after `grace`."""
        for name, proc in self.procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if name == "web" else signal.SIGINT)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def main() -> int:
    cfg = settings(os.environ)
    prepare(cfg)
    stack = Stack(cfg, job_metrics_ports=JOB_METRICS_PORTS)
    stopping = False

    def stop_on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop_on_signal)
    stack.start()
    try:
        stack.wait_ready(stopping=lambda: stopping)
        database = cfg.database_url.rsplit("/", 1)[-1]
        print(f"\nTessera on {cfg.base_url} (admin at /admin): gunicorn with "
              f"{cfg.env['TESSERA_WEB_WORKERS']} workers, database {database}, "
              f"Redis {cfg.env['TESSERA_REDIS_URL']}, two job consumers (one with the "
              "schedule).")
        print(f"  Metrics: {cfg.base_url}/metrics (web), http://127.0.0.1:"
              f"{JOB_METRICS_PORTS[0]}/ and :{JOB_METRICS_PORTS[1]}/ (the consumers' jobs).")
        for note in cfg.notes:
            print(f"  {note}")
        print("Ctrl-C stops everything.\n", flush=True)
        while not stopping:
            stack.check_alive()
            time.sleep(0.5)
    except RuntimeError as e:
        print(f"make serve: {e}; stopping.", file=sys.stderr)
        return 1
    finally:
        print("Stopping…", flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
