import pytest

from portal import config


def test_missing_secret_key_outside_dev_fails_at_start(monkeypatch):
    monkeypatch.delenv("TESSERA_SECRET_KEY", raising=False)
    with pytest.raises(config.ConfigError):
        config.load({"ENV": "production"})


def test_production_cookies_are_secure(monkeypatch):
    monkeypatch.setenv("TESSERA_SECRET_KEY", "x" * 40)
    cfg = config.load({"ENV": "production"})
    assert cfg["SESSION_COOKIE_SECURE"] is True
    assert cfg["SHOW_DEV_CODES"] is False


def test_development_has_safe_defaults(monkeypatch):
    monkeypatch.delenv("TESSERA_SECRET_KEY", raising=False)
    cfg = config.load({"ENV": "development"})
    assert cfg["DATABASE_URL"].startswith("sqlite")
    assert cfg["SECRET_KEY"] == config.DEV_SECRET
