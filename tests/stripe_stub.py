"""A local stand-in for the Stripe API, for the real `stripe` SDK to talk to: no test
touches the network. It answers the calls Tessera makes and records each request
(path, form parameters, idempotency key) for tests to check."""
from __future__ import annotations

import itertools
import json
import socket
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from portal import ledger
from portal.ledger import AccountKind
from portal.payments import services as payments
from portal.payments.errors import FulfilmentRefused
from portal.payments.providers import sign

WEBHOOK_SECRET = "whsec_test_secret"


@dataclass
class Call:
    method: str
    path: str
    params: dict
    idempotency_key: str | None


@dataclass
class StripeStub:
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    sessions: dict[str, dict] = field(default_factory=dict)
    # A path prefix whose next `fail_times` calls answer 500 (the SDK retries twice).
    fail_next: str | None = None
    fail_times: int = 3
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def __call__(self, environ, start_response):
        request = Request(environ)
        params = {k: v[-1] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        self.calls.append(Call(request.method, request.path, params,
                               request.headers.get("Idempotency-Key")))
        if self.fail_next and request.path.startswith(self.fail_next):
            self.fail_times -= 1
            if self.fail_times <= 0:
                self.fail_next, self.fail_times = None, 3
            return self._json({"error": {"type": "api_error", "message": "stub down"}},
                              500)(environ, start_response)
        return self._route(request, params)(environ, start_response)

    def _json(self, body: dict, status: int = 200) -> Response:
        return Response(json.dumps(body), status, content_type="application/json")

    def _route(self, request: Request, params: dict) -> Response:
        path = request.path
        if path == "/v1/checkout/sessions" and request.method == "POST":
            sid = f"cs_test_{next(self._ids)}"
            session = {"id": sid, "object": "checkout.session", "status": "open",
                       "payment_status": "unpaid", "url": f"https://checkout.test/{sid}",
                       "amount_total": int(params["line_items[0][price_data][unit_amount]"]),
                       "currency": params["line_items[0][price_data][currency]"],
                       "payment_intent": None,
                       "metadata": {"payment_id": params["metadata[payment_id]"]}}
            self.sessions[sid] = session
            return self._json(session)
        if path.startswith("/v1/checkout/sessions/"):
            sid = path.split("/")[4]
            session = self.sessions.get(sid)
            if session is None:
                return self._json({"error": {"type": "invalid_request_error"}}, 404)
            if path.endswith("/expire"):
                session["status"] = "expired"
            return self._json(session)
        if path == "/v1/refunds" and request.method == "POST":
            return self._json({"id": f"re_test_{next(self._ids)}", "object": "refund",
                               "status": "succeeded", "amount": int(params["amount"])})
        return self._json({"error": {"type": "invalid_request_error"}}, 404)

    def pay(self, session_id: str) -> None:
        """As if the member paid at Stripe (what `lookup` will then see)."""
        self.sessions[session_id].update(status="complete", payment_status="paid",
                                         payment_intent=f"pi_{session_id}")


def event(event_type: str, session: dict, *, event_id: str | None = None,
          **changes) -> dict:
    obj = {**session, **changes}
    return {"id": event_id or f"evt_{event_type}_{obj['id']}", "object": "event",
            "type": event_type, "data": {"object": obj}}


def signed(payload: dict, *, secret: str = WEBHOOK_SECRET, at: int | None = None):
    body = json.dumps(payload).encode()
    return body, sign(secret, body, at)


@pytest.fixture
def stripe_stub(app):
    """Stripe as the provider, talking to a stub on a loopback port."""
    stub = StripeStub()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = make_server("127.0.0.1", port, stub, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{port}"
    saved = {k: app.config[k] for k in ("PAYMENT_PROVIDER", "STRIPE_SECRET_KEY",
                                        "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE")}
    app.config.update(PAYMENT_PROVIDER="stripe", STRIPE_SECRET_KEY="sk_test_stub",
                      STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_API_BASE=stub.url)
    yield stub
    app.config.update(saved)
    server.shutdown()


RELEASED: list[int] = []
REFUSE: set[int] = set()


def _fulfil(session, payment):
    """What a purpose gives: here, points equal to the amount (a real ledger write, so a
    rolled-back transaction takes it back too)."""
    if payment.id in REFUSE:
        raise FulfilmentRefused("sold out")
    account = ledger.account(session, AccountKind.POINTS, "member", payment.member_id)
    ledger.post(session, account, payment.amount_minor, reason="test", key=f"pay:{payment.id}")


def _refund(session, payment, amount):
    return {"taken_back": amount}


@pytest.fixture
def test_purposes():
    """Two payment purposes for tests: "test" (refundable) and "norefund"."""
    RELEASED.clear()
    REFUSE.clear()
    payments.register("test", label="Test", fulfil=_fulfil,
                      release=lambda s, p: RELEASED.append(p.id), refund=_refund)
    payments.register("norefund", label="No refund", fulfil=_fulfil,
                      release=lambda s, p: RELEASED.append(p.id))
    yield
    payments.PURPOSES.pop("test")
    payments.PURPOSES.pop("norefund")
