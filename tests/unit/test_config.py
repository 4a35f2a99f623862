import pytest

from portal import config


def test_missing_secret_key_outside_dev_fails_at_start(monkeypatch):
    monkeypatch.delenv("TESSERA_SECRET_KEY", raising=False)
    with pytest.raises(config.ConfigError):
        config.load({"ENV": "production"})


STRIPE = {"STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_WEBHOOK_SECRET": "whsec_x",
          "PUBLIC_URL": "https://members.example.com"}


def test_production_cookies_are_secure(monkeypatch):
    monkeypatch.setenv("TESSERA_SECRET_KEY", "x" * 40)
    cfg = config.load({"ENV": "production", **STRIPE})
    assert cfg["SESSION_COOKIE_SECURE"] is True
    assert cfg["SHOW_DEV_CODES"] is False


def test_development_has_safe_defaults(monkeypatch):
    monkeypatch.delenv("TESSERA_SECRET_KEY", raising=False)
    cfg = config.load({"ENV": "development"})
    assert cfg["DATABASE_URL"].startswith("sqlite")
    assert cfg["SECRET_KEY"] == config.DEV_SECRET


def test_production_refuses_the_demo_payment_provider(monkeypatch):
    monkeypatch.setenv("TESSERA_SECRET_KEY", "x" * 40)
    monkeypatch.delenv("TESSERA_STRIPE_SECRET_KEY", raising=False)
    with pytest.raises(config.ConfigError, match="demo payment provider"):
        config.load({"ENV": "production"})
    with pytest.raises(config.ConfigError, match="WEBHOOK_SECRET"):
        config.load({"ENV": "production", "STRIPE_SECRET_KEY": "sk_live_x"})
    assert config.load({"ENV": "production", **STRIPE})["PAYMENT_PROVIDER"] == "stripe"
    assert config.load({"ENV": "development"})["PAYMENT_PROVIDER"] == "demo"
