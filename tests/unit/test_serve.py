"""The production set-up's pieces: gunicorn.conf.py, `make serve`'s settings, and the load
test's arithmetic (its percentiles and drift check decide whether a run passes)."""
from __future__ import annotations

import asyncio
import runpy
from pathlib import Path

import httpx
import pytest

from bench.loadtest import Fixture, Load, Tally, balance_drift, percentile
from deploy.serve import settings

GUNICORN_CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"
WEB_VARS = ("TESSERA_WEB_BIND", "TESSERA_WEB_WORKERS", "TESSERA_WEB_TIMEOUT")


def _gunicorn(monkeypatch, **env) -> dict:
    for name in WEB_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


def test_gunicorn_defaults_to_four_sync_workers_on_loopback(monkeypatch):
    conf = _gunicorn(monkeypatch)
    assert (conf["bind"], conf["workers"], conf["worker_class"], conf["timeout"]) == \
        ("127.0.0.1:8000", 4, "sync", 60)
    assert conf["preload_app"] is False
    assert conf["accesslog"] is None  # the app writes the access line, with its request id


def test_gunicorn_takes_workers_bind_and_timeout_from_the_environment(monkeypatch):
    conf = _gunicorn(monkeypatch, TESSERA_WEB_WORKERS="9", TESSERA_WEB_BIND="0.0.0.0:9000",
                     TESSERA_WEB_TIMEOUT="120")
    assert (conf["bind"], conf["workers"], conf["timeout"]) == ("0.0.0.0:9000", 9, 120)


@pytest.mark.parametrize("raw", ["four", "0", "-2", ""])
def test_gunicorn_refuses_a_bad_worker_count(monkeypatch, raw):
    with pytest.raises(SystemExit, match="TESSERA_WEB_WORKERS"):
        _gunicorn(monkeypatch, TESSERA_WEB_WORKERS=raw)


def test_gunicorn_accepts_the_file_as_its_own_config(monkeypatch):
    from gunicorn.config import Config

    cfg = Config()
    for name, value in _gunicorn(monkeypatch).items():
        if name in cfg.settings:
            cfg.set(name, value)  # raises on a misspelt or mistyped setting
    assert cfg.workers == 4 and callable(cfg.child_exit)


def test_serve_builds_the_database_url_from_the_pg_variables():
    cfg = settings({"PGHOST": "db.local", "PGPORT": "5433", "PGUSER": "tess era",
                    "PGPASSWORD": "p@ss/word", "TESSERA_SECRET_KEY": "k"})
    assert cfg.database_url == \
        "postgresql+psycopg://tess%20era:p%40ss%2Fword@db.local:5433/tessera_serve"
    assert cfg.admin_url == "postgresql://tess%20era:p%40ss%2Fword@db.local:5433/postgres"
    assert cfg.env["TESSERA_DATABASE_URL"] == cfg.database_url
    assert cfg.database == "tessera_serve"


def test_serve_uses_a_given_database_url_as_it_is_and_creates_nothing():
    url = "postgresql+psycopg://app@db:5432/prod"
    cfg = settings({"TESSERA_DATABASE_URL": url, "TESSERA_SECRET_KEY": "k"})
    assert cfg.database_url == url and cfg.database is None and cfg.admin_url is None


def test_serve_makes_an_ephemeral_secret_only_when_none_is_given():
    made = settings({})
    assert made.ephemeral_secret and len(made.env["TESSERA_SECRET_KEY"]) >= 40
    assert settings({}).env["TESSERA_SECRET_KEY"] != made.env["TESSERA_SECRET_KEY"]
    given = settings({"TESSERA_SECRET_KEY": "from-the-env"})
    assert not given.ephemeral_secret and given.env["TESSERA_SECRET_KEY"] == "from-the-env"
    assert not any("ephemeral" in note for note in given.notes)


def test_serve_defaults_and_says_which_payment_provider_runs():
    cfg = settings({"TESSERA_SECRET_KEY": "k"}, bind="127.0.0.1:8100")
    assert cfg.env["TESSERA_ENV"] == "development"
    assert cfg.env["TESSERA_REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert cfg.env["TESSERA_WEB_WORKERS"] == "4"
    assert cfg.env["TESSERA_PUBLIC_URL"] == "http://127.0.0.1:8100" == cfg.base_url
    assert any("DEMO provider" in note for note in cfg.notes)
    stripe = settings({"TESSERA_SECRET_KEY": "k", "TESSERA_STRIPE_SECRET_KEY": "sk_test_x"})
    assert any("Payments: Stripe" in note for note in stripe.notes)
    assert not any("DEMO" in note for note in stripe.notes)


def test_serve_leaves_the_callers_environment_alone():
    environ = {"TESSERA_SECRET_KEY": "k"}
    settings(environ)
    assert environ == {"TESSERA_SECRET_KEY": "k"}


def test_percentile_is_nearest_rank():
    values = [float(x) for x in range(100, 0, -1)]  # 1..100, unsorted
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert percentile([7.0], 99) == 7
    assert percentile([1.0, 2.0, 3.0], 50) == 2
    assert percentile([], 99) == 0.0


def test_drift_is_zero_when_charges_explain_every_balance():
    before = {"A": 10_000, "B": 5_000, "C": 700}
    after = {"A": 9_100, "B": 5_000, "C": 0}
    assert balance_drift(before, after, {"A": 900, "C": 700}) == {}


def test_drift_names_each_card_that_moved_more_or_less_than_its_charges():
    before = {"A": 10_000, "B": 5_000}
    after = {"A": 9_000, "B": 5_000}
    # A: a charge counted once but taken twice; B: a charge the server said it made, unmade.
    assert balance_drift(before, after, {"A": 500, "B": 300}) == {"A": 500, "B": -300}


def _one(kind: str, answer: int | Exception) -> Tally:
    """One request of `kind` from the load generator, answered with `answer`."""
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, json={})

    fixture = Fixture(cookies=["c1"], cards=["9000"], keys=["tk_x"], cookie_name="session")
    tally = Tally()

    async def go():
        async with httpx.AsyncClient(base_url="http://t",
                                     transport=httpx.MockTransport(handler)) as client:
            await Load(fixture, "run", seed=1).one(client, tally, kind)

    asyncio.run(go())
    return tally


def test_load_counts_a_charge_the_server_made_and_nothing_else():
    made = _one("api_charge", 201)
    assert dict(made.charged) == {"9000": made.charges[0][2]} and not made.errors
    refused = _one("api_charge", 409)
    assert not refused.charged and refused.errors == {"api_charge:409": 1}
    lost = _one("api_charge", httpx.ReadTimeout("slow"))
    assert not lost.charged and len(lost.unsure) == 1  # settled later by sending it again
    assert lost.errors == {"api_charge:ReadTimeout": 1}


def test_load_expects_201_for_orders_and_200_for_pages():
    assert _one("api_order", 201).orders and not _one("api_order", 201).errors
    assert _one("api_order", 200).errors == {"api_order:200": 1}  # a replayed order id
    assert not _one("member_home", 200).errors
    assert _one("member_home", 302).errors == {"member_home:302": 1}  # session refused
