"""Member journeys over HTTP: tracking link → registration → code → card."""
from __future__ import annotations

import re

from portal.db import db
from portal.members.models import Member, OneTimeCode, RegistrationPage
from tests.fixtures import last_code, sign_in_as

MOBILE = "+8613912342222"


def _register(client, page, mobile="13912342222", **answers):
    data = {"mobile": mobile, "full_name": "Lin Ada", "born_on": "", **answers}
    return client.post(f"/r/{page.slug}", data=data)


def test_tracking_link_registration_records_source_and_lands_on_card(client, link):
    r = client.get(f"/t/{link.code}")
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/r/{link.page.slug}")
    client.get(r.headers["Location"])
    r = _register(client, link.page)
    assert r.status_code == 303 and r.headers["Location"].endswith("/verify")
    r = client.post("/verify", data={"code": last_code(MOBILE)})
    assert r.status_code == 303 and r.headers["Location"].endswith("/card")
    page = client.get("/card").get_data(as_text=True)
    member = db.session.query(Member).filter_by(mobile=MOBILE).one()
    assert member.cards[0].number in page
    assert (member.enroll_campaign, member.enroll_source, member.enroll_content) == \
        (link.campaign, link.source, link.content)
    assert member.enroll_link_id == link.id


def test_first_touch_wins_over_a_later_link(client, link):
    from tests.factories import TrackingLinkFactory

    later = TrackingLinkFactory(page=link.page, campaign="later", source="x", content="y")
    client.get(f"/t/{link.code}")
    client.get(f"/t/{later.code}")
    _register(client, link.page)
    client.post("/verify", data={"code": last_code(MOBILE)})
    assert db.session.query(Member).filter_by(mobile=MOBILE).one().enroll_link_id == link.id


def test_url_parameters_are_recorded_when_no_link_was_used(client, page):
    client.get(f"/r/{page.slug}?campaign=autumn&source=newsletter&content=header")
    _register(client, page)
    client.post("/verify", data={"code": last_code(MOBILE)})
    m = db.session.query(Member).filter_by(mobile=MOBILE).one()
    assert (m.enroll_campaign, m.enroll_source, m.enroll_content) == \
        ("autumn", "newsletter", "header")


def test_visits_are_counted_once_per_browser(client, link):
    client.get(f"/t/{link.code}")
    client.get(f"/r/{link.page.slug}")
    client.get(f"/t/{link.code}")
    db.session.expire_all()
    assert db.session.get(RegistrationPage, link.page_id).visit_count == 1


def test_duplicate_mobile_goes_to_sign_in_and_creates_nothing(client, page, member):
    r = _register(client, page, mobile=member.mobile)
    assert r.status_code == 303 and "/sign-in" in r.headers["Location"]
    assert db.session.query(OneTimeCode).count() == 0
    assert db.session.query(Member).count() == 1
    assert member.mobile in client.get("/sign-in").get_data(as_text=True)


def test_signed_in_member_is_sent_to_the_configured_page(client, page, member):
    page.existing_member_url = "/me"
    db.session.commit()
    sign_in_as(client, member)
    r = client.get(f"/r/{page.slug}")
    assert r.status_code == 303 and r.headers["Location"].endswith("/me")


def test_bad_input_gets_a_field_message_in_the_members_language(client, page):
    r = client.post(f"/r/{page.slug}", data={"mobile": "123", "full_name": ""},
                    headers={"Accept-Language": "zh-CN"})
    body = r.get_data(as_text=True)
    assert r.status_code == 422
    assert "请输入有效的手机号" in body or "手机号" in body
    assert 'aria-invalid="true"' in body
    assert db.session.query(OneTimeCode).count() == 0


def test_future_birth_date_is_refused_next_to_the_field(client, page):
    r = _register(client, page, born_on="2999-01-01")
    assert r.status_code == 422
    assert re.search(r'id="born_on-error"', r.get_data(as_text=True))
    assert db.session.query(Member).count() == 0


def test_unknown_slug_is_404(client):
    assert client.get("/r/no-such-page").status_code == 404
    assert client.get("/t/nosuchcode").status_code == 404


def test_draft_page_is_404(client, page):
    page.status = "draft"
    db.session.commit()
    assert client.get(f"/r/{page.slug}").status_code == 404


def test_sign_in_by_code(client, member):
    r = client.post("/sign-in", data={"mobile": member.mobile})
    assert r.status_code == 303
    r = client.post("/verify", data={"code": last_code(member.mobile)})
    assert r.headers["Location"].endswith("/card")
    assert client.get("/card").status_code == 200


def test_wrong_code_says_so_next_to_the_field(client, member):
    client.post("/sign-in", data={"mobile": member.mobile})
    wrong = f"{(int(last_code(member.mobile)) + 1) % 1_000_000:06d}"
    r = client.post("/verify", data={"code": wrong})
    assert r.status_code == 422 and 'id="code-error"' in r.get_data(as_text=True)
    assert client.get("/card").status_code == 302  # still signed out


def test_dev_banner_shows_the_code(client, member):
    client.post("/sign-in", data={"mobile": member.mobile})
    assert last_code(member.mobile) in client.get("/verify").get_data(as_text=True)


def test_other_members_card_is_404(member_client, other_member):
    assert member_client.get(f"/cards/{other_member.cards[0].id}").status_code == 404
    assert member_client.get(f"/cards/{db.session.merge(other_member).cards[0].id}") \
        .status_code == 404


def test_own_card_detail_shows_its_qr(member_client, member):
    card = db.session.merge(member).cards[0]
    r = member_client.get(f"/cards/{card.id}")
    assert r.status_code == 200 and "<svg" in r.get_data(as_text=True)


def test_signing_out_ends_the_session_on_the_server(client, member):
    sign_in_as(client, member)
    stolen = client.get_cookie("session").value
    client.post("/sign-out")
    client.set_cookie("session", stolen)  # a copy of the old cookie no longer works
    assert client.get("/card").status_code == 302


def test_profile_edit_validates_and_saves(member_client, member):
    r = member_client.post("/me/edit", data={"full_name": "New Name", "email": "bad",
                                             "born_on": "", "gender": "", "address": "",
                                             "id_number": ""})
    assert r.status_code == 422 and 'id="email-error"' in r.get_data(as_text=True)
    r = member_client.post("/me/edit", data={"full_name": "New Name", "email": "a@b.co",
                                             "born_on": "1990-01-02", "gender": "female",
                                             "address": "1 Road",
                                             "id_number": "110101199001021234"})
    assert r.status_code == 303
    db.session.expire_all()
    m = db.session.get(Member, member.id)
    assert (m.full_name, m.email, m.gender) == ("New Name", "a@b.co", "female")
    profile = member_client.get("/me").get_data(as_text=True)
    assert "110101199001021234" not in profile and "1234" in profile


def test_changing_mobile_needs_a_code_sent_to_the_new_number(member_client, member):
    new = "+8613912349999"
    r = member_client.post("/me/mobile", data={"mobile": new})
    assert r.status_code == 303
    db.session.expire_all()
    assert db.session.get(Member, member.id).mobile == member.mobile  # not yet
    r = member_client.post("/me/mobile/verify", data={"code": last_code(new)})
    assert r.status_code == 303
    db.session.expire_all()
    assert db.session.get(Member, member.id).mobile == new


def test_mobile_of_another_member_cannot_be_taken(member_client, other_member):
    r = member_client.post("/me/mobile", data={"mobile": other_member.mobile})
    assert r.status_code == 422


def test_locale_switcher_changes_the_language(client):
    r = client.post("/locale", data={"locale": "zh_Hans", "back": "/sign-in"})
    assert r.status_code == 303
    assert "手机号" in client.get("/sign-in").get_data(as_text=True)


def test_browser_language_is_used_when_nothing_is_chosen(client):
    body = client.get("/sign-in", headers={"Accept-Language": "zh-CN,zh;q=0.9"}) \
        .get_data(as_text=True)
    assert 'lang="zh-Hans"' in body


def test_members_saved_language_wins(member_client, member):
    member.locale = "zh_Hans"
    db.session.commit()
    assert 'lang="zh-Hans"' in member_client.get("/card", headers={
        "Accept-Language": "en"}).get_data(as_text=True)


def test_sending_codes_is_rate_limited_per_number(client, app, member):
    app.config["OTP_SEND_LIMIT_PER_NUMBER"] = "2 per hour"
    try:
        codes = [client.post("/sign-in", data={"mobile": member.mobile}).status_code
                 for _ in range(3)]
    finally:
        app.config["OTP_SEND_LIMIT_PER_NUMBER"] = "5 per hour"
    assert codes[-1] == 429


def test_existing_member_reaches_the_merchants_page_after_signing_in(client, page, member):
    page.existing_member_url = "https://shop.example.com/welcome-back"
    db.session.commit()
    _register(client, page, mobile=member.mobile)
    client.post("/sign-in", data={"mobile": member.mobile})
    r = client.post("/verify", data={"code": last_code(member.mobile)})
    assert r.headers["Location"] == "https://shop.example.com/welcome-back"


def test_next_parameter_cannot_send_members_off_site(client, member):
    client.post("/sign-in?next=https://evil.example.com/", data={"mobile": member.mobile})
    r = client.post("/verify", data={"code": last_code(member.mobile)})
    assert r.headers["Location"].endswith("/card")


def test_registration_code_page_offers_the_way_back_to_the_form(client, page):
    _register(client, page)
    assert f'href="/r/{page.slug}"' in client.get("/verify").get_data(as_text=True)


def test_member_can_clear_their_name(member_client, member):
    r = member_client.post("/me/edit", data={"full_name": "", "email": ""})
    assert r.status_code == 303
    db.session.expire_all()
    assert db.session.get(Member, member.id).full_name == ""
