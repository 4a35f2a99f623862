"""A guest buys a gift card for a friend → the friend signs up and claims it → a till spends
part of it through the API → the guest, back on their gift's page, sees what became of it."""
from __future__ import annotations

import re

from portal import jobs
from portal.api import services as api_clients
from portal.db import db
from portal.giftcards.models import GiftCard, GiftCardProduct
from portal.notifications.models import OutboxMessage
from tests.browser.conftest import _page
from tests.factories import StoreFactory
from tests.fixtures import last_code

FRIEND_MOBILE = "+8613912348080"


def _no_errors(page):
    assert [e for e in page.console.errors if "status of 409" not in e
            and "status of 422" not in e] == []


def _outbox_link(recipient: str, template: str, path: str) -> str:
    db.session.commit()  # a new read: an open one would keep seeing an old SQLite snapshot
    body = db.session.query(OutboxMessage.body).filter_by(recipient=recipient,
                                                          template=template) \
        .order_by(OutboxMessage.id.desc()).limit(1).scalar()
    db.session.commit()
    return re.search(rf"{path}[\w-]+", body).group(0)


def test_a_guest_gives_a_card_the_friend_claims_and_spends_and_the_guest_follows_it(
        app, phone, browser, live_server, page):
    store = StoreFactory(name="Harbour Bund")
    db.session.add(GiftCardProduct(kind="electronic", name="Harbour gift card",
                                   currency="CNY", status="active", design="festive",
                                   denominations=[20000, 50000], discount_bp=1000,
                                   validity_days=365, channels=["ONLINE", "POS"],
                                   buyer_fields={"name": "optional", "phone": "optional",
                                                 "email": "optional"}))
    db.session.commit()

    # The guest buys ¥200.00 (pays ¥180.00) for Ada, to go out as soon as it is paid.
    phone.goto("/giftcards")
    phone.locator("a.giftcard-tile", has_text="Harbour gift card").click()
    phone.get_by_label("Send to a friend").check()
    phone.get_by_label("Friend's name").fill("Ada")
    phone.get_by_label("Friend's mobile number").fill("139 1234 8080")
    phone.get_by_label("Your message").fill("Happy birthday, Ada!")
    phone.get_by_label("As soon as it is paid").check()
    phone.get_by_label("Your name").fill("Mei")
    phone.get_by_label("Your email").fill("mei@example.com")
    phone.get_by_role("button", name="Pay").click()
    phone.wait_for_url("**/payments/demo/**")
    phone.get_by_role("button", name="Pay ¥180.00 (demo)").click()
    phone.get_by_text("Paid. Thank you!").wait_for()
    phone.get_by_role("button", name="See what you got").click()
    phone.wait_for_url("**/giftcards/sent/**")
    gift_path = "/giftcards/sent/" + phone.url.rsplit("/", 1)[1]
    assert phone.locator("h1").inner_text() == "Your gift for Ada"
    assert "Happy birthday, Ada!" in phone.content()
    # The receipt e-mail carries the same link back.
    assert _outbox_link("mei@example.com", "giftcard_receipt", "/giftcards/sent/") == gift_path

    # The link goes out at the next minute's tick; the friend opens it from the text.
    jobs.run_tick()
    claim_path = _outbox_link(FRIEND_MOBILE, "giftcard", "/giftcards/claim/")
    context, friend = _page(browser, live_server, 390, 844)
    try:
        friend.goto(claim_path)
        assert "Mei sent you a gift card" in friend.locator("h1").inner_text()
        friend.get_by_role("button", name="Sign up or sign in to claim it").click()
        friend.wait_for_url(f"**/r/{page.slug}")
        friend.get_by_label("Mobile number").fill("139 1234 8080")
        friend.get_by_label("Full name").fill("Ada Lovelace")
        friend.get_by_role("button", name="Join and get my card").click()
        friend.wait_for_url("**/verify")
        friend.get_by_label("6-digit code").fill(last_code(FRIEND_MOBILE))
        friend.get_by_role("button", name="Continue").click()
        friend.wait_for_url(f"**{claim_path}")
        friend.get_by_role("button", name="Add it to my wallet").click()
        friend.wait_for_url("**/giftcards/mine/*")
        assert "¥200.00" in friend.locator(".details").inner_text()
        _no_errors(friend)
    finally:
        context.close()

    # The till spends ¥50.00 of it through the API.
    db.session.commit()
    card = db.session.query(GiftCard).one()
    _client, key = api_clients.create_client(db.session, name="Till", store_code=store.code,
                                             channel="POS")
    r = app.test_client().post(
        f"/api/v1/giftcards/{card.number}/charges", headers={"Authorization": f"Bearer {key}"},
        json={"amount": 5000, "currency": "CNY", "order_external_id": "POS-7",
              "store_code": store.code, "channel": "POS", "idempotency_key": "POS-7"})
    assert r.status_code == 201 and r.json["balance_after"] == 15000

    # Back on the gift's page, the guest sees it claimed, the spend and what is left.
    phone.goto(gift_path)
    status = phone.locator(".notice[role=status]").inner_text()
    assert status.startswith("Ada claimed it on")
    history = phone.locator("ul.history").inner_text()
    for line in ("Bought", "Link sent to Ada", "Claimed by Ada", "Used at Harbour Bund",
                 "-¥50.00", "¥150.00 left"):
        assert line in history, line
    details = phone.locator(".details").inner_text()
    assert "¥150.00" in details and "¥50.00" in details
    page_text = phone.content()
    assert "Ada Lovelace" not in page_text   # her account stays hers: only the name Mei typed
    _no_errors(phone)
