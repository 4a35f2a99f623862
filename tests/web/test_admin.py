"""The merchant area over HTTP: roles, members, registration pages, audit, preview."""
from __future__ import annotations

import pytest

from portal.db import db
from portal.members.models import Member, RegistrationPage, TrackingLink
from portal.staff.models import AuditEntry
from tests.factories import PASSWORD, MemberFactory
from tests.fixtures import count_queries, sign_in_as


def test_staff_sign_in_with_password(client, owner):
    r = client.post("/admin/sign-in", data={"email": owner.email, "password": PASSWORD})
    assert r.status_code == 303 and r.headers["Location"].endswith("/admin/")
    assert client.get("/admin/").status_code == 200


def test_wrong_password_is_refused_without_saying_which_part(client, owner):
    r = client.post("/admin/sign-in", data={"email": owner.email, "password": "nope"})
    assert r.status_code == 422 and "not right" in r.get_data(as_text=True)


def test_five_failures_lock_the_account_even_with_the_right_password(client, owner):
    for _ in range(5):
        client.post("/admin/sign-in", data={"email": owner.email, "password": "nope"})
    r = client.post("/admin/sign-in", data={"email": owner.email, "password": PASSWORD})
    assert r.status_code == 422 and "Too many" in r.get_data(as_text=True)


def test_admin_needs_staff(client, member):
    sign_in_as(client, member)
    r = client.get("/admin/members")
    assert r.status_code == 303 and "/admin/sign-in" in r.headers["Location"]


@pytest.mark.parametrize("url", ["/admin/pages", "/admin/pages/new", "/admin/audit"])
def test_clerks_cannot_open_merchant_settings(client, clerk, url):
    sign_in_as(client, clerk)
    assert client.get(url).status_code == 403


def test_managers_cannot_read_the_audit_log(client, manager):
    sign_in_as(client, manager)
    assert client.get("/admin/audit").status_code == 403
    assert client.get("/admin/pages").status_code == 200


def test_staff_sign_out_ends_the_session_on_the_server(client, owner):
    sign_in_as(client, owner)
    old = client.get_cookie("session").value
    client.post("/admin/sign-out")
    client.set_cookie("session", old)
    assert client.get("/admin/").status_code == 303


def test_add_member_by_hand_issues_a_card_and_records_the_operator(client, clerk, plan):
    sign_in_as(client, clerk)
    r = client.post("/admin/members/new", data={
        "kind": "member", "plan_id": plan.id, "store_id": clerk.store_id,
        "mobile": "13912345000", "full_name": "Walk In", "email": "", "born_on": "",
        "gender": "", "address": "", "id_number": ""})
    assert r.status_code == 303
    m = db.session.query(Member).filter_by(mobile="+8613912345000").one()
    assert m.is_member and m.enroll_store_id == clerk.store_id
    entry = db.session.query(AuditEntry).filter_by(action="member.create").one()
    assert entry.staff_id == clerk.id and entry.object_id == str(m.id)


def test_adding_a_member_needs_mobile_and_plan(owner_client):
    r = owner_client.post("/admin/members/new", data={
        "kind": "member", "plan_id": 0, "store_id": 0, "mobile": "", "full_name": ""})
    body = r.get_data(as_text=True)
    assert r.status_code == 422
    for field in ("mobile", "plan_id", "full_name"):
        assert f'id="{field}-error"' in body
    assert db.session.query(Member).count() == 0


def test_customer_without_card_can_be_added(owner_client):
    r = owner_client.post("/admin/members/new", data={
        "kind": "customer", "plan_id": 0, "store_id": 0, "mobile": "", "full_name": "Lead"})
    assert r.status_code == 303
    assert not db.session.query(Member).one().is_member


def test_member_search_by_name_phone_and_card(owner_client, member, other_member):
    card = db.session.merge(member).cards[0].number
    for q in (member.full_name.split()[0], member.mobile[-6:], card[:8]):
        body = owner_client.get(f"/admin/members?q={q}").get_data(as_text=True)
        assert f"/admin/members/{member.id}\"" in body, q


def test_member_list_filters_by_source(owner_client, link):
    a = MemberFactory(enroll_page_id=link.page_id, enroll_source="poster")
    b = MemberFactory(enroll_source="radio")
    body = owner_client.get(f"/admin/members?page_id={link.page_id}&source=poster") \
        .get_data(as_text=True)
    assert f"/admin/members/{a.id}\"" in body and f"/admin/members/{b.id}\"" not in body


def test_member_list_active_search_returns_only_the_results(owner_client, member):
    r = owner_client.get("/admin/members?q=x", headers={"HX-Request": "true",
                                                        "HX-Target": "results"})
    body = r.get_data(as_text=True)
    assert '<div id="results">' in body and "<html" not in body and "<form" not in body


def test_member_list_query_count_does_not_grow_with_rows(owner_client, plan):
    from portal.db import transaction
    from portal.members.services import issue_card

    def add(n):
        for _ in range(n):
            m = MemberFactory()
            with transaction(db.session):
                issue_card(db.session, db.session.merge(m), plan)

    add(3)
    few = count_queries(owner_client, "/admin/members")
    add(20)
    many = count_queries(owner_client, "/admin/members")
    assert few == many


def test_member_detail_masks_id_number_for_non_owners(client, manager, owner):
    m = MemberFactory(id_number="110101199001021234")
    sign_in_as(client, manager)
    assert "110101199001021234" not in client.get(f"/admin/members/{m.id}") \
        .get_data(as_text=True)
    sign_in_as(client, owner)
    assert "110101199001021234" in client.get(f"/admin/members/{m.id}").get_data(as_text=True)


def test_preview_shows_the_members_portal_read_only(owner_client, member):
    r = owner_client.post(f"/admin/members/{member.id}/preview")
    assert r.status_code == 303 and r.headers["Location"].endswith("/card")
    body = owner_client.get("/card").get_data(as_text=True)
    assert "preview-banner" in body and db.session.merge(member).cards[0].number in body
    r = owner_client.post("/me/edit", data={"full_name": "Hacked"})
    assert r.status_code == 403
    db.session.expire_all()
    assert db.session.get(Member, member.id).full_name != "Hacked"
    assert db.session.query(AuditEntry).filter_by(action="member.preview").count() == 1


def test_ending_preview_returns_to_the_member(owner_client, member):
    owner_client.post(f"/admin/members/{member.id}/preview")
    r = owner_client.post("/preview/end".join(["/admin", ""]))
    assert r.headers["Location"].endswith(f"/admin/members/{member.id}")
    assert "preview-banner" not in owner_client.get("/admin/").get_data(as_text=True)


# --- registration pages ---------------------------------------------------------------

def test_build_and_publish_a_registration_page(owner_client, owner, plan):
    r = owner_client.post("/admin/pages/new", data={
        "name": "Autumn", "title": "Join for autumn", "slug": "autumn", "intro": "Hi",
        "plan_id": plan.id, "after_submit_url": "/card", "existing_member_url": ""})
    assert r.status_code == 303
    page = db.session.query(RegistrationPage).filter_by(slug="autumn").one()
    assert owner_client.get("/r/autumn").status_code == 404  # a draft
    owner_client.post(f"/admin/pages/{page.id}/fields", data={"attribute": "email",
                                                               "required": "y"})
    owner_client.post(f"/admin/pages/{page.id}/publish", data={"publish": "1"})
    body = owner_client.get("/r/autumn").get_data(as_text=True)
    assert 'name="email"' in body and "Join for autumn" in body
    actions = [a for (a,) in db.session.query(AuditEntry.action).filter_by(staff_id=owner.id)]
    assert {"page.create", "page.fields", "page.publish"} <= set(actions)


def test_page_address_must_be_unique_and_well_formed(owner_client, page, plan):
    for slug in (page.slug, "Bad Slug", "x"):
        r = owner_client.post("/admin/pages/new", data={
            "name": "N", "title": "T", "slug": slug, "plan_id": plan.id})
        assert r.status_code == 422 and 'id="slug-error"' in r.get_data(as_text=True)


def test_external_redirect_targets_need_https(owner_client, plan):
    r = owner_client.post("/admin/pages/new", data={
        "name": "N", "title": "T", "slug": "ok-slug", "plan_id": plan.id,
        "after_submit_url": "javascript:alert(1)"})
    assert r.status_code == 422 and 'id="after_submit_url-error"' in r.get_data(as_text=True)


def _order(page_id):
    db.session.expire_all()
    return [f.attribute for f in db.session.get(RegistrationPage, page_id).fields]


def test_reorder_fields_with_buttons(owner_client, page):
    assert _order(page.id) == ["full_name", "born_on"]
    r = owner_client.post(f"/admin/pages/{page.id}/fields/born_on", data={"action": "up"})
    assert r.status_code == 303
    assert _order(page.id) == ["born_on", "full_name"]


def test_reorder_fields_by_drag_returns_the_fields_fragment(owner_client, page):
    owner_client.post(f"/admin/pages/{page.id}/fields", data={"attribute": "email"})
    r = owner_client.post(f"/admin/pages/{page.id}/fields-order",
                          data={"order": ["email", "full_name", "born_on"]},
                          headers={"HX-Request": "true", "HX-Target": "fields"},
                          follow_redirects=True)
    body = r.get_data(as_text=True)
    assert '<div id="fields">' in body and "<html" not in body
    assert _order(page.id) == ["email", "full_name", "born_on"]


def test_reorder_with_a_stale_list_changes_nothing(owner_client, page):
    owner_client.post(f"/admin/pages/{page.id}/fields-order", data={"order": ["full_name"]})
    assert _order(page.id) == ["full_name", "born_on"]


def test_required_toggle_and_remove(owner_client, page):
    owner_client.post(f"/admin/pages/{page.id}/fields/born_on", data={"action": "required"})
    db.session.expire_all()
    assert db.session.get(RegistrationPage, page.id).fields[1].required
    owner_client.post(f"/admin/pages/{page.id}/fields/born_on", data={"action": "remove"})
    assert _order(page.id) == ["full_name"]


def test_tracking_links_are_created_with_a_short_code(owner_client, page):
    r = owner_client.post(f"/admin/pages/{page.id}/links",
                          data={"campaign": "c", "source": "s", "content": "t"})
    assert r.status_code == 303
    link = db.session.query(TrackingLink).one()
    assert 6 <= len(link.code) <= 16
    body = owner_client.get(f"/admin/links/{link.id}/print").get_data(as_text=True)
    assert "<svg" in body and f"/t/{link.code}" in body


def test_over_long_tracking_values_are_refused_by_field(owner_client, page):
    r = owner_client.post(f"/admin/pages/{page.id}/links",
                          data={"campaign": "c" * 65, "source": "s", "content": ""},
                          headers={"HX-Request": "true", "HX-Target": "links"})
    body = r.get_data(as_text=True)
    assert r.status_code == 422 and 'id="campaign-error"' in body and "<html" not in body
    assert db.session.query(TrackingLink).count() == 0


def test_page_list_shows_visits_registrations_and_conversion(owner_client, link):
    link.page.visit_count = 4
    db.session.commit()
    MemberFactory(enroll_page_id=link.page_id, became_member_at=link.page.created_at)
    body = owner_client.get("/admin/pages").get_data(as_text=True)
    assert "25.0%" in body


def test_audit_log_shows_operator_and_changes(owner_client, owner, page):
    owner_client.post(f"/admin/pages/{page.id}/publish", data={"publish": "0"})
    body = owner_client.get("/admin/audit").get_data(as_text=True)
    assert "page.unpublish" in body and owner.name in body


def test_link_registrations_drill_down_follows_the_link_not_its_values(owner_client, link):
    from tests.factories import TrackingLinkFactory

    twin = TrackingLinkFactory(page=link.page)  # same campaign, source and content
    mine = MemberFactory(enroll_page_id=link.page_id, enroll_link_id=link.id)
    other = MemberFactory(enroll_page_id=link.page_id, enroll_link_id=twin.id)
    body = owner_client.get(f"/admin/members?link_id={link.id}").get_data(as_text=True)
    assert f"/admin/members/{mine.id}\"" in body and f"/admin/members/{other.id}\"" not in body


def test_custom_attribute_becomes_a_registration_field(owner_client, page):
    r = owner_client.post("/admin/attributes", data={"name": "Company", "key": "company",
                                                     "kind": "text"})
    assert r.status_code == 303
    body = owner_client.get(f"/admin/pages/{page.id}").get_data(as_text=True)
    assert 'value="custom__company"' in body
    owner_client.post(f"/admin/pages/{page.id}/fields", data={"attribute": "custom__company",
                                                               "required": "y"})
    form = owner_client.get(f"/r/{page.slug}").get_data(as_text=True)
    assert 'name="custom__company"' in form and "Company" in form


def test_bad_attribute_id_gets_a_field_message(owner_client):
    r = owner_client.post("/admin/attributes", data={"name": "X", "key": "Bad Key",
                                                     "kind": "text"})
    assert r.status_code == 422 and 'id="key-error"' in r.get_data(as_text=True)


def test_clerks_cannot_manage_attributes(client, clerk):
    sign_in_as(client, clerk)
    assert client.get("/admin/attributes").status_code == 403


def test_member_detail_and_profile_show_custom_values(client, owner, member):
    from portal.members.models import CustomAttribute

    db.session.add(CustomAttribute(key="drink", name="Favourite drink", kind="text"))
    m = db.session.merge(member)
    m.custom = {"drink": "Flat white"}
    db.session.commit()
    sign_in_as(client, owner)
    assert "Flat white" in client.get(f"/admin/members/{member.id}").get_data(as_text=True)
    sign_in_as(client, member)
    assert "Flat white" in client.get("/me").get_data(as_text=True)
    assert 'value="Flat white"' in client.get("/me/edit").get_data(as_text=True)


def test_staff_tag_members_and_filter_by_tag(client, clerk, member, other_member):
    sign_in_as(client, clerk)
    r = client.post(f"/admin/members/{member.id}/tags", data={"tags": "VIP, vip，regular ,"})
    assert r.status_code == 303
    body = client.get("/admin/members?tag=VIP").get_data(as_text=True)
    assert f"/admin/members/{member.id}\"" in body
    assert f"/admin/members/{other_member.id}\"" not in body
    from portal.members.models import Member as M

    db.session.expire_all()
    assert {t.name for t in db.session.get(M, member.id).tags} == {"regular", "VIP"}
    entry = db.session.query(AuditEntry).filter_by(action="member.tags").one()
    assert entry.staff_id == clerk.id and entry.after == {"tags": ["VIP", "regular"]}


def test_over_long_tags_are_refused(owner_client, member):
    owner_client.post(f"/admin/members/{member.id}/tags", data={"tags": "x" * 41})
    db.session.expire_all()
    from portal.members.models import Member as M

    assert db.session.get(M, member.id).tags == []


def test_member_list_filters_by_status(owner_client):
    a = MemberFactory(status="abnormal")
    b = MemberFactory()
    body = owner_client.get("/admin/members?status=abnormal").get_data(as_text=True)
    assert f"/admin/members/{a.id}\"" in body and f"/admin/members/{b.id}\"" not in body
