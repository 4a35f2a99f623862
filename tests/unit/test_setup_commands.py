"""A fresh production database gets its first store, plan and owner from the CLI."""
from portal.members.models import CardPlan, Store
from portal.staff.models import StaffUser


def test_create_store_plan_and_owner_from_the_command_line(app, session):
    runner = app.test_cli_runner()
    r = runner.invoke(args=["stores", "create", "--name", "Main St", "--code", "ms01"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(args=["plans", "create", "--name", "Club", "--currency", "EUR",
                            "--validity-days", "365", "--default"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(args=["staff", "create", "--email", "Boss@Example.com", "--name", "Boss",
                            "--role", "owner", "--password", "a long passphrase"])
    assert r.exit_code == 0, r.output
    session.commit()
    assert session.query(Store).one().code == "MS01"
    plan = session.query(CardPlan).one()
    assert (plan.currency, plan.validity_days, plan.is_default, plan.tiers[0].rank) == \
        ("EUR", 365, True, 0)
    assert session.query(StaffUser).one().email == "boss@example.com"


def test_bad_currency_is_refused(app, session):
    r = app.test_cli_runner().invoke(args=["plans", "create", "--name", "X", "--currency",
                                           "XYZ1"])
    assert r.exit_code != 0 and "Unknown currency" in r.output
    assert session.query(CardPlan).count() == 0


def test_seed_adds_nothing_the_second_time(app, session):
    runner = app.test_cli_runner()
    assert "members 200" in runner.invoke(args=["seed"]).output
    assert "nothing added" in runner.invoke(args=["seed"]).output
    session.commit()
    assert session.query(Store).count() == 3


def test_seed_prints_the_addresses_this_deployment_answers_on(app, session, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_URL", "http://127.0.0.1:8000/")
    out = app.test_cli_runner().invoke(args=["seed"]).output
    assert "http://127.0.0.1:8000/admin " in out and "http://127.0.0.1:8000/sign-in " in out
    assert ":5000" not in out
