"""Browser tests: the app on a loopback port, driven by Playwright in Debian's Chromium."""
from __future__ import annotations

import os
import shutil
import socket
import threading

import pytest
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("TESSERA_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def pytest_collection_modifyitems(items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def live_server(app):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def csrf_live(app):
    app.config["WTF_CSRF_ENABLED"] = True
    yield
    app.config["WTF_CSRF_ENABLED"] = False


class ConsoleWatch:
    """Collects console errors (CSP violations show up there) for a page."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))


def _page(browser, live_server, width, height):
    context = browser.new_context(viewport={"width": width, "height": height},
                                  base_url=live_server, locale="en-US")
    page = context.new_page()
    page.console = ConsoleWatch(page)
    return context, page


@pytest.fixture
def phone(browser, live_server, csrf_live):
    context, page = _page(browser, live_server, 390, 844)
    yield page
    context.close()


@pytest.fixture
def laptop(browser, live_server, csrf_live):
    context, page = _page(browser, live_server, 1280, 900)
    yield page
    context.close()
