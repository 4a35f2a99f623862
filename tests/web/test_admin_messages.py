"""The merchant's message settings, and typed messages in the member's inbox."""
from __future__ import annotations

import pytest

from portal.db import db, transaction
from portal.notifications import services as notifications
from portal.notifications.models import InboxMessage, MessageKind, MessageSetting
from portal.staff.models import AuditEntry
from tests.fixtures import count_queries, member_with_card, sign_in_as

ALL_ON = {f"{k}-{switch}": "y" for k in MessageKind for switch in ("enabled", "email")}


def _settings():
    db.session.expire_all()
    rows = {s.kind: s for s in db.session.query(MessageSetting)}
    db.session.commit()
    return rows


def test_settings_page_lists_every_kind_on_by_default(owner_client):
    r = owner_client.get("/admin/messages")
    page = r.get_data(as_text=True)
    assert r.status_code == 200
    for name in ("Coupon arrived", "Gift delivered", "Tier changed", "Points expiring"):
        assert name in page
    switches = 2 * len(MessageKind)
    assert page.count('value="y" aria-describedby') == switches
    assert page.count("checked") == switches
    assert 'value="30"' in page


def test_saving_switches_and_lead_days_is_audited(client, manager):
    sign_in_as(client, manager)
    form = {**ALL_ON, "points_expiring-lead_days": "14"}
    del form["coupon_arrived-enabled"], form["tier_changed-email"]
    r = client.post("/admin/messages", data=form)
    assert r.status_code == 303 and r.headers["Location"].endswith("/admin/messages")
    saved = _settings()
    assert (saved["coupon_arrived"].enabled, saved["coupon_arrived"].email) == (False, True)
    assert (saved["tier_changed"].enabled, saved["tier_changed"].email) == (True, False)
    assert saved["points_expiring"].lead_days == 14
    entry = db.session.query(AuditEntry).filter_by(action="messages.settings").one()
    assert entry.staff_id == manager.id
    assert set(entry.after) == {"coupon_arrived", "tier_changed", "points_expiring"}
    page = client.get("/admin/messages").get_data(as_text=True)
    assert 'value="14"' in page and page.count("checked") == 2 * len(MessageKind) - 2


@pytest.mark.parametrize("lead", ["0", "-3", "366", "soon", ""])
def test_bad_lead_days_are_refused_next_to_the_field(owner_client, lead):
    r = owner_client.post("/admin/messages",
                          data={**ALL_ON, "points_expiring-lead_days": lead})
    page = r.get_data(as_text=True)
    assert r.status_code == 422
    assert 'id="points_expiring-lead_days-error"' in page
    assert "A number of days from 1 to 365." in page and 'aria-invalid="true"' in page
    assert _settings() == {}


def test_clerks_cannot_open_message_settings(client, clerk):
    sign_in_as(client, clerk)
    assert client.get("/admin/messages").status_code == 403
    assert client.post("/admin/messages", data=ALL_ON).status_code == 403
    assert _settings() == {}


def test_inbox_shows_typed_messages_in_the_members_language(client, member):
    with transaction(db.session):
        notifications.send(db.session, MessageKind.COUPON_ARRIVED, member.id,
                           {"titles": ["¥10 off"]})
    sign_in_as(client, member)
    assert 'class="badge"' in client.get("/card").get_data(as_text=True)   # 1 unread
    page = client.get("/inbox").get_data(as_text=True)
    assert "New coupon in your wallet" in page and "You received: ¥10 off." in page
    assert 'href="/wallet"' in page
    m = db.session.merge(member)
    m.locale = "zh_Hans"
    db.session.commit()
    page = client.get("/inbox").get_data(as_text=True)
    assert "您收到了：¥10 off。" in page
    assert 'class="badge"' not in page                                     # read now


def test_inbox_queries_do_not_grow_with_messages(client, plan):
    one, many = member_with_card(plan), member_with_card(plan)
    with transaction(db.session):
        notifications.send(db.session, MessageKind.TIER_CHANGED, [one.id, many.id],
                           {"tier": "Gold", "plan": "Club", "up": True})
        for i in range(20):
            notifications.send(db.session, MessageKind.POINTS_EXPIRING, many.id,
                               {"points": i + 1, "on": "2027-01-01"}, dedupe_key=f"k{i}")
    assert db.session.query(InboxMessage).filter_by(member_id=many.id).count() == 21
    db.session.commit()
    sign_in_as(client, one)
    few = count_queries(client, "/inbox")
    sign_in_as(client, many)
    assert count_queries(client, "/inbox") == few
