"""`make loadtest`: a bounded mixed load against the `make serve` set-up, on loopback.

It starts the stack itself (deploy/serve.py) on a fresh PostgreSQL database, so each run
starts from the same demo data and nothing is left running: gunicorn with 4 workers and
the two consumers, all against Redis. Then:

1. Preparation, in this process against the same database: members with signed session
   cookies (made with the stack's secret, as a sign-in would), API keys, and a balance on
   each member's card, topped up the way members do it (a top-up paid at the demo provider).
2. LOADTEST_SECONDS (60) of a weighted mix at a fixed concurrency (LOADTEST_CONCURRENCY,
   16 connections from one process, so the client does not starve the server on a small
   machine): member home, coupon wallet, balance page, API member look-up, API orders, API
   balance charges with idempotency keys, and replays of charges already made.
3. LOADTEST_BARE_SECONDS (20) of GET /livez, a route that touches nothing, at the same
   concurrency. A route that does no work has a steady rate: 20 s measure it as well as 60.
4. Drift checks: every card's balance went down by exactly the charges the server
   accepted, every accepted order is in the database once, and the ledger consistency check
   (`flask consistency check`) passes when this checkout has it.

Figures, one `name: value` line each, as `make bench` prints them (also written to
bench/loadtest.json):
- load_ratio.mixed: requests/s of the mix ÷ requests/s of the bare route (same machine, same
  concurrency, same run); p50_ms.mixed, p99_ms.mixed: latency percentiles of the mix;
  errors.mixed: requests that failed or got an unexpected status; rps.mixed, rps.bare.
- p99_ms.<kind>: the 99th percentile of each kind of request in the mix.
- drift.balance, drift.orders: must be 0.

The stack gets LOADTEST_BIND (127.0.0.1:8010), database LOADTEST_DB (tessera_loadtest,
dropped and created again) and TESSERA_REDIS_URL (default redis://127.0.0.1:6379/1: not
the database a `make serve` on the same Redis uses, whose consumers would take our tasks).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from deploy import serve

SECONDS = float(os.environ.get("LOADTEST_SECONDS", "60"))
BARE_SECONDS = float(os.environ.get("LOADTEST_BARE_SECONDS", "20"))
WARMUP_SECONDS = 5.0
CONCURRENCY = int(os.environ.get("LOADTEST_CONCURRENCY", "16"))
MEMBERS = 40
API_CLIENTS = 4
TOPUP_MINOR = 200_000
# The mix: (kind, weight). Charges are most of the writes, as at a till.
MIX = [("member_home", 20), ("coupon_wallet", 10), ("balance_page", 10),
       ("api_lookup", 20), ("api_order", 15), ("api_charge", 20), ("api_charge_replay", 5)]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of `values`; 0.0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n·p/100), at least the first
    return ordered[int(rank) - 1]


def balance_drift(before: dict[str, int], after: dict[str, int],
                  charged: dict[str, int]) -> dict[str, int]:
    """Per card, how far the balance moved from what the accepted charges explain
    (before − after − charged); only cards where that is not 0."""
    drift = {}
    for card in before.keys() | after.keys() | charged.keys():
        off = before.get(card, 0) - after.get(card, 0) - charged.get(card, 0)
        if off:
            drift[card] = off
    return drift


@dataclass
class Fixture:
    cookies: list[str]                # signed session cookies, one per member
    cards: list[str]                  # their card numbers
    keys: list[str]                   # API keys (HQ01, POS)
    cookie_name: str
    balances_before: dict[str, int] = field(default_factory=dict)


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter = field(default_factory=Counter)
    charged: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    charges: list[tuple[str, str, int]] = field(default_factory=list)   # card, key, amount
    unsure: list[tuple[str, str, int]] = field(default_factory=list)    # answer lost
    orders: set[str] = field(default_factory=set)
    count: int = 0

    def all_latencies(self) -> list[float]:
        return [x for values in self.latencies.values() for x in values]


def prepare_data(app) -> Fixture:
    """Members with sessions, API keys and topped-up cards, through the services."""
    from sqlalchemy import select

    from portal import clock
    from portal.api.services import create_client
    from portal.db import db
    from portal.members.models import CardPlan, CardStatus, Member, MemberCard, MemberStatus
    from portal.payments import services as payments
    from portal.payments.models import Payment
    from portal.payments.providers import provider
    from portal.wallet import topups
    from portal.wallet.models import TopupPlan

    with app.app_context():
        session = db.session
        rows = session.execute(
            select(Member, MemberCard).join(MemberCard, MemberCard.member_id == Member.id)
            .join(CardPlan, CardPlan.id == MemberCard.plan_id)
            .where(CardPlan.is_default.is_(True), Member.status == MemberStatus.NORMAL,
                   MemberCard.status == CardStatus.ACTIVE)
            .order_by(Member.id).limit(MEMBERS)).all()
        plan_id = session.scalar(select(TopupPlan.id).where(TopupPlan.kind == "range"))
        serializer = app.session_interface.get_signing_serializer(app)
        now = int(clock.now().timestamp())
        cookies, cards = [], []
        for member, card in rows:
            cookies.append(serializer.dumps({
                "_user_id": f"m:{member.id}:{member.session_version}", "_fresh": True,
                "seen": now}))
            cards.append(card.number)
            topup = topups.start(session, member_id=member.id, card_id=card.id,
                                 plan_id=plan_id, amount_minor=TOPUP_MINOR)
            with app.test_request_context():
                payments.open_checkout(session, topup.payment_id, success_url="/",
                                       cancel_url="/")
                body, signature = provider().event(session.get(Payment, topup.payment_id),
                                                   "paid")
                payments.receive(session, body, signature)
        keys = [create_client(session, name=f"Load test till {i + 1}", store_code="HQ01",
                              channel="POS")[1] for i in range(API_CLIENTS)]
        fixture = Fixture(cookies=cookies, cards=cards, keys=keys,
                          cookie_name=app.config["SESSION_COOKIE_NAME"])
        fixture.balances_before = balances(app, cards)
        assert all(fixture.balances_before[c] >= TOPUP_MINOR for c in cards), \
            "top-ups were not credited"
        return fixture


def balances(app, cards: list[str]) -> dict[str, int]:
    from portal.db import db
    from portal.wallet import balance as wallet

    with app.app_context():
        db.session.expire_all()
        return {no: wallet.balance(db.session, wallet.card_by_number(db.session, no).id).total
                for no in cards}


class Load:
    """One kind of request each call, chosen by weight; answers checked and tallied."""

    def __init__(self, fixture: Fixture, run_id: str, seed: int):
        self.f = fixture
        self.run_id = run_id
        self.rng = random.Random(seed)
        self.kinds = [k for k, _ in MIX]
        self.weights = [w for _, w in MIX]
        self.sequence = 0

    def _next(self) -> str:
        self.sequence += 1
        return f"{self.run_id}-{self.sequence}"

    async def one(self, client, tally: Tally, kind: str | None = None) -> None:
        kind = kind or self.rng.choices(self.kinds, self.weights)[0]
        i = self.rng.randrange(len(self.f.cards))
        card = self.f.cards[i]
        api = {"Authorization": f"Bearer {self.rng.choice(self.f.keys)}"}
        scope = {"store_code": "HQ01", "channel": "POS"}
        expect = {200}
        charge = None
        if kind == "api_charge_replay" and not tally.charges:
            kind = "api_charge"
        if kind in {"member_home", "coupon_wallet", "balance_page"}:
            path = {"member_home": "/card", "coupon_wallet": "/wallet",
                    "balance_page": "/balance"}[kind]
            request = client.build_request("GET", path, headers={
                "Cookie": f"{self.f.cookie_name}={self.f.cookies[i]}"})
        elif kind == "api_lookup":
            request = client.build_request("GET", "/api/v1/members/lookup",
                                           params={"card_no": card}, headers=api)
        elif kind == "api_order":
            order_id = self._next()
            amount = self.rng.randrange(1_000, 20_000)
            request = client.build_request("POST", "/api/v1/orders", headers=api, json={
                **scope, "external_id": order_id, "card_no": card, "currency": "CNY",
                "occurred_at": datetime.now(UTC).isoformat(),
                "lines": [{"line_id": "1", "amount": amount, "product_id": "latte"}],
                "payments": [{"method": "cash", "amount": amount}]})
            expect = {201}
        elif kind == "api_charge":
            charge = (card, self._next(), self.rng.randrange(100, 1_000))
            request = charge_request(client, charge, api, scope)
            expect = {201}
        else:  # a till that did not hear the answer sends the same charge again
            charge = self.rng.choice(tally.charges)
            request = charge_request(client, charge, api, scope)
            expect = {200}
        start = time.perf_counter()
        try:
            response = await client.send(request)
            status = response.status_code
        except Exception as e:  # noqa: BLE001 - any failure is an error of the run
            status = type(e).__name__
        tally.latencies[kind].append((time.perf_counter() - start) * 1000)
        tally.count += 1
        if status not in expect:
            tally.errors[f"{kind}:{status}"] += 1
            if charge is not None and kind == "api_charge" and not isinstance(status, int):
                tally.unsure.append(charge)
            return
        if kind == "api_charge":
            tally.charges.append(charge)
            tally.charged[charge[0]] += charge[2]
        elif kind == "api_order":
            tally.orders.add(order_id)



def charge_request(client, charge: tuple[str, str, int], api: dict, scope: dict):
    card, key, amount = charge
    return client.build_request("POST", f"/api/v1/cards/{card}/charges", headers=api,
                                json={**scope, "amount": amount, "currency": "CNY",
                                      "idempotency_key": key})


async def run_for(base_url: str, seconds: float, work) -> float:
    """CONCURRENCY loops calling `work(client)` until `seconds` are up; the elapsed time."""
    import httpx

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def loop():
            while time.perf_counter() < deadline:
                await work(client)

        await asyncio.gather(*(loop() for _ in range(CONCURRENCY)))
        return time.perf_counter() - start


async def settle(base_url: str, fixture: Fixture, tally: Tally) -> None:
    """Charges whose answer was lost: send them again (same key) to learn whether they were
    made; the idempotency key makes that safe either way."""
    import httpx

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for card, key, amount in tally.unsure:
            r = await client.send(charge_request(
                client, (card, key, amount),
                {"Authorization": f"Bearer {fixture.keys[0]}"},
                {"store_code": "HQ01", "channel": "POS"}))
            if r.status_code in (200, 201):
                tally.charged[card] += amount


def orders_in_database(app, run_id: str) -> int:
    from sqlalchemy import func, select

    from portal.db import db
    from portal.loyalty.models import Order

    with app.app_context():
        return db.session.scalar(select(func.count(Order.id))
                                 .where(Order.external_id.like(f"{run_id}-%")))


def consistency_check(cfg: serve.Settings) -> str:
    """`flask consistency check` if this checkout has it: 'passed', 'FAILED' or
    'not available'."""
    done = subprocess.run([str(serve.BIN / "flask"), "consistency", "check"], env=cfg.env,
                          cwd=serve.ROOT, capture_output=True, text=True)
    if done.returncode == 2 and "No such command" in done.stderr:
        return "not available"
    if done.returncode:
        print(done.stdout + done.stderr, file=sys.stderr)
        return "FAILED"
    return "passed"


def main() -> dict[str, float]:
    environ = dict(os.environ)
    environ.setdefault("TESSERA_REDIS_URL", "redis://127.0.0.1:6379/1")
    cfg = serve.settings(environ, database=os.environ.get("LOADTEST_DB", "tessera_loadtest"),
                         bind=os.environ.get("LOADTEST_BIND", "127.0.0.1:8010"))
    if not cfg.bind.startswith(("127.", "localhost")):
        raise SystemExit("The load test runs on loopback only (LOADTEST_BIND=127.0.0.1:…).")
    # A SIGTERM (timeout, CI) unwinds like Ctrl-C, through the `finally` that stops the stack.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    serve.prepare(cfg, fresh=True)
    # This process builds the app too (the preparation, the checks): the same settings.
    os.environ.update(cfg.env)
    from portal import create_app

    app = create_app()
    # The app's log set-up takes the root logger; httpx would log each of ~20,000 requests.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    fixture = prepare_data(app)
    log_path = Path(serve.ROOT / "instance" / "loadtest-stack.log")
    log_path.parent.mkdir(exist_ok=True)
    with log_path.open("w") as log:
        stack = serve.Stack(cfg, output=log)
        stack.start()
        try:
            stack.wait_ready()
            tally, warm = Tally(), Tally()
            run_id = f"lt{int(time.time())}"
            load = Load(fixture, run_id, seed=2026)
            print(f"Stack up on {cfg.base_url} (log: {log_path}); warming up "
                  f"{WARMUP_SECONDS:.0f} s, then {SECONDS:.0f} s mixed, {BARE_SECONDS:.0f} s "
                  f"bare at {CONCURRENCY} connections.", flush=True)
            asyncio.run(run_for(cfg.base_url, WARMUP_SECONDS,
                                lambda c: load.one(c, warm)))
            elapsed = asyncio.run(run_for(cfg.base_url, SECONDS,
                                          lambda c: load.one(c, tally)))
            bare = Tally()
            bare_elapsed = asyncio.run(run_for(
                cfg.base_url, BARE_SECONDS, lambda c: _bare(c, bare)))
            for t in (warm, tally):
                asyncio.run(settle(cfg.base_url, fixture, t))
            stack.check_alive()
        finally:
            stack.stop()
    charged = defaultdict(int)  # warm-up charges moved balances too
    for t in (tally, warm):
        for card, amount in t.charged.items():
            charged[card] += amount
    drift = balance_drift(fixture.balances_before, balances(app, fixture.cards), charged)
    expected_orders = len(tally.orders | warm.orders)
    latencies = tally.all_latencies()
    rps_mixed, rps_bare = tally.count / elapsed, bare.count / bare_elapsed
    results: dict[str, float] = {
        "load_ratio.mixed": round(rps_mixed / rps_bare, 3),
        "p50_ms.mixed": round(percentile(latencies, 50), 1),
        "p99_ms.mixed": round(percentile(latencies, 99), 1),
        "errors.mixed": sum(tally.errors.values()),
        "rps.mixed": round(rps_mixed, 1),
        "rps.bare": round(rps_bare, 1),
        "p99_ms.bare": round(percentile(bare.all_latencies(), 99), 1),
        "errors.bare": sum(bare.errors.values()),
        "requests.mixed": tally.count,
    }
    for kind, values in sorted(tally.latencies.items()):
        results[f"p99_ms.{kind}"] = round(percentile(values, 99), 1)
    results["drift.balance"] = sum(abs(v) for v in drift.values())
    results["drift.orders"] = abs(orders_in_database(app, run_id) - expected_orders)
    for name, t in (("mixed", tally), ("bare", bare), ("warm-up", warm)):
        for what, n in t.errors.most_common(10):
            print(f"error ({name}) {what}: {n}", file=sys.stderr)
    if drift:
        print(f"balance drift by card: {drift}", file=sys.stderr)
    results["consistency_check"] = consistency_check(cfg)
    return results


async def _bare(client, tally: Tally) -> None:
    start = time.perf_counter()
    try:
        status = (await client.get("/livez")).status_code
    except Exception as e:  # noqa: BLE001 - any failure is an error of the run
        status = type(e).__name__
    tally.latencies["bare"].append((time.perf_counter() - start) * 1000)
    tally.count += 1
    if status != 200:
        tally.errors[f"bare:{status}"] += 1


if __name__ == "__main__":
    figures = main()
    for name, value in figures.items():
        print(f"{name}: {value}")
    Path(__file__).with_name("loadtest.json").write_text(json.dumps(figures, indent=2) + "\n")
    failed = (figures["errors.mixed"] or figures["drift.balance"] or figures["drift.orders"]
              or figures["consistency_check"] == "FAILED")
    sys.exit(1 if failed else 0)
